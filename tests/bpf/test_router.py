"""xdp_router under BPF_PROG_RUN against a real FIB: a namespace with two ports, routes,
permanent neighbours and forwarding on. Every case checks the action and the bytes."""

import os
import platform
import random
import re
import struct
import time

import pytest
from bpf_loader import XDP_DROP, XDP_PASS, XDP_REDIRECT, LoadedProgram
from packets import (
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    arp_request,
    ether,
    ipv4,
    ipv4_header_ok,
    ipv6,
    mac_bytes,
    udp,
    vlan,
)

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _compile, _lease_clock
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns, in_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

NEIGH_MAC = '02:00:00:00:0b:02'
SENDER_MAC = '02:00:00:00:0a:02'
NUD_PERMANENT = 0x80


class Router:
    def __init__(self, ns, prog, ports):
        self.ns = ns
        self.prog = prog
        self.ports = ports  # name -> {'ifindex', 'mac'}

    def facts(self, **rules):
        """Rewrite the entry of a0, the port the instance stands attached to (what xdp_program reads
        from the kernel's sysctls)."""
        self.prog.set_port_facts(self.ports['a0']['mac'], **rules)

    def run(self, frame, ingress='a0'):
        with in_netns(self.ns):
            return self.prog.run(frame, ingress_ifindex=self.ports[ingress]['ifindex'])

    def frame4(self, dst='10.2.0.2', src='10.1.0.2', dst_mac=None, **kw):
        payload = udp(4000, 5000, kw.pop('payload', b'p' * 26))
        return ether(dst_mac or self.ports['a0']['mac'], SENDER_MAC, ETH_P_IP, ipv4(src, dst, payload, **kw))

    def frame6(self, dst='fd02::2', src='fd01::2', dst_mac=None, **kw):
        payload = udp(4000, 5000, kw.pop('payload', b'q' * 26), src, dst)
        return ether(dst_mac or self.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, ipv6(src, dst, payload, **kw))


def build_router_namespace(ns):
    create_netns(ns)
    for port, v4, v6 in (('a', '10.1.0.1/24', 'fd01::1/64'), ('b', '10.2.0.1/24', 'fd02::1/64')):
        VethManager({'name': port + '0', 'namespace': ns, 'addresses': [v4, v6], 'state': 'present',
                     'peer': {'name': port + '1', 'namespace': ns}}).run()
    write_sysctl(ns, 'net.ipv4.conf.all.forwarding', '1')
    write_sysctl(ns, 'net.ipv6.conf.all.forwarding', '1')
    for dest, kind in (('10.9.0.0/16', 'blackhole'), ('10.8.0.0/16', 'unreachable'), ('10.7.0.0/16', 'prohibit'),
                       ('fd09::/32', 'blackhole'), ('fd08::/32', 'unreachable'), ('fd07::/32', 'prohibit')):
        RouteManager({'namespace': ns, 'dest': dest, 'type': kind, 'state': 'present'}).run()
    # A real router's default route: out of b0, so that special destinations and spoofed
    # sources all have "a route" as far as a plain FIB lookup is concerned.
    for gateway in ('10.2.0.2', 'fd02::2'):
        RouteManager({'namespace': ns, 'dest': 'default', 'gateway': gateway, 'state': 'present'}).run()
    ports = {}
    with iproute(ns) as ipr:
        for name in ('a0', 'b0'):
            link = get_link(ipr, name)
            ports[name] = {'ifindex': link['ifindex'], 'mac': link['mac']}
        for dst in ('10.2.0.2', 'fd02::2'):
            ipr.neigh('add', dst=dst, lladdr=NEIGH_MAC, ifindex=ports['b0']['ifindex'], state=NUD_PERMANENT)
        # The sender's own side is known too: a hairpin next hop and strict rp_filter see it.
        for dst in ('10.1.0.2', 'fd01::2'):
            ipr.neigh('add', dst=dst, lladdr=SENDER_MAC, ifindex=ports['a0']['ifindex'], state=NUD_PERMANENT)
    return ports


def load_router(ns, ports, bpf_dir, defines=None):
    """xdp_router with every port in tx_ports, as the instance attached to a0 (what xdp_program
    writes: a0's entry; every frame the tests run comes in on a0)."""
    prog = LoadedProgram('xdp_router', bpf_dir + '/router', maps_dir=bpf_dir + '/shared', defines=defines)
    with in_netns(ns):
        for port in ports.values():
            prog.set_port(port['ifindex'], port['ifindex'])
        prog.set_port_facts(ports['a0']['mac'])
    return Router(ns, prog, ports)


