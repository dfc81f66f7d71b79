"""The keeper keeps the router right after Ansible leaves: every port's entry follows the
kernel's settings and MAC within a second, whatever changed them, in the host namespace and in
named ones; and when the keeper is gone the router stops trusting what may be stale and hands
frames to the kernel, which then does exactly what Linux does.

    [NAMEg: g0] ==veth== [NAMEr: r0 | xdp_router | r1] ==veth== [NAMEs: s0]
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
import three_namespaces
from conftest import ROOT, in_ns, run_module
from packets import ETH_P_IP, ether, ipv4, udp
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins, _keeper, _local_sources, _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._lease import PORT_ENTRY
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_addresses, get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns, in_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl, write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    find_stats_map,
    interface_program,
    read_counters,
)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
# SPOOFED claims to be from the sink's side: with rp_filter 1 its route back is not through r0.
SENDER, SPOOFED, SINK = '10.71.1.2', '10.71.2.77', '10.71.2.2'


def wait_for(what, condition, seconds):
    """Seconds until condition() held; fails naming `what` when it did not within `seconds`."""
    start = time.monotonic()
    while True:
        value = condition()
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            raise AssertionError('%s: not within %.1f s' % (what, seconds))
        time.sleep(0.02)


def entry_of(maps_dir, namespace, port):
    """The port entry of the router instance attached to `port` (found by the program on the port,
    so that it holds after a rename; maps_dir says which router it must belong to)."""
    with iproute(namespace) as ipr:
        prog = attached_program(ipr, get_link(ipr, port)['ifindex'])
    for pin_dir, router in _keeper.routers().items():
        if prog and router['prog_id'] == prog['prog_id'] and router['maps_dir'] == maps_dir:
            return _ports.read_entry(os.path.join(pin_dir, PORT_ENTRY))
    return None


def kernel_view(namespace, port):
    """The entry the kernel's settings call for, read independently of the keeper's code path."""
    with iproute(namespace) as ipr:
        link = get_link(ipr, port)
        addressed = any(a.version == 4 for a in get_addresses(ipr, link['ifindex']))
    return _ports.wanted_port(namespace, link, addressed)


def follows(maps_dir, namespace, port, what):
    """The port's entry equals what the kernel says within a second of a change."""
    def current():
        entry = entry_of(maps_dir, namespace, port)
        return entry is not None and _ports.facts(entry) == kernel_view(namespace, port) and \
            entry['vouched_until'] > time.monotonic_ns()
    return wait_for('the entry of %s follows %s' % (port, what), current, 1.0)


@pytest.fixture
def keeper_free():
    """No keeper from an earlier test: this one starts its own through the module."""
    _keeper.stop()
    yield
    # The keeper leaves by itself once the test's routers are gone; the cleanup waits for that.


@pytest.fixture
def routed(cleanup, keeper_free):
    """G, R, S as in the module docstring; R forwards 10.71.1.0/24 <-> 10.71.2.0/24 with rp_filter 0,
    the router on r0 and r1 (through the module: it starts the keeper)."""
    names = three_namespaces.build(cleanup, '10.71', default_routes=False)
    r, s = names.r, names.s
    for key in ('net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.r0.rp_filter',
                'net.ipv4.conf.all.accept_local', 'net.ipv4.conf.r0.accept_local'):
        write_sysctl(r, key, '0')
    names.maps_dir = '/sys/fs/bpf/xdpkit/%s-keep' % names.prefix
    result = run_module('xdp_program', {'interfaces': ['r0', 'r1'], 'namespace': r, 'program': 'xdp_router',
                                        'maps_dir': names.maps_dir,
                                        'receivers': [{'interface': 's0', 'namespace': s}]})
    assert result['changed'] and result['keeper']['started'], result
    names.keeper_pid = result['keeper']['pid']
    yield names
    run_module('xdp_program', {'interfaces': ['r0', 'r1'], 'namespace': r, 'maps_dir': names.maps_dir,
                               'state': 'absent', 'receivers': [{'interface': 's0', 'namespace': s}]})
    wait_for('the keeper leaves once no router is left', lambda: _keeper.running() is None,
             _keeper.IDLE_EXIT_SECONDS + 3)


def current_keeper():
    record = _keeper.running()
    return {'pid': record['pid'], 'version': record['version']}


