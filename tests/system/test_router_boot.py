"""The router role on a host whose service manager is systemd (container.py boots one): the
router survives a reboot (sysctl drop-in, xdpkit-router.service attaching from the declarative
file, xdpkit-keeper.service), refuses at boot exactly as the module refuses and says why in the
journal, and state=absent leaves nothing of ours after the next boot.

Inside the container a test-only unit (xt-lab.service, ordered before network.target as a
host's networking is) makes the same lab at every boot: two namespaces behind two veth pairs,
r1 10.91.1.1/24 - h1 10.91.1.2 in xt-left, r2 10.91.2.1/24 - h2 10.91.2.2 in xt-right, GRO on
h1 and h2 so redirected frames are delivered. The router runs on r1 and r2.
"""

import json
import os
import subprocess
import time

import container
import pytest
from conftest import report

UNITS = ('xdpkit-router.service', 'xdpkit-keeper.service')
OURS = ['/etc/systemd/system/%s' % unit for unit in UNITS] + [
    '/etc/xdpkit', '/etc/sysctl.d/60-xdpkit-router.conf', '/usr/local/lib/xdpkit']
FORWARDING = ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding')

LAB_SCRIPT = '''#!/bin/sh
# Test lab made at every boot (tests/system/test_router_boot.py).
set -e
for n in 1 2; do
    if [ $n = 1 ]; then ns=xt-left; else ns=xt-right; fi
    ip netns add $ns
    ip link add r$n type veth peer name h$n netns $ns
    ip addr add 10.91.$n.1/24 dev r$n
    ip link set r$n up
    ip -n $ns link set lo up
    ip -n $ns addr add 10.91.$n.2/24 dev h$n
    ip -n $ns link set h$n up
    ip -n $ns route add default via 10.91.$n.1
    ip netns exec $ns sh -c "echo 0 > /proc/sys/net/ipv4/conf/all/forwarding"
    # A veth end receives redirected frames only with NAPI running: GRO on does that.
    ip netns exec $ns ethtool -K h$n gro on
done
'''

LAB_UNIT = '''[Unit]
Description=xdpkit test lab (two namespaces behind r1 and r2)
Before=network.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/xt-lab

[Install]
WantedBy=multi-user.target
'''

PLAYBOOK = '''- name: The XDP router on this host
  hosts: localhost
  gather_facts: false
  vars:
    router_interfaces: [r1, r2]
    # The root holds the prerequisites already and has no network to install from.
    router_prerequisites: false
  roles:
    - role: xdpkit.forwarding.router
'''

NFTABLES = '''#!/usr/sbin/nft -f
flush ruleset
table inet xt_filter {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr 10.91.1.0/24 counter
    }
}
'''


def inside(ct, argv, check=True, timeout=120):
    return container.run(ct, argv, check=check, timeout=timeout)


def make_lab_unit(ct):
    container.write(ct, '/usr/local/sbin/xt-lab', LAB_SCRIPT, mode=0o755)
    container.write(ct, '/etc/systemd/system/xt-lab.service', LAB_UNIT)
    inside(ct, ['systemctl', 'daemon-reload'])
    inside(ct, ['systemctl', 'enable', '--now', 'xt-lab.service'])