def without_skip_neigh(monkeypatch):
    """Compiles from here on get what a kernel before 5.5 gets from the probes: the reverse
    lookup without BPF_FIB_LOOKUP_SKIP_NEIGH (6.5) and the exact lease clock instead of jiffies."""
    monkeypatch.setattr(_compile, 'kernel_define_flags', lambda: ['-DXDPKIT_FIB_SKIP_NEIGH=0'])


@pytest.fixture(params=['full', 'direct', 'without_skip_neigh'])
def router(request, cleanup, bpf_dir, monkeypatch):
    ns = cleanup('r')
    ports = build_router_namespace(ns)
    if request.param == 'without_skip_neigh':
        without_skip_neigh(monkeypatch)
    loaded = load_router(ns, ports, bpf_dir, {'FIB_LOOKUP_DIRECT': 1} if request.param == 'direct' else {})
    yield loaded
    loaded.prog.close()


def test_the_kernel_probe_finds_skip_neigh_from_6_5_on_and_its_answer_is_in_the_cache_key(monkeypatch):
    takes_it = tuple(int(n) for n in re.match(r'(\d+)\.(\d+)', platform.release()).groups()) >= (6, 5)
    assert _compile._probe_fib_skip_neigh() is takes_it
    assert _compile.kernel_define_flags() == ['-DXDPKIT_FIB_SKIP_NEIGH=%d' % takes_it, '-DXDPKIT_COARSE_CLOCK=1',
                                              '-DXDPKIT_JIFFIES_CLOCK=1']
    key = _compile.cache_key('text', [], 'f')
    monkeypatch.setattr(_compile, 'kernel_define_flags', lambda: ['-DXDPKIT_FIB_SKIP_NEIGH=%d' % (not takes_it)])
    assert _compile.cache_key('text', [], 'f') != key


def test_the_kernel_probe_finds_the_coarse_clock_and_a_cached_answer_without_it_is_probed_anew(monkeypatch, tmp_path):
    assert _compile._probe_coarse_clock() is True, 'kernel 5.11 and later take bpf_ktime_get_coarse_ns()'
    # A features file an older collection wrote (no coarse_clock) gets the new probe, and keeps it.
    monkeypatch.setattr(_compile, 'COMPILED_DIR', str(tmp_path))
    monkeypatch.setattr(_compile, '_kernel_features', {})
    (tmp_path / ('kernel-%s.features' % platform.release())).write_text('{"fib_skip_neigh": true}')
    hz = _lease_clock.measure_hz()
    assert hz in _lease_clock.KNOWN_HZ, 'the kernel\'s HZ from /proc/timer_list'
    assert _compile.kernel_features() == {'fib_skip_neigh': True, 'coarse_clock': True, 'jiffies_hz': hz}
    written = (tmp_path / ('kernel-%s.features' % platform.release())).read_text()
    assert '"coarse_clock": true' in written and '"jiffies_hz": %d' % hz in written


# Each lease clock a kernel's probes can give the router: jiffies (5.5 and later, where user space
# can tell jiffies), the coarse clock (5.11 and later, without jiffies) and the exact one.
LEASE_CLOCKS = {'jiffies': (0, 1), 'coarse': (1, 0), 'exact': (0, 0)}


