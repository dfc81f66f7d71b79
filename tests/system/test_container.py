"""The boot test bed (container.py): a Debian root made with debootstrap boots under a real
systemd in systemd-nspawn, runs XDP with bcc in its own network namespace, reboots, and leaves
nothing on the host, pass or fail."""

import os
import subprocess
import time

import bpf_run
import container
import pytest

# A trivial XDP program, attached with bcc by the container's own python3 (argv[1]: the link).
ATTACH_XDP = '''
import sys
from bcc import BPF
b = BPF(text="int xt_pass(struct xdp_md *ctx) { return XDP_PASS; }")
b.attach_xdp(sys.argv[1], b.load_func("xt_pass", BPF.XDP), 0)
'''

GOOD_UNIT = '''[Unit]
Description=xdpkit test bed unit
Before=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/true

[Install]
WantedBy=multi-user.target
'''
# systemd-analyze verify refuses an ExecStart= that is not executable.
BAD_UNIT = GOOD_UNIT.replace('ExecStart=/bin/true', 'ExecStart=/nonexistent/xdpkit-agent')


def xdp_on(ct, link):
    """(program id, name) of the XDP program on LINK inside the container, read with ip -d link."""
    out = container.run(ct, ['ip', '-d', 'link', 'show', 'dev', link]).stdout
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ['prog/xdp']:
            return int(words[words.index('id') + 1]), words[words.index('name') + 1]
    return None


def attach_trivial_xdp(ct, names):
    container.run(ct, ['ip', 'link', 'add', names('a'), 'type', 'veth', 'peer', 'name', names('b')])
    container.run(ct, ['python3', '-c', ATTACH_XDP, names('a')], timeout=300)
    found = xdp_on(ct, names('a'))
    assert found and found[1] == 'xt_pass', found
    return found[0]


def wait_journal(ct, identifier, text, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        out = container.run(ct, ['journalctl', '-b', '--no-pager', '-o', 'cat', '-t', identifier], check=False).stdout
        if text in out or time.monotonic() > deadline:
            return text in out
        time.sleep(0.2)


def wait_prog_gone(prog_id, seconds=15):
    deadline = time.monotonic() + seconds
    while prog_id in bpf_run.prog_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    return prog_id not in bpf_run.prog_ids()


def assert_left_nothing(ct):
    assert ct.leftovers() == []
    assert not os.path.exists(ct.workdir), ct.workdir
    assert not os.path.exists('/proc/%d' % ct.nspawn.pid)


# -- pure parts -------------------------------------------------------------------------------

def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path):
    (tmp_path / 'sources.list.d').mkdir()
    (tmp_path / 'sources.list').write_text('# deb http://old.example/debian bookworm main\n'
                                           'deb [arch=amd64] http://one.example/debian trixie main\n')
    (tmp_path / 'sources.list.d' / 'debian.sources').write_text(
        'Types: deb\n# http://snapshot.example\nURIs: http://two.example/debian\nSuites: bookworm bookworm-updates\n'
        'Components: main\n\nTypes: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n')
    assert container.host_mirror('bookworm', str(tmp_path)) == 'http://two.example/debian'
    assert container.host_mirror('trixie', str(tmp_path)) == 'http://one.example/debian'
    with pytest.raises(container.ContainerError, match='sid'):
        container.host_mirror('sid', str(tmp_path))


def test_root_packages_follow_the_prerequisites_role():
    wanted = container.packages()
    for pkg in ('systemd', 'systemd-sysv', 'dbus', 'python3', 'python3-pyroute2', 'python3-bpfcc', 'iproute2',
                'bpftool', 'ethtool', 'nftables'):
        assert pkg in wanted
    assert len(wanted) == len(set(wanted))