def test_the_module_starts_one_keeper_and_a_rerun_keeps_it(routed):
    current = _keeper.running()
    assert current and current['pid'] == routed.keeper_pid and current['version'] == _keeper.keeper_version()
    again = run_module('xdp_program', {'interfaces': ['r0', 'r1'], 'namespace': routed.r, 'program': 'xdp_router',
                                       'maps_dir': routed.maps_dir,
                                       'receivers': [{'interface': 's0', 'namespace': routed.s}]})
    assert not again['changed'] and again['keeper'] == dict(current_keeper(), started=False), again
    # The keeper lives in the host's namespaces (it follows all of them).
    for kind in ('net', 'mnt'):
        assert os.readlink('/proc/%d/ns/%s' % (routed.keeper_pid, kind)) == os.readlink('/proc/self/ns/' + kind)


def test_callers_that_ensure_a_keeper_at_once_all_get_the_one_that_runs(keeper_free):
    """The router role's forks attach in many namespaces at once: every one of them must find or
    start the same keeper, none fail on another's fresh keeper."""
    import multiprocessing

    context = multiprocessing.get_context('fork')
    start = context.Event()
    answers = context.Queue()

    def caller():
        start.wait()
        try:
            answers.put(('pid', _keeper.ensure()))
        except Exception as exc:  # what the module would have failed with
            answers.put(('failed', str(exc)))

    callers = [context.Process(target=caller) for _caller in range(4)]
    for process in callers:
        process.start()
    start.set()
    results = [answers.get(timeout=30) for _process in callers]
    for process in callers:
        process.join(10)
    try:
        assert not [r for r in results if r[0] == 'failed'], results
        current = _keeper.running()
        assert current is not None
        started = [pid for _kind, pid in results if pid is not None]
        assert started == [current['pid']], 'one caller starts it, the others find it: %s' % results
    finally:
        _keeper.stop()


def test_drift_reaches_the_port_entry_within_a_second_whatever_made_it(routed):
    r, maps_dir = routed.r, routed.maps_dir
    follows(maps_dir, r, 'r0', 'the attach')
    took = {}
    # sysctl -w on the port, then on conf/all (the kernel applies the larger).
    in_ns(r, 'sysctl', '-qw', 'net.ipv4.conf.r0.rp_filter=1')
    took['sysctl -w rp_filter'] = follows(maps_dir, r, 'r0', 'sysctl -w')
    assert entry_of(maps_dir, r, 'r0')['rp_filter'] == 1
    write_sysctl(r, 'net.ipv4.conf.all.rp_filter', '2')
    took['/proc/sys all/rp_filter'] = follows(maps_dir, r, 'r0', 'a write under /proc/sys')
    assert entry_of(maps_dir, r, 'r0')['rp_filter'] == 2
    # accept_local is not announced over netlink: the keeper's re-read finds it.
    write_sysctl(r, 'net.ipv4.conf.r0.accept_local', '1')
    took['accept_local'] = follows(maps_dir, r, 'r0', 'accept_local')
    assert entry_of(maps_dir, r, 'r0')['accept_local'] == 1
    # A new MAC: frames to the old one are another host's now.
    with iproute(r) as ipr:
        ipr.link('set', index=get_link(ipr, 'r0')['ifindex'], address='02:71:00:00:00:01')
    took['ip link set address'] = follows(maps_dir, r, 'r0', 'a new MAC')
    assert entry_of(maps_dir, r, 'r0')['mac'] == '02:71:00:00:00:01'
    # Loose mode on a port without IPv4 addresses is strict; an address back makes it loose again.
    in_ns(r, 'ip', 'addr', 'flush', 'dev', 'r0')
    took['addresses removed'] = follows(maps_dir, r, 'r0', 'the addresses flushed')
    assert entry_of(maps_dir, r, 'r0')['rp_filter'] == 1
    in_ns(r, 'ip', 'addr', 'add', '10.71.1.1/24', 'dev', 'r0')
    took['address added'] = follows(maps_dir, r, 'r0', 'an address added')
    assert entry_of(maps_dir, r, 'r0')['rp_filter'] == 2
    # Renamed: the same port under another name, whose settings are read under that name.
    with iproute(r) as ipr:
        index = get_link(ipr, 'r0')['ifindex']
        ipr.link('set', index=index, state='down')
        ipr.link('set', index=index, ifname='r0x')
        ipr.link('set', index=index, state='up')
    write_sysctl(r, 'net.ipv4.conf.r0x.accept_local', '0')
    took['renamed, then accept_local'] = follows(maps_dir, r, 'r0x', 'a rename')
    assert entry_of(maps_dir, r, 'r0x')['accept_local'] == 0
    # Deleted and re-created: the old instance is attached nowhere, its entry is cleared.
    with iproute(r) as ipr:
        ipr.link('del', index=index)
    VethManager({'name': 'r0', 'namespace': r, 'addresses': ['10.71.1.1/24'], 'state': 'present',
                 'peer': {'name': 'g0', 'namespace': routed.g}}).run()
    # The instance's pins stay (xdp_program's to remove); its program went with the port.
    entry = os.path.join(_bpf_pins.default_pin_dir(r, 'r0'), PORT_ENTRY)
    assert _ports.read_entry(entry) is not None

    def not_vouched():
        found = _ports.read_entry(entry)
        return found is None or found['vouched_until'] <= time.monotonic_ns()
    # Its program went with it: nobody vouches for the old entry, which is cleared a few seconds later.
    unvouched = wait_for('the deleted port\'s entry is no longer vouched for', not_vouched, _ports.LEASE_SECONDS + 1.0)
    took['deleted (lease run out)'] = unvouched
    wait_for('the deleted port\'s entry is cleared', lambda: _ports.read_entry(entry) is None,
             _keeper.ORPHAN_SECONDS + 2)
    print('keeper followed: ' + ', '.join('%s %.2f s' % kv for kv in took.items()))


