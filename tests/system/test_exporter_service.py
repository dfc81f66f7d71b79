"""The exporter role on a host whose service manager is systemd (container.py boots one):
xdpkit-exporter.service runs and serves Prometheus text on the address and port the role was
given, a re-run changes nothing, the textfile alternative writes node_exporter's file instead,
and state=absent leaves no unit behind."""

import json
import shutil
import subprocess
import time

import container
import pytest

UNIT = '/etc/systemd/system/xdpkit-exporter.service'
PORT = 9435
PLAYBOOK = '''- name: The exporter on this host
  hosts: localhost
  gather_facts: false
  vars:
    exporter_listen_address: 127.0.0.1
    exporter_port: %d
    # The root holds the prerequisites already and has no network to install from.
    exporter_prerequisites: false
  roles:
    - role: xdpkit.forwarding.exporter
''' % PORT
FETCH = ('import sys, urllib.request\n'
         'sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n')


@pytest.fixture
def exporter_root(container_root, tmp_path):
    path = tmp_path / 'root'
    subprocess.run(['cp', '-a', '--reflink=auto', str(container_root), str(path)], check=True, capture_output=True)
    try:
        yield path
    finally:
        container.remove_root(path)


def apply_role(ct, **extra):
    proc = container.ansible(ct, 'ansible-playbook', ['-c', 'local', '-i', 'localhost,', '/root/exporter.yml',
                                                      '-e', json.dumps(extra)], check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def wait_active(ct):
    for _attempt in range(100):
        state = container.run(ct, ['systemctl', 'is-active', 'xdpkit-exporter.service'], check=False).stdout.strip()
        if state == 'active':
            fetched = container.run(ct, ['python3', '-c', FETCH, 'http://127.0.0.1:%d/metrics' % PORT], check=False)
            if fetched.returncode == 0:
                return fetched.stdout
        time.sleep(0.2)
    raise AssertionError(container.run(ct, ['journalctl', '-u', 'xdpkit-exporter', '--no-pager'], check=False).stdout)


def test_the_exporter_role_runs_a_service_that_serves_and_leaves_nothing(exporter_root, cleanup):
    assert shutil.which('systemd-nspawn'), 'install systemd-container (scripts/bootstrap does)'
    with container.booted(exporter_root, cleanup('ct'), binds=container.collection_binds(), timeout=180) as ct:
        container.write(ct, '/root/exporter.yml', PLAYBOOK)
        # A namespace for the exporter to enter (setns under the unit's sandbox).
        container.run(ct, ['ip', 'netns', 'add', 'xt-exp'])
        out = apply_role(ct)
        assert 'failed=0' in out, out[-3000:]
        assert container.run(ct, ['systemctl', 'is-enabled', 'xdpkit-exporter.service']).stdout.strip() == 'enabled'
        body = wait_active(ct)
        assert '# TYPE xdpkit_xdp_packets_total counter' in body and 'xdpkit_exporter_ports_omitted 0.0' in body, body
        unit = container.run(ct, ['cat', UNIT]).stdout
        assert '--web.listen-address=127.0.0.1:%d' % PORT in unit, unit
        # Its code is a tree of its own: the router role's (and the keeper it runs) is not touched.
        assert 'PYTHONPATH=/usr/local/lib/xdpkit-exporter' in unit, unit
        assert container.run(ct, ['test', '-e', '/usr/local/lib/xdpkit'], check=False).returncode != 0

        out = apply_role(ct)
        assert 'changed=0' in out, out[-3000:]

        # The textfile alternative: the same unit rewritten, restarted, no port open.
        out = apply_role(ct, exporter_method='textfile', exporter_textfile_directory='/var/lib/xt-textfile',
                         exporter_textfile_interval=1)
        assert 'failed=0' in out, out[-3000:]
        for _attempt in range(100):
            if container.run(ct, ['test', '-s', '/var/lib/xt-textfile/xdpkit.prom'], check=False).returncode == 0:
                break
            time.sleep(0.2)
        text = container.run(ct, ['cat', '/var/lib/xt-textfile/xdpkit.prom']).stdout
        assert '# TYPE xdpkit_xdp_packets_total counter' in text, text
        closed = container.run(ct, ['python3', '-c', FETCH, 'http://127.0.0.1:%d/metrics' % PORT], check=False)
        assert closed.returncode != 0, 'the HTTP exporter stopped'

        out = apply_role(ct, state='absent', exporter_textfile_directory='/var/lib/xt-textfile')
        assert 'failed=0' in out, out[-3000:]
        for path in (UNIT, '/usr/local/lib/xdpkit-exporter'):
            assert container.run(ct, ['test', '-e', path], check=False).returncode != 0, path
        assert container.run(ct, ['systemctl', 'is-active', 'xdpkit-exporter.service'],
                             check=False).stdout.strip() != 'active'
        assert container.run(ct, ['test', '-e', '/var/lib/xt-textfile/xdpkit.prom'], check=False).returncode != 0
        container.run(ct, ['ip', 'netns', 'del', 'xt-exp'])
