"""The modules over a real SSH connection, as on a fleet: the BPF sources travel from the
controller (action plugin), nothing on the target comes from the collection's files."""

import json
import os
import subprocess

import pytest
from conftest import ROOT, VENV_BIN, ansible_env

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program


@pytest.fixture
def ssh_inventory(sshd, tmp_path):
    """An inventory for the test's own sshd."""
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'hosts': {'fleet-host': dict(
        sshd, ansible_connection='ssh', ansible_python_interpreter='/usr/bin/python3')}}}))
    return str(inventory)


def run_over_ssh(inventory, module, args):
    proc = subprocess.run([os.path.join(VENV_BIN, 'ansible'), 'fleet-host', '-i', inventory,
                           '-m', 'xdpkit.forwarding.' + module, '-a', json.dumps(args)],
                          cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len('RESULT '):])


def test_xdp_program_over_ssh_attaches_and_reruns_unchanged(cleanup, ssh_inventory):
    names = cleanup
    for module, args in (('netns', {'name': names('ns')}),
                         ('veth', {'name': names('h'), 'peer': {'name': 'veth0', 'namespace': names('ns')}})):
        assert run_over_ssh(ssh_inventory, module, args)['changed']
    args = {'interface': 'veth0', 'namespace': names('ns'), 'program': 'xdp_router'}
    first = run_over_ssh(ssh_inventory, 'xdp_program', args)
    assert first['changed'] and first['program']['name'] == 'xdp_router', first
    with iproute(names('ns')) as ipr:
        assert attached_program(ipr, get_link(ipr, 'veth0')['ifindex'])['prog_id'] == first['program']['prog_id']
    again = run_over_ssh(ssh_inventory, 'xdp_program', args)
    assert not again['changed'] and again['program']['prog_id'] == first['program']['prog_id']
    stats = run_over_ssh(ssh_inventory, 'xdp_stats', {'interface': 'veth0', 'namespace': names('ns')})
    assert stats['program']['name'] == 'xdp_router'