@pytest.mark.parametrize('clock', sorted(LEASE_CLOCKS))
def test_each_lease_clock_trusts_an_entry_until_shortly_before_its_end_and_never_after(
        clock, cleanup, bpf_dir, monkeypatch):
    """The keeper writes a lease's end in CLOCK_MONOTONIC ns and, converted, in jiffies; the router
    reads one clock. Frames sent every few ms across the end of a half-second lease: redirected
    while it runs (up to the clock's slack before its end: 3 ticks of jiffies, 20 ms and a tick of
    the coarse clock), handed over from its end on. A wrong conversion (HZ, the jiffies of this
    boot) moves the switch by far more than the slack."""
    coarse, jiffies = LEASE_CLOCKS[clock]
    flags = ['-DXDPKIT_FIB_SKIP_NEIGH=%d' % _compile.kernel_features()['fib_skip_neigh'],
             '-DXDPKIT_COARSE_CLOCK=%d' % coarse, '-DXDPKIT_JIFFIES_CLOCK=%d' % jiffies]
    monkeypatch.setattr(_compile, 'kernel_define_flags', lambda: flags)
    ns = cleanup('r')
    router = load_router(ns, build_router_namespace(ns), bpf_dir, {})
    try:
        frame = router.frame4()
        end = time.monotonic_ns() + 500 * 10 ** 6
        router.facts(vouched_until=end)
        runs = []
        while time.monotonic_ns() < end + 100 * 10 ** 6:
            before = time.monotonic_ns()
            action = router.run(frame)[0]
            runs.append((before, time.monotonic_ns(), action))
            time.sleep(0.002)
    finally:
        router.prog.close()
    # Jiffies: the 3-tick slack, a tick of conversion and a tick of lag, and one to spare.
    slack_ms = 6 * 1000 // _compile.kernel_features()['jiffies_hz'] if clock == 'jiffies' else 40
    early = [(after - end) / 1e6 for before, after, action in runs
             if after < end - slack_ms * 10 ** 6 and action != XDP_REDIRECT]
    late = [(before - end) / 1e6 for before, after, action in runs if before >= end and action != XDP_PASS]
    assert runs[0][2] == XDP_REDIRECT and not early, \
        'handed over %s ms before the lease ended (slack %d ms)' % (early[:5], slack_ms)
    assert runs[-1][2] == XDP_PASS and not late, 'trusted %s ms after the lease ended' % late[:5]


def assert_forwarded(router, frame, out, ttl_offset):
    assert out[:6] == mac_bytes(NEIGH_MAC), 'destination MAC is the next hop'
    assert out[6:12] == mac_bytes(router.ports['b0']['mac']), 'source MAC is the egress port'
    assert out[ttl_offset] == frame[ttl_offset] - 1
    changed = {i for i in range(len(frame)) if frame[i] != out[i]}
    allowed = set(range(12)) | {ttl_offset} | ({24, 25} if ttl_offset == 22 else set())
    assert changed <= allowed, 'bytes changed outside MACs, TTL and checksum: %s' % sorted(changed - allowed)
    assert len(out) == len(frame)


def test_ipv4_is_forwarded_with_ttl_decrement_and_valid_checksum(router):
    frame = router.frame4(ttl=64)
    action, out = router.run(frame)
    assert action == XDP_REDIRECT
    assert_forwarded(router, frame, out, 22)
    assert ipv4_header_ok(out)


@pytest.mark.parametrize('ttl', [2, 255])
def test_ipv4_checksum_stays_valid_at_the_ttl_edges(router, ttl):
    frame = router.frame4(ttl=ttl, tos=0xb8, ident=0xFFFF)
    action, out = router.run(frame)
    assert action == XDP_REDIRECT and out[22] == ttl - 1 and ipv4_header_ok(out)


def test_ipv6_is_forwarded_with_hop_limit_decrement(router):
    frame = router.frame6(hlim=64)
    action, out = router.run(frame)
    assert action == XDP_REDIRECT
    assert_forwarded(router, frame, out, 21)


@pytest.mark.parametrize('ttl', [0, 1])
def test_ipv4_ttl_one_or_less_goes_to_the_kernel_unchanged(router, ttl):
    frame = router.frame4(ttl=ttl)
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('hlim', [0, 1])
def test_ipv6_hop_limit_one_or_less_goes_to_the_kernel_unchanged(router, hlim):
    frame = router.frame6(hlim=hlim)
    assert router.run(frame) == (XDP_PASS, frame)


def test_arp_goes_to_the_kernel(router):
    frame = ether('ff:ff:ff:ff:ff:ff', SENDER_MAC, ETH_P_ARP, arp_request(SENDER_MAC, '10.1.0.2', '10.1.0.1'))
    assert router.run(frame) == (XDP_PASS, frame)


def test_vlan_tagged_frames_go_to_the_kernel_intact(router):
    inner = router.frame4()[14:]
    frame = vlan(router.ports['a0']['mac'], SENDER_MAC, 100, ETH_P_IP, inner)
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('cut', [14, 20, 33])
def test_truncated_ipv4_goes_to_the_kernel(router, cut):
    frame = router.frame4()[:cut]
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('cut', [14, 40, 53])
def test_truncated_ipv6_goes_to_the_kernel(router, cut):
    frame = router.frame6()[:cut]
    assert router.run(frame) == (XDP_PASS, frame)


def test_missing_neighbour_goes_to_the_kernel_to_resolve_it(router):
    frame = router.frame4(dst='10.2.0.3')
    assert router.run(frame) == (XDP_PASS, frame)
    frame6 = router.frame6(dst='fd02::3')
    assert router.run(frame6) == (XDP_PASS, frame6)