def apply_role(ct, state='present'):
    container.write(ct, '/root/router.yml', PLAYBOOK)
    started = time.monotonic()
    proc = container.ansible(ct, 'ansible-playbook', ['-c', 'local', '-i', 'localhost,', '/root/router.yml',
                                                      '-e', 'state=%s' % state], check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout, time.monotonic() - started


def unit_state(ct, unit):
    return inside(ct, ['systemctl', 'show', '-p', 'ActiveState,Result,ExecMainStatus,UnitFileState', unit]).stdout


def is_active(ct, unit):
    return inside(ct, ['systemctl', 'is-active', unit], check=False).stdout.strip()


def xdp_program(ct, link):
    """(prog id, name) of the XDP program on LINK inside the container, or None."""
    out = inside(ct, ['ip', '-d', 'link', 'show', 'dev', link]).stdout
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ['prog/xdp']:
            return int(words[words.index('id') + 1]), words[words.index('name') + 1]
    return None


def redirected(ct, link):
    """XDP_REDIRECT packets of the router on LINK, read with the collection's xdp_stats module."""
    proc = container.ansible(ct, 'ansible', ['localhost', '-c', 'local', '-i', 'localhost,', '-o', '-m',
                                             'xdpkit.forwarding.xdp_stats', '-a', 'interface=%s' % link])
    result = json.loads(proc.stdout.split('=>', 1)[1])
    return result['stats']['XDP_REDIRECT']['packets']


def ping_through(ct, count=20):
    """Pings from xt-left to xt-right and back through the router; returns how many XDP_REDIRECT rose."""
    before = redirected(ct, 'r1') + redirected(ct, 'r2')
    for ns, to in (('xt-left', '10.91.2.2'), ('xt-right', '10.91.1.2')):
        proc = inside(ct, ['ip', 'netns', 'exec', ns, 'ping', '-c', str(count), '-i', '0.05', '-W', '2', to],
                      check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return redirected(ct, 'r1') + redirected(ct, 'r2') - before


def sysctls(ct):
    # (procps' sysctl is not in the minimal root)
    return {key: inside(ct, ['cat', '/proc/sys/' + key.replace('.', '/')]).stdout.strip() for key in FORWARDING}


def keeper_processes(ct):
    """Pids inside whose command line runs the keeper module."""
    code = ('import os\n'
            'for p in os.listdir("/proc"):\n'
            '    if not p.isdigit() or int(p) == os.getpid():\n'
            '        continue\n'
            '    try:\n'
            '        c = open("/proc/%s/cmdline" % p, "rb").read()\n'
            '    except OSError:\n'
            '        continue\n'
            '    if b"module_utils._keeper" in c:\n'
            '        print(p)\n')
    return inside(ct, ['python3', '-c', code]).stdout.split()


def keeper_record(ct):
    proc = inside(ct, ['cat', '/run/xdpkit/keeper.json'], check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def journal(ct, unit):
    return inside(ct, ['journalctl', '-b', '--no-pager', '-o', 'cat', '-u', unit], check=False).stdout


def wait_for(what, seconds=15):
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def keeper_status(ct):
    return inside(ct, ['systemctl', 'show', '-p', 'StatusText', '--value', 'xdpkit-keeper.service'],
                  check=False).stdout.strip()


def assert_router_back(ct, previous_ids):
    """After a boot: the units ran, the router is on r1 and r2 (new programs), forwarding is on,
    the keeper runs, and frames between the namespaces are XDP_REDIRECTed."""
    assert is_active(ct, 'xt-lab.service') == 'active'
    assert is_active(ct, 'xdpkit-router.service') == 'active', unit_state(ct, 'xdpkit-router.service') + journal(
        ct, 'xdpkit-router.service')
    assert wait_for(lambda: is_active(ct, 'xdpkit-keeper.service') == 'active'), journal(ct, 'xdpkit-keeper.service')
    # systemctl status says what the keeper keeps: both router ports.
    assert wait_for(lambda: 'keeping 2 ports' in keeper_status(ct)), keeper_status(ct)
    programs = {link: xdp_program(ct, link) for link in ('r1', 'r2')}
    assert all(p and p[1] == 'xdp_router' for p in programs.values()), programs
    ids = {p[0] for p in programs.values()}
    assert not ids & set(previous_ids), (ids, previous_ids)
    assert sysctls(ct) == {key: '1' for key in FORWARDING}
    assert ping_through(ct) >= 40
    return ids


@pytest.fixture
def router_root(container_root, tmp_path):
    """A copy of the session's root: this test installs units, a lab and nftables rules in it,
    which the other boot tests must not find."""
    path = tmp_path / 'root'
    started = time.monotonic()
    subprocess.run(['cp', '-a', '--reflink=auto', str(container_root), str(path)], check=True, capture_output=True)
    report('router boot test: root copied in %.1f s' % (time.monotonic() - started))
    # The distribution's forwarding values, applied at every boot as a real host's would be: the
    # container's network namespace otherwise starts with the host's IPv4 values (a routing host's 1).
    baseline = path / 'etc' / 'sysctl.d' / '10-xt-distribution.conf'
    baseline.parent.mkdir(parents=True, exist_ok=True)
    baseline.write_text(''.join('%s = 0\n' % key for key in FORWARDING))
    try:
        yield path
    finally:
        container.remove_root(path)


def test_unit_files_pass_systemd_analyze_verify_on_the_host():
    files = os.path.join(container.ROOT, 'roles', 'router', 'files')
    proc = subprocess.run(['systemd-analyze', 'verify'] + [os.path.join(files, unit) for unit in UNITS],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_router_survives_reboots_refuses_at_boot_and_leaves_nothing(router_root, cleanup):
    names = cleanup
    timings = {}
    with container.booted(router_root, names('ct'), binds=container.collection_binds(), timeout=180) as ct:
        timings['first boot'] = ct.boot_seconds[-1]
        make_lab_unit(ct)
        assert sysctls(ct) == {key: '0' for key in FORWARDING}
        out, timings['role (install + attach)'] = apply_role(ct)
        assert 'failed=0' in out

        # What the role wrote, as systemd reads it.
        for path in OURS:
            inside(ct, ['test', '-e', path])
        verify = inside(ct, ['systemd-analyze', 'verify'] + ['/etc/systemd/system/%s' % u for u in UNITS],
                        check=False)
        assert verify.returncode == 0, verify.stderr
        config = json.loads(inside(ct, ['cat', '/etc/xdpkit/router.json']).stdout)
        assert config['interfaces'] == ['r1', 'r2'] and config['netfilter'] == 'refuse', config
        assert json.loads(inside(ct, ['cat', '/etc/xdpkit/sysctl-before.json']).stdout) == {
            key: '0' for key in FORWARDING}
        for unit in UNITS:
            assert inside(ct, ['systemctl', 'is-enabled', unit]).stdout.strip() == 'enabled'
        first = assert_router_back(ct, [])

        # A second run changes nothing (the unit's own attach found the router in place too).
        out, timings['role rerun'] = apply_role(ct)
        assert 'changed=0' in out, out[-3000:]

        # An upgrade: the host runs a keeper of other code (an older collection); the role puts
        # today's code in place and restarts the keeper, and the router forwards throughout.
        keeper_file = '/usr/local/lib/xdpkit/ansible_collections/xdpkit/forwarding/plugins/module_utils/_keeper.py'
        inside(ct, ['sh', '-c', 'echo "# an older keeper" >> %s' % keeper_file])
        inside(ct, ['systemctl', 'restart', 'xdpkit-keeper.service'])
        assert wait_for(lambda: keeper_record(ct).get('pid') in map(int, keeper_processes(ct)))
        older = keeper_record(ct)
        pinging = container.subprocess.Popen(
            ['nsenter', '--target', str(ct.leader), '--all', '--', 'ip', 'netns', 'exec', 'xt-left', 'ping', '-q',
             '-c', '1500', '-i', '0.02', '-W', '1', '10.91.2.2'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=container.INSIDE_ENV)
        before = redirected(ct, 'r1')
        out, timings['role upgrade'] = apply_role(ct)
        assert 'Restart a running keeper' in out and 'changed=' in out
        upgraded = keeper_record(ct)
        assert upgraded['pid'] != older['pid'] and upgraded['version'] != older['version'], (older, upgraded)
        pinged = pinging.communicate(timeout=90)[0]
        assert '1500 packets transmitted, 1500 received' in pinged, pinged
        # Every echo request crossed r1 by XDP_REDIRECT, through the keeper's restart (the leases
        # outlast it), give or take a few.
        timings['echo requests redirected during the upgrade (of 1500)'] = redirected(ct, 'r1') - before
        assert timings['echo requests redirected during the upgrade (of 1500)'] >= 1450
        assert is_active(ct, 'xdpkit-keeper.service') == 'active'

        container.reboot(ct, timeout=180)
        timings['reboot'] = ct.boot_seconds[-1]
        log = journal(ct, 'xdpkit-router.service')
        assert 'attached in' in log, log
        second = assert_router_back(ct, first)

        # A refusal at boot: a forward rule loaded by nftables.service (before network-pre.target).
        container.write(ct, '/etc/nftables.conf', NFTABLES, mode=0o755)
        inside(ct, ['systemctl', 'enable', 'nftables.service'])
        container.reboot(ct, timeout=180)
        timings['reboot with a refusal'] = ct.boot_seconds[-1]
        assert is_active(ct, 'nftables.service') == 'active'
        assert is_active(ct, 'xdpkit-router.service') == 'failed', unit_state(ct, 'xdpkit-router.service')
        assert xdp_program(ct, 'r1') is None and xdp_program(ct, 'r2') is None
        # The module, asked the same, refuses with the same words.
        proc = container.ansible(ct, 'ansible', ['localhost', '-c', 'local', '-i', 'localhost,', '-o', '-m',
                                                 'xdpkit.forwarding.xdp_program', '-a',
                                                 'interfaces=r1,r2 program=xdp_router keeper=external '
                                                 'maps_dir=/sys/fs/bpf/xdpkit/router'], check=False)
        assert 'FAILED' in proc.stdout, proc.stdout
        message = json.loads(proc.stdout.split('=>', 1)[1])['msg']
        assert 'refusing to attach xdp_router' in message
        assert 'refused: %s' % message in journal(ct, 'xdpkit-router.service'), journal(ct, 'xdpkit-router.service')
        # No router, so no keeper: it is not started or left by itself.
        assert wait_for(lambda: not keeper_processes(ct), seconds=10)
        inside(ct, ['systemctl', 'disable', '--now', 'nftables.service'])
        inside(ct, ['nft', 'flush', 'ruleset'])

        # state=absent through the role; after the next boot nothing of ours is left.
        out, timings['role absent'] = apply_role(ct, 'absent')
        for path in OURS:
            assert inside(ct, ['test', '-e', path], check=False).returncode != 0, path
        container.reboot(ct, timeout=180)
        timings['reboot after absent'] = ct.boot_seconds[-1]
        for path in OURS:
            assert inside(ct, ['test', '-e', path], check=False).returncode != 0, path
        listed = inside(ct, ['systemctl', 'list-unit-files', '--no-legend', 'xdpkit*'], check=False).stdout
        assert listed.strip() == '', listed
        assert is_active(ct, 'xt-lab.service') == 'active'
        assert xdp_program(ct, 'r1') is None and xdp_program(ct, 'r2') is None
        assert sysctls(ct) == {key: '0' for key in FORWARDING}
        assert not keeper_processes(ct)
        assert second
    report('router boot test: ' + ', '.join('%s %.1f' % item for item in timings.items()))
