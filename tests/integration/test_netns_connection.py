"""Namespaces as inventory hosts: the xdpkit.forwarding.netns connection runs every task
inside the host's namespace, so facts and modules see that namespace, with no namespace
argument, and two namespaces with the same interface names keep their own pins and locks.
Every behaviour holds for both transports: namespaces on the controller, and namespaces on a
lab host reached over SSH (the suite's own sshd on 127.0.0.1)."""

import json
import os
import subprocess

import pytest
from conftest import ROOT, VENV_BIN, ansible_env

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager


def connection_vars(request, transport):
    """Inventory variables for the netns connection over `transport`."""
    found = {'ansible_connection': 'xdpkit.forwarding.netns', 'ansible_python_interpreter': '/usr/bin/python3'}
    if transport == 'ssh':
        found.update(request.getfixturevalue('sshd'), ansible_netns_transport='ssh')
    return found


@pytest.fixture(params=['local', 'ssh'])
def lab(request, cleanup, tmp_path):
    """Two namespaces, each with the same link names p0 <-> p1 and its own subnet, as hosts."""
    names = cleanup
    hosts = {names('a'): '10.70.0.1/24', names('b'): '10.71.0.1/24'}
    for ns, address in hosts.items():
        create_netns(ns)
        VethManager({'name': 'p0', 'namespace': ns, 'addresses': [address], 'state': 'present',
                     'peer': {'name': 'p1', 'namespace': ns}}).run()
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {
        'hosts': {ns: {} for ns in hosts}, 'vars': connection_vars(request, request.param)}}))
    yield names, str(inventory), hosts
    for ns in hosts:
        run_adhoc(str(inventory), 'xdp_program', {'interface': 'p0', 'state': 'absent'}, pattern=ns)


def inventory_transport(inventory):
    with open(inventory) as stream:
        return json.load(stream)['all']['vars'].get('ansible_netns_transport', 'local')


def run_adhoc(inventory, module, args, pattern='all'):
    """One module on every host of the inventory (forks 2); {host: result}."""
    name = module if '.' in module else 'xdpkit.forwarding.' + module
    cmd = [os.path.join(VENV_BIN, 'ansible'), pattern, '-i', inventory, '-f', '2', '-m', name]
    if args:
        cmd += ['-a', json.dumps(args)]
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=300)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            data = json.loads(line[len('RESULT '):])
            results[data['_host']] = data
    assert results, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results


def test_facts_show_the_namespaces_own_interfaces_and_addresses(lab):
    _names, inventory, hosts = lab
    facts = run_adhoc(inventory, 'ansible.builtin.setup', {'gather_subset': ['network']})
    host_links = set(os.listdir('/sys/class/net'))
    for ns, address in hosts.items():
        seen = facts[ns]['ansible_facts']
        assert not facts[ns].get('failed'), facts[ns]
        assert set(seen['ansible_interfaces']) == {'lo', 'p0', 'p1'}, (ns, seen['ansible_interfaces'], host_links)
        assert seen['ansible_p0']['ipv4']['address'] == address.split('/', maxsplit=1)[0]
        # The transport really is the one asked for: only sshd sets SSH_CONNECTION.
        over_ssh = inventory_transport(inventory) == 'ssh'
        assert ('SSH_CONNECTION' in seen['ansible_env']) == over_ssh, seen['ansible_env']


def test_modules_need_no_namespace_and_namespaces_never_share_pins(lab):
    _names, inventory, hosts = lab
    first = run_adhoc(inventory, 'xdp_program', {'interface': 'p0', 'program': 'xdp_pass'})
    for ns in hosts:
        assert first[ns]['changed'] and not first[ns].get('failed'), first[ns]
        assert first[ns]['pin_dir'] == '/sys/fs/bpf/xdpkit/%s@p0' % ns
    assert first[list(hosts)[0]]['program']['prog_id'] != first[list(hosts)[1]]['program']['prog_id']
    again = run_adhoc(inventory, 'xdp_program', {'interface': 'p0', 'program': 'xdp_pass'})
    assert not any(result['changed'] for result in again.values()), again
    stats = run_adhoc(inventory, 'xdp_stats', {'interface': 'p0'})
    for ns in hosts:
        assert stats[ns]['program']['id'] == first[ns]['program']['prog_id'], stats[ns]
    links = run_adhoc(inventory, 'link_info', {})
    for ns in hosts:
        assert set(links[ns].get('links', {})) == {'lo', 'p0', 'p1'}, links[ns]


@pytest.mark.parametrize('transport', ['local', 'ssh'])
def test_a_missing_namespace_is_unreachable_with_the_reason(request, transport, cleanup, tmp_path):
    names = cleanup
    inventory = tmp_path / 'gone.yml'
    hosts = {names('gone'): {}}
    inventory.write_text(json.dumps({'all': {'hosts': hosts, 'vars': connection_vars(request, transport)}}))
    result = run_adhoc(str(inventory), 'ansible.builtin.ping', {})[names('gone')]
    assert result.get('unreachable') and 'does not exist' in result['msg'], result


def test_ansible_doc_renders_the_connection_plugin():
    proc = subprocess.run([os.path.join(VENV_BIN, 'ansible-doc'), '-t', 'connection', 'xdpkit.forwarding.netns'],
                          cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0 and 'netns' in proc.stdout and 'inventory_hostname' in proc.stdout, proc.stderr