def test_drift_in_the_host_namespace_is_followed_too(cleanup, keeper_free):
    names = cleanup
    create_netns(names('p'))
    host_port = names('h')
    VethManager({'name': host_port, 'addresses': ['10.72.1.1/24'], 'state': 'present',
                 'peer': {'name': 'p0', 'namespace': names('p'), 'addresses': ['10.72.1.2/24']}}).run()
    maps_dir = '/sys/fs/bpf/xdpkit/%s-keep' % names.prefix
    args = {'interface': host_port, 'program': 'xdp_router', 'maps_dir': maps_dir, 'netfilter': 'bypass'}
    try:
        assert run_module('xdp_program', args)['keeper']['started']
        follows(maps_dir, None, host_port, 'the attach')
        write_sysctl(None, 'net.ipv4.conf.%s.rp_filter' % host_port, '1')
        took = follows(maps_dir, None, host_port, 'sysctl in the host namespace')
        assert entry_of(maps_dir, None, host_port)['rp_filter'] == 1
        print('host namespace: followed in %.2f s' % took)
    finally:
        run_module('xdp_program', dict(args, state='absent'))
    wait_for('the keeper leaves once no router is left', lambda: _keeper.running() is None,
             _keeper.IDLE_EXIT_SECONDS + 3)


# -- the fail-safe ---------------------------------------------------------------------------
class Wire:
    def __init__(self, names):
        self.names = names
        with iproute(names.r) as ipr:
            self.r0_mac = get_link(ipr, 'r0')['mac']
        with in_netns(names.g):
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.tx.bind(('g0', 0))
        with in_netns(names.s):
            self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.rx.bind(('s0', 0))
        self.rx.settimeout(0.05)
        self.stats = find_stats_map(interface_program(names.r, 'r0')['id'])

    def counters(self):
        counters = read_counters(self.stats)
        return {action: counters[action]['packets'] for action in ('XDP_PASS', 'XDP_REDIRECT')}

    def send(self, source, count=20):
        """(frames that reached the sink, XDP_REDIRECT rise, XDP_PASS rise) for `count` frames."""
        self.drain()
        before = self.counters()
        tag = struct.pack('!d', time.monotonic())
        for index in range(count):
            self.tx.send(ether(self.r0_mac, self.names.gen_mac, ETH_P_IP,
                               ipv4(source, SINK, udp(4000, 5000, tag + struct.pack('!I', index)), ident=index)))
        arrived, deadline = 0, time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                data, address = self.rx.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] != PACKET_OUTGOING and tag in data:
                arrived += 1
        after = self.counters()
        return arrived, after['XDP_REDIRECT'] - before['XDP_REDIRECT'], after['XDP_PASS'] - before['XDP_PASS']

    def drain(self):
        try:
            while True:
                self.rx.recv(65535)
        except socket.timeout:
            pass

    def close(self):
        os.close(self.stats)
        self.tx.close()
        self.rx.close()