def test_blackhole_routes_drop_silently_like_the_kernel(router):
    assert router.run(router.frame4(dst='10.9.1.1'))[0] == XDP_DROP
    assert router.run(router.frame6(dst='fd09::1'))[0] == XDP_DROP


@pytest.mark.parametrize('dst', ['10.8.1.1', '10.7.1.1', 'fd08::1', 'fd07::1'])
def test_unreachable_and_prohibit_routes_go_to_the_kernel_for_its_icmp_error(router, dst):
    frame = router.frame6(dst=dst) if ':' in dst else router.frame4(dst=dst)
    assert router.run(frame) == (XDP_PASS, frame)


def test_egress_port_outside_the_port_map_goes_to_the_kernel_unchanged(router):
    fd = router.prog.map_fd('tx_ports')
    try:
        sysbpf.map_delete(fd, struct.pack('=I', router.ports['b0']['ifindex']))
    finally:
        os.close(fd)
    frame = router.frame4()
    assert router.run(frame) == (XDP_PASS, frame)


def test_forwarding_off_goes_to_the_kernel(router):
    write_sysctl(router.ns, 'net.ipv4.conf.all.forwarding', '0')
    write_sysctl(router.ns, 'net.ipv4.conf.a0.forwarding', '0')
    frame = router.frame4()
    assert router.run(frame) == (XDP_PASS, frame)


def test_frames_above_the_egress_mtu_go_to_the_kernel_to_fragment(router):
    with iproute(router.ns) as ipr:
        ipr.link('set', index=router.ports['b0']['ifindex'], mtu=1280)
    frame = router.frame4(payload=b'z' * 1400)
    assert router.run(frame) == (XDP_PASS, frame)
    frame6 = router.frame6(payload=b'z' * 1400)
    assert router.run(frame6) == (XDP_PASS, frame6)


def test_bad_ipv4_header_checksum_goes_to_the_kernel(router):
    frame = router.frame4(bad_checksum=True)
    assert router.run(frame) == (XDP_PASS, frame)


def test_the_header_checksum_is_judged_right_whatever_the_carries(router):
    """The router sums the header as 32-bit words and folds: headers whose sums carry many times
    (0xFF.. bytes), with a right checksum, are forwarded; any one 16-bit word off by one bit is not."""
    rng = random.Random(27)
    for _attempt in range(40):
        frame = router.frame4(src='10.1.%d.%d' % (rng.randrange(256), rng.randrange(1, 255)),
                              tos=rng.choice((0, 0xFC, rng.randrange(256))),
                              ident=rng.choice((0xFFFF, rng.randrange(65536))),
                              ttl=rng.choice((2, 255, rng.randrange(2, 256))))
        assert router.run(frame)[0] == XDP_REDIRECT, frame[14:34].hex()
        bit = rng.randrange(20 * 8)
        broken = bytearray(frame)
        broken[14 + bit // 8] ^= 1 << (bit % 8)
        assert router.run(bytes(broken))[0] == XDP_PASS, 'bit %d: %s' % (bit, bytes(broken[14:34]).hex())


@pytest.mark.parametrize('options', [b'\x07\x07\x04' + bytes(4) + b'\x00',  # record route: the kernel writes it
                                     b'\x01\x00\x01\x00',                   # NOP after EOL: the kernel rewrites it
                                     b'\x44\x04\x05\x00'])                  # timestamp
def test_ipv4_options_the_kernel_processes_go_to_the_kernel(router, options):
    frame = router.frame4(options=options)
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('options', [b'\x01\x01\x01\x00', b'\x01' * 8, bytes(4), b'\x01' * 40])
def test_ipv4_padding_options_are_forwarded_untouched_like_the_kernel_does(router, options):
    frame = router.frame4(options=options, ttl=64, payload=b'o' * 64)
    action, out = router.run(frame)
    assert action == XDP_REDIRECT and out[22] == 63 and ipv4_header_ok(out)
    assert out[14:22] == frame[14:22] and out[23:24] == frame[23:24] and out[26:] == frame[26:]


def test_ipv4_options_with_a_bad_checksum_go_to_the_kernel(router):
    frame = router.frame4(options=b'\x01\x01\x01\x00', bad_checksum=True)
    assert router.run(frame) == (XDP_PASS, frame)


def test_short_ipv4_packets_with_options_go_to_the_kernel(router):
    frame = router.frame4(options=b'\x01\x01\x01\x00', payload=b'')  # 24 + 8 bytes of IP: under 60
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('options', [bytes([5, 2, 0, 0, 1, 0]),       # router alert: every router reads it
                                     bytes([1, 4, 0, 0, 0, 1]),       # PadN with a non-zero byte
                                     bytes([0xc2, 4, 0, 0, 0, 0])])   # jumbo payload
def test_ipv6_hop_by_hop_options_go_to_the_kernel(router, options):
    packet = ipv6('fd01::2', 'fd02::2', bytes([17, 0]) + options + udp(1, 2, b'h', 'fd01::2', 'fd02::2'), nexthdr=0)
    frame = ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, packet)
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('options', [bytes([1, 4, 0, 0, 0, 0]), bytes(6)])
def test_ipv6_padding_hop_by_hop_is_forwarded_like_the_kernel_does(router, options):
    packet = ipv6('fd01::2', 'fd02::2', bytes([17, 0]) + options + udp(1, 2, b'h', 'fd01::2', 'fd02::2'), nexthdr=0)
    frame = ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, packet)
    action, out = router.run(frame)
    assert action == XDP_REDIRECT
    assert_forwarded(router, frame, out, 21)


