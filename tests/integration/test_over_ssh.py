"""The modules over a real SSH connection, as on a fleet: the BPF sources travel from the
controller (action plugin), nothing on the target comes from the collection's files."""

import json
import os
import socket
import subprocess
import time

import pytest
from conftest import ROOT, VENV_BIN, ansible_env

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp import attached_program


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def ssh_inventory(tmp_path):
    """An sshd of the test's own on 127.0.0.1 with throw-away keys, and an inventory for it."""
    for key in ('host', 'client'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / key)], check=True)
    (tmp_path / 'authorized_keys').write_text((tmp_path / 'client.pub').read_text())
    port = free_port()
    config = tmp_path / 'sshd_config'
    config.write_text('\n'.join([
        'Port %d' % port, 'ListenAddress 127.0.0.1', 'HostKey %s' % (tmp_path / 'host'),
        'AuthorizedKeysFile %s' % (tmp_path / 'authorized_keys'), 'PermitRootLogin prohibit-password',
        'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
        'PidFile %s' % (tmp_path / 'sshd.pid'), 'Subsystem sftp internal-sftp', '']))
    made_privsep = not os.path.isdir('/run/sshd')
    os.makedirs('/run/sshd', exist_ok=True)
    sshd = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e', '-f', str(config)], stderr=subprocess.PIPE, text=True)
    try:
        for _i in range(50):
            with socket.socket() as sock:
                if sock.connect_ex(('127.0.0.1', port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError('sshd did not start: %s' % sshd.stderr.read())
        inventory = tmp_path / 'inventory.yml'
        inventory.write_text(
            'all:\n  hosts:\n    fleet-host:\n'
            '      ansible_host: 127.0.0.1\n      ansible_port: %d\n      ansible_user: root\n'
            '      ansible_connection: ssh\n      ansible_python_interpreter: /usr/bin/python3\n'
            '      ansible_ssh_private_key_file: %s\n'
            "      ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
            # No persistent master connection: it would keep a session of this sshd alive.
            "      ansible_ssh_args: '-o ControlMaster=no'\n"
            % (port, tmp_path / 'client'))
        yield str(inventory)
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
        if made_privsep:
            os.rmdir('/run/sshd')


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