def test_without_its_keeper_the_router_hands_frames_to_the_kernel_once_the_lease_ran_out(routed):
    """SIGKILL the keeper, then harden rp_filter: the port entry still says rp_filter 0, but
    once its lease ran out the router hands every frame to the kernel, which drops the spoofed
    ones as Linux does. Restarted, the keeper corrects the entry and acceleration comes back."""
    wire = Wire(routed)
    try:
        assert wire.send(SPOOFED) == (20, 20, 0), 'rp_filter 0: Linux forwards any source, and so does XDP'
        assert wire.send(SENDER) == (20, 20, 0)

        os.kill(routed.keeper_pid, signal.SIGKILL)
        wait_for('the keeper is gone', lambda: _keeper.running() is None, 2)
        killed = time.monotonic()
        write_sysctl(routed.r, 'net.ipv4.conf.r0.rp_filter', '1')
        assert read_sysctl(routed.r, 'net.ipv4.conf.r0.rp_filter') == '1'
        stale = entry_of(routed.maps_dir, routed.r, 'r0')
        assert stale['rp_filter'] == 0, 'nobody corrected the entry: it is stale now'
        time.sleep(max(0.0, _ports.LEASE_SECONDS + 0.2 - (time.monotonic() - killed)))
        assert entry_of(routed.maps_dir, routed.r, 'r0') == stale, 'still nobody keeps it'
        assert wire.send(SPOOFED) == (0, 0, 20), 'the lease ran out: the kernel drops spoofed frames (rp_filter 1)'
        assert wire.send(SENDER) == (20, 0, 20), 'and forwards the others itself'

        pid = _keeper.ensure()
        assert pid and _keeper.running()['pid'] == pid
        follows(routed.maps_dir, routed.r, 'r0', 'the keeper back')
        assert entry_of(routed.maps_dir, routed.r, 'r0')['rp_filter'] == 1
        assert wire.send(SENDER) == (20, 20, 0), 'accelerated again'
        assert wire.send(SPOOFED) == (0, 0, 20), 'and right: spoofed frames are the kernel\'s to drop'
    finally:
        wire.close()


# -- saying so -------------------------------------------------------------------------------
TOOL = os.path.join(ROOT, 'tools', 'xdp_stats')