def test_kernel_tree_covers_every_link_of_the_build_tree():
    paths = container.kernel_tree()
    release = os.uname().release
    assert paths[0] == '/lib/modules/%s' % release or '/lib/modules/%s' % release in paths
    build = os.path.join('/lib/modules', release, 'build')
    for link in [build] + [os.path.join(build, n) for n in os.listdir(build)]:
        if os.path.islink(link):
            target = os.path.realpath(link)
            assert any(target == p or target.startswith(p + '/') for p in paths), (link, target, paths)


# -- the root ---------------------------------------------------------------------------------

def test_root_holds_what_the_router_needs_to_run(container_root):
    proc = subprocess.run(['dpkg-query', '--admindir=%s/var/lib/dpkg' % container_root, '-W',
                           '-f=${db:Status-Abbrev} ${Package}\n'] + container.packages(),
                          capture_output=True, text=True, check=False)
    installed = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith('ii ')}
    assert set(container.packages()) <= installed, set(container.packages()) - installed
    assert not os.path.exists(container_root / 'etc' / 'hostname')
    assert not [n for n in os.listdir(container_root / 'var' / 'cache' / 'apt' / 'archives') if n.endswith('.deb')]


# -- booting ----------------------------------------------------------------------------------

def test_boot_runs_xdp_in_its_own_network_and_again_after_a_reboot(container_root, cleanup, tmp_path):
    names = cleanup
    shared = tmp_path / 'shared'
    shared.mkdir()
    (shared / 'hello').write_text('from the host\n')
    binds = [(str(shared), '/mnt/shared'), (str(shared), '/mnt/writable', 'rw')] + container.collection_binds()
    with container.booted(container_root, names('ct'), binds=binds) as ct:
        assert ct.state == 'running', container.run(ct, ['systemctl', '--failed', '--no-legend'], check=False).stdout
        assert container.run(ct, ['hostname']).stdout.strip() == names('ct')
        assert container.run(ct, ['cat', '/mnt/shared/hello']).stdout == 'from the host\n'
        # Read-only binds stay read-only inside; rw ones are written through.
        assert container.run(ct, ['touch', '/mnt/shared/x'], check=False).returncode != 0
        container.write(ct, '/mnt/writable/back', 'from inside\n')
        assert (shared / 'back').read_text() == 'from inside\n'
        # The collection's modules run inside through Ansible (the checkout and venv bound in),
        # on the container's python3 with its pyroute2, and see the container's links only.
        proc = container.ansible(ct, 'ansible', ['localhost', '-c', 'local', '-m', 'xdpkit.forwarding.link_info',
                                                 '-a', 'names=lo', '-o'])
        assert 'localhost | SUCCESS' in proc.stdout and '"lo"' in proc.stdout, proc.stdout
        # ... and log to the container's journal, where a boot unit's refusals will be read.
        assert wait_journal(ct, 'ansible-xdpkit.forwarding.link_info', "Invoked with names=['lo']")

        first = attach_trivial_xdp(ct, names)
        # The veth lives in the container's network namespace, not the host's.
        assert subprocess.run(['ip', 'link', 'show', names('a')], capture_output=True, check=False).returncode != 0
        container.run(ct, ['mkdir', '/sys/fs/bpf/%s' % names('pin')])
        container.write(ct, '/run/xt-boot-marker', 'boot 1\n')
        leader = ct.leader

        container.reboot(ct)
        assert ct.exit_codes == [container.NSPAWN_REBOOT]
        assert ct.boots == 2 and ct.leader != leader and ct.state == 'running'
        # A new boot: a new network namespace, a new bpffs, a new /run.
        assert container.run(ct, ['ip', 'link', 'show', names('a')], check=False).returncode != 0
        assert names('pin') not in container.run(ct, ['ls', '/sys/fs/bpf']).stdout.split()
        assert container.run(ct, ['test', '-e', '/run/xt-boot-marker'], check=False).returncode != 0
        assert wait_prog_gone(first), 'XDP program %d outlived the reboot' % first

        second = attach_trivial_xdp(ct, names)
        assert second != first
    assert ct.exit_codes == [container.NSPAWN_REBOOT, 0]
    assert_left_nothing(ct)
    assert wait_prog_gone(second), 'XDP program %d outlived the container' % second