def test_ipv4_length_longer_than_the_frame_goes_to_the_kernel(router):
    frame = bytearray(router.frame4())
    frame[16:18] = (len(frame)).to_bytes(2, 'big')  # tot_len past the end of the frame
    frame = bytes(frame)
    assert router.run(frame) == (XDP_PASS, frame)


def test_every_action_is_counted(router):
    router.run(router.frame4())
    router.run(router.frame6())
    router.run(router.frame4(ttl=1))
    router.run(router.frame4(dst='10.9.0.1'))
    stats = router.prog.stats()
    assert (stats['XDP_REDIRECT'], stats['XDP_PASS'], stats['XDP_DROP'], stats['XDP_ABORTED']) == (2, 1, 1, 0)


def test_ipv4_padding_and_trailing_bytes_are_trimmed_like_the_kernel_does(router):
    frame = router.frame4(payload=b'')  # a 42-byte frame
    padded = frame + bytes(18) + b'\xaa\xbb'
    action, out = router.run(padded)
    assert action == XDP_REDIRECT
    assert len(out) == len(frame), 'forwarded frame ends where the IP packet ends'
    assert_forwarded(router, frame, out, 22)


def test_ipv6_trailing_bytes_are_trimmed(router):
    frame = router.frame6()
    action, out = router.run(frame + b'\x01\x02\x03')
    assert action == XDP_REDIRECT and len(out) == len(frame)


@pytest.mark.parametrize('src', ['127.0.0.9', '0.0.0.1', '224.1.2.3', '255.255.255.255', '239.0.0.1'])
def test_martian_ipv4_sources_go_to_the_kernel(router, src):
    frame = ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IP, ipv4(src, '10.2.0.2', udp(1, 2, b'm' * 20)))
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('src, dst', [('::', 'fd02::2'), ('::1', 'fd02::2'), ('ff02::1', 'fd02::2'),
                                      ('::ffff:10.1.0.2', 'fd02::2'), ('fd01::2', '::ffff:10.2.0.2'),
                                      ('fd01::2', '::1'), ('fe80::1', 'fd02::2')])
def test_refused_ipv6_addresses_go_to_the_kernel(router, src, dst):
    frame = ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, ipv6(src, dst, udp(1, 2, b'm' * 20, src, dst)))
    assert router.run(frame) == (XDP_PASS, frame)


# -- a real router's input rules ------------------------------------------------------------
OTHER_HOST_MAC = '02:00:00:00:0c:0c'


