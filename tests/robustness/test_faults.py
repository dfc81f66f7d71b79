"""Out-of-band faults under a running scenario: each is followed by a normal site.yml run,
which must converge back (its own verification proves XDP forwards again), and a teardown,
which must leave nothing behind."""

import ctypes
import os
import signal
import subprocess
import time

import pytest
from conftest import ROOT, VENV_BIN, ansible_env, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns, remove_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp import attached_program, detach

FORWARDING = ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding')


def scenario(prefix, **extra):
    return dict({'xdpkit_scenarios': ['fib'], 'xdpkit_name_prefix': prefix}, **extra)


def converge(prefix, **extra):
    rc, out, err = run_playbook('site.yml', scenario(prefix, **extra))
    assert rc == 0, out[-5000:] + err[-2000:]
    return out


def replace_with_foreign_program(interface):
    """What another tool does: load its own program and attach it over ours."""
    from bcc import BPF
    bpf = BPF(text=b'#include <uapi/linux/bpf.h>\nint foreign(struct xdp_md *ctx) { return XDP_PASS; }\n')
    BPF.attach_xdp(interface.encode(), bpf.load_func(b'foreign', BPF.XDP), 1 << 2)
    bpf.cleanup()


def unmount_bpffs():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.umount2(b'/sys/fs/bpf', 0) == 0, os.strerror(ctypes.get_errno())


def kill_mid_converge(prefix):
    """SIGKILL the whole playbook run the moment it starts attaching programs."""
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), 'site.yml', '-e',
           '{"xdpkit_scenarios": ["fib"], "xdpkit_name_prefix": "%s"}' % prefix]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        if 'Attach the XDP router' in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


FAULTS = {
    'namespace_deleted': lambda p: remove_netns(p + 'fib-uno'),
    'veth_deleted': lambda p: _delete_link(p + 'fib-dos'),
    'program_detached': lambda p: detach(None, p + 'fib-uno', 'native'),
    'program_replaced': lambda p: replace_with_foreign_program(p + 'fib-dos'),
    'map_unpinned': lambda p: os.unlink('/sys/fs/bpf/xdpkit/%sfib-maps/tx_ports' % p),
    'bpffs_unmounted': lambda p: unmount_bpffs(),
}


def _delete_link(name):
    with iproute() as ipr:
        ipr.link('del', index=get_link(ipr, name)['ifindex'])


@pytest.fixture
def torn_down(cleanup):
    """The scenario's teardown runs even when the test fails, so host sysctls come back."""
    yield cleanup.prefix
    run_playbook('site.yml', scenario(cleanup.prefix, state='absent'))


@pytest.mark.parametrize('fault', sorted(FAULTS) + ['killed_mid_converge'])
def test_scenario_converges_back_after_a_fault_and_tears_down_clean(fault, torn_down):
    prefix = torn_down
    forwarding_before = [read_sysctl(None, key) for key in FORWARDING]
    if fault == 'killed_mid_converge':
        kill_mid_converge(prefix)
    else:
        converge(prefix)
        FAULTS[fault](prefix)
    out = ' '.join(converge(prefix).split())  # the summary is wrapped over lines
    # The role's own verification asserted that XDP redirected the pings; the kernel did none.
    assert 'XDP_REDIRECT +' in out and 'kernel forwarded +0 IPv4 / +0 IPv6' in out, out[-3000:]
    with iproute() as ipr:
        for port in ('fib-uno', 'fib-dos'):
            link = get_link(ipr, prefix + port)
            assert attached_program(ipr, link['ifindex']) is not None

    rc, out, err = run_playbook('site.yml', scenario(prefix, state='absent'))
    assert rc == 0, out[-5000:] + err[-2000:]
    assert not [ns for ns in list_netns() if ns.startswith(prefix)]
    with iproute() as ipr:
        assert not [m.get_attr('IFLA_IFNAME') for m in ipr.get_links()
                    if m.get_attr('IFLA_IFNAME').startswith(prefix)]
    assert not [name for name in _bpf.pinned_files(_bpf.PIN_ROOT) if prefix in name]
    assert [read_sysctl(None, key) for key in FORWARDING] == forwarding_before
