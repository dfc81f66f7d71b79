"""Runs last (tests/ is collected in name order): the suite left nothing behind - no
namespace, link or pin of its own, and no more BPF programs or maps than it found."""

import os
import time

import bpf_run
from conftest import BASELINE, BPF_TEST_ROOT, TEST_PREFIX, frr_dirs, routing_daemons

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins, _bpf_sys, _keeper
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns


def test_no_namespace_link_or_pin_of_the_suite_remains():
    assert not [ns for ns in list_netns() if ns.startswith(TEST_PREFIX)]
    with iproute() as ipr:
        assert not [m.get_attr('IFLA_IFNAME') for m in ipr.get_links()
                    if m.get_attr('IFLA_IFNAME').startswith(TEST_PREFIX)]
    assert not os.path.exists(BPF_TEST_ROOT)
    assert set(_bpf_pins.pinned_files(_bpf_pins.PIN_ROOT)) <= BASELINE['pins']
    # Namespace locks (modules run through the netns connection) go with their namespace.
    locks = os.listdir('/run/xdpkit') if os.path.isdir('/run/xdpkit') else []
    assert not [n for n in locks if n.startswith('lock@' + TEST_PREFIX) and n not in BASELINE['locks']]


def test_no_routing_daemon_or_its_sockets_remain():
    """Every FRR the labs started was stopped (by its pid), and its pathspace went with it: no
    configuration, pid file or vty / zserv socket of it is left."""
    stray = sorted(set(routing_daemons()) - BASELINE['routing_daemons'])
    assert not stray, 'routing daemons the suite started still run: %s' % ', '.join(
        '%s (pid %d)' % (exe, pid) for pid, _start, exe in stray)
    left = sorted(set(frr_dirs()) - BASELINE['frr_dirs'])
    sockets = [os.path.join(d, f) for d in left for f in os.listdir(d) if f.endswith(('.vty', '.api'))]
    assert not left, 'FRR directories the suite made are still there: %s (sockets: %s)' % (
        ', '.join(left), ', '.join(sockets) or 'none')


def test_no_keeper_is_left_running():
    """The keeper a module started leaves by itself once no router is left to keep (it was
    not running before the suite, or the suite would not have started its own)."""
    deadline = time.monotonic() + _keeper.IDLE_EXIT_SECONDS + 10
    while _keeper.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _keeper.running() is None, 'a keeper still runs: %s (%s)' % (_keeper.running(), _keeper.LOG_FILE)


def describe(kind, ids, fd_by_id, info):
    """'prog 12 xdp_router' for each id; one that cannot be opened or read is described by the
    error instead, and is still listed: what decides a leak is the id, not its description."""
    described = []
    for obj_id in sorted(ids):
        try:
            fd = fd_by_id(obj_id)
        except OSError as exc:
            described.append('%s %d (cannot open it: %s)' % (kind, obj_id, exc))
            continue
        try:
            described.append('%s %d %s' % (kind, obj_id, info(fd)['name']))
        except OSError as exc:
            described.append('%s %d (cannot read it: %s)' % (kind, obj_id, exc))
        finally:
            os.close(fd)
    return described


def test_no_bpf_program_or_map_of_the_suite_remains():
    # Programs and maps are freed after an RCU grace period: give them a moment.
    deadline = time.monotonic() + 15
    while True:
        progs = set(bpf_run.prog_ids()) - BASELINE['progs']
        maps = set(bpf_run.map_ids()) - BASELINE['maps']
        if (not progs and not maps) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # A leak is an id the kernel still lists after the wait, whether or not it can be opened.
    assert not progs and not maps, 'BPF programs and maps the suite loaded are still there: %s' % ', '.join(
        describe('prog', progs, _bpf_sys.prog_fd_by_id, _bpf_sys.prog_info)
        + describe('map', maps, _bpf_sys.map_fd_by_id, _bpf_sys.map_info))