def prometheus(namespace, interface):
    """(the port's gauges {metric: value}, the keeper's {metric: value or labels}) from
    tools/xdp_stats --prometheus, parsed with prometheus_client's own parser."""
    text = subprocess.run([TOOL, '--prometheus', '--count', '1'], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    port, keeper = {}, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith('xdpkit_port_'):
                assert family.type == 'gauge', family
                if (sample.labels['namespace'], sample.labels['interface']) == (namespace, interface):
                    assert sample.labels['program'] == 'xdp_router', sample
                    port[sample.name] = sample.value
            elif sample.name.startswith('xdpkit_keeper_'):
                assert family.type == 'gauge', family
                keeper[sample.name] = sample.labels if sample.name == 'xdpkit_keeper_info' else sample.value
    return port, keeper


def tool_port_line(namespace, interface):
    out = subprocess.run([TOOL, '-d', interface, '-n', namespace, '--count', '1', '--interval', '0.2'],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    lines = [line for line in out.splitlines() if line.startswith('port: ')]
    assert len(lines) == 1, out
    return lines[0]


def test_xdp_stats_the_tool_and_the_metrics_say_whether_the_keeper_vouches(routed):
    r = routed.r
    with iproute(r) as ipr:
        r0_mac = get_link(ipr, 'r0')['mac']
    stats = run_module('xdp_stats', {'interface': 'r0', 'namespace': r})
    port = stats['port']
    assert port['vouched'] and 0 < port['lease_seconds'] <= _ports.LEASE_SECONDS, stats
    assert (port['mac'], port['rp_filter'], port['accept_local']) == (r0_mac, 0, 0), stats
    assert stats['keeper']['running'] and stats['keeper']['pid'] == routed.keeper_pid, stats
    assert stats['keeper']['version'] == _keeper.keeper_version(), stats
    assert not stats.get('warnings'), stats
    assert re.fullmatch(r'port: vouched \(lease [0-9.]+ s left\), keeper pid %d' % routed.keeper_pid,
                        tool_port_line(r, 'r0'))
    gauges, keeper = prometheus(r, 'r0')
    assert gauges['xdpkit_port_vouched'] == 1 and 0 < gauges['xdpkit_port_lease_remaining_seconds'] <= 1.5, gauges
    assert keeper['xdpkit_keeper_up'] == 1 and keeper['xdpkit_keeper_info'] == {'version': _keeper.keeper_version()}
    assert abs(keeper['xdpkit_keeper_start_time_seconds'] - _keeper.running()['started']) < 0.01, keeper
    # A program without a port table has no lease to report.
    receiver = run_module('xdp_stats', {'interface': 's0', 'namespace': routed.s})
    assert receiver['program']['name'] == 'xdp_pass' and receiver['port'] is None, receiver

    assert _keeper.stop()
    time.sleep(_ports.LEASE_SECONDS + 0.3)
    stats = run_module('xdp_stats', {'interface': 'r0', 'namespace': r})
    port = stats['port']
    assert not port['vouched'] and port['lease_seconds'] <= -0.3, stats
    assert stats['keeper'] == {'running': False, 'pid': None, 'version': None, 'started': None, 'current': None}
    assert len(stats['warnings']) == 1, stats
    warning = stats['warnings'][0]
    for said in ("port 'r0' in namespace '%s'" % r, 'the router hands every frame to the kernel',
                 'no keeper vouched for its settings', 'no keeper runs on this host', 'keeper: start',
                 'xdpkit-keeper service'):
        assert said in warning, warning
    assert re.fullmatch(r'port: NOT VOUCHED for [0-9.]+ s - every frame goes to the kernel; no keeper runs',
                        tool_port_line(r, 'r0'))
    gauges, keeper = prometheus(r, 'r0')
    assert gauges['xdpkit_port_vouched'] == 0 and gauges['xdpkit_port_lease_remaining_seconds'] <= -0.3, gauges
    assert keeper == {'xdpkit_keeper_up': 0}, keeper

    pid = _keeper.ensure()
    stats = run_module('xdp_stats', {'interface': 'r0', 'namespace': r})
    assert stats['port']['vouched'] and stats['keeper']['pid'] == pid and not stats.get('warnings'), stats
    gauges, keeper = prometheus(r, 'r0')
    assert gauges['xdpkit_port_vouched'] == 1 and keeper['xdpkit_keeper_up'] == 1


def test_under_a_service_manager_the_keeper_says_when_it_is_ready_and_what_it_keeps(routed):
    """Type=notify: READY=1 once the first pass vouched for every port, STATUS= with what it keeps
    and the last change it made (`systemctl status` shows it), STOPPING=1 on SIGTERM."""
    assert _keeper.stop()
    address = '@xdpkit-test-notify-%d' % os.getpid()
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind('\0' + address[1:])
    manager.settimeout(5)
    env = dict(os.environ, NOTIFY_SOCKET=address, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    keeper = subprocess.Popen([sys.executable, '-m', _keeper.__name__], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = manager.recv(4096).decode().split('\n')
        assert 'READY=1' in first, first
        assert 'STATUS=keeping 2 ports of 1 router in 1 namespace; last change: none since it started' in first, first
        assert _keeper.running()['pid'] == keeper.pid
        write_sysctl(routed.r, 'net.ipv4.conf.r0.rp_filter', '1')
        status = manager.recv(4096).decode()
        assert re.fullmatch(r"STATUS=keeping 2 ports of 1 router in 1 namespace; last change: \S+ \S+ port 'r0' in "
                            r"namespace '%s': rp_filter 0 -> 1" % re.escape(routed.r), status), status
        keeper.send_signal(signal.SIGTERM)
        assert manager.recv(4096).decode() == 'STOPPING=1'
        assert keeper.wait(10) == 0
        # The keeper logs what it changed too.
        assert "port 'r0' in namespace '%s': rp_filter 0 -> 1" % routed.r in keeper.stderr.read()
    finally:
        if keeper.poll() is None:
            keeper.kill()
            keeper.wait()
        manager.close()
    # The fixture's teardown wants a keeper it can watch leave.
    _keeper.ensure()


# -- the local source table (fib_validate_source()'s fast path) ------------------------------------
def local_sources(maps_dir):
    paths = _local_sources.tables_in(maps_dir)
    assert paths, 'no local source table in %s' % maps_dir
    return _local_sources.read(paths)


def test_the_local_source_table_follows_addresses_added_and_removed_within_a_second(routed):
    table = local_sources(routed.maps_dir)
    assert table['vouched_until'] > time.monotonic_ns() and table['full_check'] == 0, table
    for address in ('10.71.1.1', '10.71.2.1'):
        assert table['entries'][address] & _local_sources.LOCAL_ADDRESS, table
    for broadcast in ('10.71.1.255', '10.71.2.255'):
        assert table['entries'][broadcast] == _local_sources.LOCAL_ROUTE, table
    assert SENDER not in table['entries'] and SINK not in table['entries']

    with iproute(routed.r) as ipr:
        r1 = get_link(ipr, 'r1')['ifindex']
        ipr.addr('add', index=r1, address='10.71.9.1', prefixlen=24)
    wait_for('an address added reaches the table', lambda: {'10.71.9.1', '10.71.9.255'} <= set(
        local_sources(routed.maps_dir)['entries']), 1.0)
    # One on a port the router is not on (lo) counts too: inet_lookup_ifaddr_rcu() asks the namespace.
    with iproute(routed.r) as ipr:
        ipr.addr('add', index=1, address='10.71.7.7', prefixlen=32)
    wait_for('an address on lo reaches the table', lambda: '10.71.7.7' in local_sources(routed.maps_dir)['entries'],
             1.0)
    with iproute(routed.r) as ipr:
        ipr.addr('del', index=r1, address='10.71.9.1', prefixlen=24)
        ipr.addr('del', index=1, address='10.71.7.7', prefixlen=32)
    wait_for('addresses removed leave the table', lambda: not {'10.71.9.1', '10.71.9.255', '10.71.7.7'} & set(
        local_sources(routed.maps_dir)['entries']), 1.0)
    assert local_sources(routed.maps_dir)['full_check'] == 0


def test_a_custom_local_route_or_rule_makes_the_full_check_for_good_as_the_kernel_s_flags(routed):
    """fib_has_custom_local_routes and fib_has_custom_rules are never reset: neither is the table's."""
    def full_check():
        return local_sources(routed.maps_dir)['full_check']

    with iproute(routed.r) as ipr:
        ipr.route('add', dst='10.71.8.8/32', type='local', oif=1, scope=254, table=255)
    wait_for('a custom local route', lambda: full_check() & _local_sources.FULL_CUSTOM_LOCAL_ROUTES, 1.0)
    with iproute(routed.r) as ipr:
        ipr.route('del', dst='10.71.8.8/32', type='local', oif=1, scope=254, table=255)
    time.sleep(0.6)
    assert full_check() == _local_sources.FULL_CUSTOM_LOCAL_ROUTES
    with iproute(routed.r) as ipr:
        ipr.rule('add', table=100, priority=1000, src='10.71.6.0', src_len=24)
        ipr.rule('del', table=100, priority=1000, src='10.71.6.0', src_len=24)
    wait_for('a rule added and deleted', lambda: full_check() & _local_sources.FULL_CUSTOM_RULES, 1.0)
    time.sleep(0.6)
    assert full_check() == _local_sources.FULL_CUSTOM_LOCAL_ROUTES | _local_sources.FULL_CUSTOM_RULES
    assert local_sources(routed.maps_dir)['vouched_until'] > time.monotonic_ns()


def test_without_its_keeper_the_local_source_table_is_vouched_for_no_longer(routed):
    assert local_sources(routed.maps_dir)['vouched_until'] > time.monotonic_ns()
    _keeper.stop()
    wait_for('the local table lease runs out', lambda: local_sources(routed.maps_dir)['vouched_until'] <
             time.monotonic_ns(), _ports.LEASE_SECONDS + 0.5)