def test_systemd_analyze_verify_inside_and_on_the_host(container_root, cleanup, tmp_path):
    names = cleanup
    for text, ok in ((GOOD_UNIT, True), (BAD_UNIT, False)):
        unit = tmp_path / ('%s.service' % names('u'))
        unit.write_text(text)
        host = subprocess.run(['systemd-analyze', 'verify', str(unit)], capture_output=True, text=True,
                              check=False)
        assert (host.returncode == 0) == ok, host.stderr
        if not ok:
            assert '/nonexistent/xdpkit-agent' in host.stderr
    path = '/etc/systemd/system/%s.service' % names('u')
    with container.booted(container_root, names('ct')) as ct:
        for text, ok in ((GOOD_UNIT, True), (BAD_UNIT, False)):
            container.write(ct, path, text)
            inside = container.run(ct, ['systemd-analyze', 'verify', path], check=False)
            assert (inside.returncode == 0) == ok, inside.stderr
            if not ok:
                assert '/nonexistent/xdpkit-agent' in inside.stderr
        # The good unit also really runs under the container's systemd.
        container.write(ct, path, GOOD_UNIT)
        container.run(ct, ['systemctl', 'daemon-reload'])
        container.run(ct, ['systemctl', 'start', '%s.service' % names('u')])
        assert container.run(ct, ['systemctl', 'is-active', '%s.service' % names('u')]).stdout.strip() == 'active'
    assert_left_nothing(ct)


def test_a_failing_test_inside_still_leaves_nothing_behind(container_root, cleanup):
    names = cleanup
    seen = []
    with pytest.raises(RuntimeError, match='the test failed'):
        with container.booted(container_root, names('ct')) as ct:
            seen.append(ct)
            attach_trivial_xdp(ct, names)
            # Something that keeps running: the kill by pid has to find it.
            container.run(ct, ['systemd-run', '--unit=%s' % names('sleep'), 'sleep', '1000'])
            raise RuntimeError('the test failed')
    assert_left_nothing(seen[0])


def test_a_container_that_will_not_power_off_is_killed(container_root, cleanup):
    names = cleanup
    with container.booted(container_root, names('ct'), stop_timeout=5) as ct:
        # A service that ignores SIGTERM and that systemd waits for forever: poweroff hangs.
        container.run(ct, ['systemd-run', '--unit=%s' % names('stuck'), '-p', 'TimeoutStopSec=infinity',
                           '-p', 'KillSignal=SIGCONT', 'sleep', '1000'])
        attach_trivial_xdp(ct, names)
        started = time.monotonic()
    assert time.monotonic() - started < 30
    # Killed, not powered off: nspawn did not exit 0 by itself.
    assert ct.exit_codes and ct.exit_codes[-1] != 0, ct.exit_codes
    assert_left_nothing(ct)


def test_a_root_that_cannot_boot_fails_loudly_and_leaves_nothing(cleanup, tmp_path, monkeypatch):
    names = cleanup
    with pytest.raises(container.ContainerError, match='no init'):
        with container.booted(tmp_path, names('ct')):
            pass
    # An init that is not a program: nspawn gives up, the error carries its console.
    (tmp_path / 'sbin').mkdir()
    (tmp_path / 'sbin' / 'init').write_text('not a program\n')
    seen = []
    original = container.Container.start

    def start(self, timeout):
        seen.append(self)
        return original(self, timeout)

    monkeypatch.setattr(container.Container, 'start', start)
    with pytest.raises(container.ContainerError, match='did not boot|stopped while booting'):
        with container.booted(tmp_path, names('ct'), timeout=30):
            pass
    assert seen and seen[0].leftovers() == []
    assert not os.path.exists(seen[0].workdir)