@pytest.mark.parametrize('dst_mac', [OTHER_HOST_MAC, 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:05', '33:33:00:00:00:01'])
def test_frames_not_addressed_to_the_port_go_to_the_kernel(router, dst_mac):
    for frame in (router.frame4(dst_mac=dst_mac), router.frame6(dst_mac=dst_mac)):
        assert router.run(frame) == (XDP_PASS, frame)


def test_a_port_whose_entry_nobody_wrote_hands_everything_to_the_kernel(router):
    assert _ports.clear_entry(router.prog.port_entry_path())
    assert _ports.read_entry(router.prog.port_entry_path()) is None
    frame = router.frame4()
    assert router.run(frame) == (XDP_PASS, frame)


def test_the_port_entry_is_the_instances_own_array_of_one_and_no_shared_table_is_left(router):
    """Each instance serves one port: its entry is key 0 of an array of one in its own pin_dir
    (a lookup the verifier inlines), not an entry of a hash shared through maps_dir."""
    assert _ports.port_entry_in(router.prog.pin_dir) == router.prog.port_entry_path()
    assert not os.path.exists(os.path.join(router.prog.maps_dir, 'ports'))
    fd = sysbpf.obj_get(router.prog.port_entry_path())
    try:
        info = sysbpf.map_info(fd)
    finally:
        os.close(fd)
    assert (info['type'], info['key_size'], info['max_entries']) == ('array', 4, 1)


def test_an_entry_whose_lease_ran_out_hands_everything_to_the_kernel(router):
    """The keeper vouches for an entry until a CLOCK_MONOTONIC time (bpf_ktime_get_ns()'s clock):
    trusted while that lies ahead, not a moment after."""
    frames = (router.frame4(), router.frame6())
    router.facts(vouched_until=time.monotonic_ns() + 10 ** 9)
    assert [router.run(frame)[0] for frame in frames] == [XDP_REDIRECT, XDP_REDIRECT]
    router.facts(vouched_until=time.monotonic_ns() - 1)
    assert [router.run(frame) for frame in frames] == [(XDP_PASS, frame) for frame in frames]
    router.facts(vouched_until=0)
    assert [router.run(frame) for frame in frames] == [(XDP_PASS, frame) for frame in frames]


@pytest.mark.parametrize('dst', ['255.255.255.255', '224.0.0.5', '239.1.2.3', '0.1.2.3', '127.0.0.1',
                                 '10.2.0.255', '10.1.0.1', '10.2.0.1'])
def test_ipv4_destinations_linux_does_not_forward_go_to_the_kernel_despite_a_default_route(router, dst):
    frame = router.frame4(dst=dst)
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('dst', ['ff0e::1', 'ff05::2', 'fd01::1', 'fd02::1'])
def test_ipv6_multicast_and_local_destinations_go_to_the_kernel(router, dst):
    frame = router.frame6(dst=dst)
    assert router.run(frame) == (XDP_PASS, frame)


@pytest.mark.parametrize('src', ['10.1.0.1', '10.2.0.1', '10.1.0.255', '10.2.0.255'])
@pytest.mark.parametrize('rp_filter', [0, 1, 2])
def test_own_and_directed_broadcast_ipv4_sources_go_to_the_kernel(router, src, rp_filter):
    router.facts(rp_filter=rp_filter)
    frame = router.frame4(src=src)
    assert router.run(frame) == (XDP_PASS, frame)


def test_accept_local_without_rp_filter_forwards_own_sources_as_linux_does(router):
    router.facts(rp_filter=0, accept_local=1)
    assert router.run(router.frame4(src='10.2.0.1'))[0] == XDP_REDIRECT


# source, then the action with rp_filter 0 (off), 1 (strict), 2 (loose)
RP_CASES = [
    ('10.1.0.2', XDP_REDIRECT, XDP_REDIRECT, XDP_REDIRECT),   # back through a0, neighbour known
    ('10.1.0.99', XDP_REDIRECT, XDP_REDIRECT, XDP_REDIRECT),  # back through a0, no neighbour yet
    ('10.2.0.77', XDP_REDIRECT, XDP_PASS, XDP_REDIRECT),      # connected behind b0: spoofed on a0
    ('10.5.0.1', XDP_REDIRECT, XDP_PASS, XDP_REDIRECT),       # only the default route covers it
    ('10.9.0.5', XDP_REDIRECT, XDP_PASS, XDP_PASS),           # blackholed: no usable route back
    ('10.8.0.5', XDP_REDIRECT, XDP_PASS, XDP_PASS),           # unreachable
]


@pytest.mark.parametrize('src, off, strict, loose', RP_CASES)
def test_reverse_path_filter_follows_fib_validate_source(router, src, off, strict, loose):
    for rp_filter, wanted in ((0, off), (1, strict), (2, loose)):
        router.facts(rp_filter=rp_filter)
        frame = router.frame4(src=src)
        action, out = router.run(frame)
        assert action == wanted, 'rp_filter=%d, source %s' % (rp_filter, src)
        if action == XDP_PASS:
            assert out == frame


def test_a_next_hop_back_out_of_the_ingress_port_goes_to_the_kernel_for_its_redirect(router):
    for frame in (router.frame4(src='10.1.0.99', dst='10.1.0.2'), router.frame6(src='fd01::99', dst='fd01::2')):
        assert router.run(frame) == (XDP_PASS, frame)
