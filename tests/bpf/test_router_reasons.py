"""xdp_router's reason counters under BPF_PROG_RUN: for every rule the router follows, one frame
that meets it is counted under that reason and no other (packets +1, bytes + the frame's
length), with the action the reason stands for; a redirected frame moves no reason at all.

The test bed is test_router's namespace (two ports, routes of every type, permanent
neighbours), with the namespace's own local source table written as the keeper would write it
(vouched for), so each case starts where a running router is and changes one thing.

Reasons the router cannot be made to give here, so left out of the table (and checked to be the
only ones left out):
  - lookup_failed: bpf_fib_lookup() answers nothing the router does not map to a reason of its
    own (every BPF_FIB_LKUP_RET_* of this kernel has one); the default case is unreachable;
  - unknown_source_mac, no_egress_port, redirect_refused: the map and hardcoded programs'
    (tests/bpf/test_simple_programs.py).
A frame shorter than an Ethernet header (the router's first malformed check) cannot be run
either: BPF_PROG_RUN refuses packets under 14 bytes, metadata in front or not (EINVAL).
"""

import os
import socket
import struct
import time

import pytest
from bpf_loader import VOUCHED_FOREVER, XDP_DROP, XDP_PASS, XDP_REDIRECT, moved
from packets import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, arp_request, checksum, ether, ipv4, ipv6, udp, vlan
from test_router import SENDER_MAC, build_router_namespace, load_router

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _local_sources
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._reasons import REASON_NAMES
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl

ACTION_NAMES = {XDP_DROP: 'XDP_DROP', XDP_PASS: 'XDP_PASS', XDP_REDIRECT: 'XDP_REDIRECT'}
NOT_PRODUCIBLE = {'lookup_failed', 'unknown_source_mac', 'no_egress_port', 'redirect_refused'}


@pytest.fixture
def router(cleanup, bpf_dir):
    ns = cleanup('r')
    loaded = load_router(ns, build_router_namespace(ns), bpf_dir)
    local_table(loaded)
    yield loaded
    loaded.prog.close()


def local_table(router, vouched_until=VOUCHED_FOREVER):
    """The namespace's own addresses and broadcasts, as the keeper writes them."""
    table = _local_sources.wanted(*_local_sources.read_namespace(router.ns))
    _local_sources.write(_local_sources.tables_in(router.prog.maps_dir), table, vouched_until,
                         _ports.lease_end_in_jiffies(vouched_until))


def delete_key(router, map_name, port):
    fd = router.prog.map_fd(map_name)
    try:
        assert sysbpf.map_delete(fd, struct.pack('=I', router.ports[port]['ifindex']))
    finally:
        os.close(fd)


def no_default_route(router):
    for gateway in ('10.2.0.2', 'fd02::2'):
        RouteManager({'namespace': router.ns, 'dest': 'default', 'gateway': gateway, 'state': 'absent'}).run()


def encapsulated_routes(router):
    """Routes with a seg6 lightweight tunnel (this kernel has seg6 built in; its MPLS encap is
    refused, "lwt encapsulation type not supported"): bpf_fib_lookup() says UNSUPP_LWT."""
    seg6 = {'type': 'seg6', 'mode': 'encap', 'segs': 'fd02::9'}
    with iproute(router.ns) as ipr:
        b0 = router.ports['b0']['ifindex']
        ipr.route('add', dst='10.6.0.0/16', oif=b0, encap=seg6)
        ipr.route('add', family=socket.AF_INET6, dst='fd06::/32', oif=b0, encap=seg6)


def forwarding_off(router):
    for name in ('net.ipv4.conf.all.forwarding', 'net.ipv4.conf.a0.forwarding', 'net.ipv6.conf.all.forwarding'):
        write_sysctl(router.ns, name, '0')


def small_egress_mtu(router):
    with iproute(router.ns) as ipr:
        ipr.link('set', index=router.ports['b0']['ifindex'], mtu=1280)


def icmp4(router, icmp_type):
    body = struct.pack('!BBHI', icmp_type, 0, 0, 0) + ipv4('10.2.0.2', '10.1.0.2', udp(1, 2, b'q' * 8))[:28]
    body = body[:2] + struct.pack('!H', checksum(body)) + body[4:]
    return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IP, ipv4('10.1.0.2', '10.2.0.2', body, proto=1))


def icmp6(router, icmp_type):
    body = struct.pack('!BBHI', icmp_type, 0, 0, 0) + ipv6('fd02::2', 'fd01::2', udp(1, 2, b'q' * 8))[:48]
    return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, ipv6('fd01::2', 'fd02::2', body, nexthdr=58))


def hop_by_hop(router, options):
    packet = ipv6('fd01::2', 'fd02::2', bytes([17, 0]) + options + udp(1, 2, b'h', 'fd01::2', 'fd02::2'), nexthdr=0)
    return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, packet)


def longer_than_frame(router):
    frame = bytearray(router.frame4())
    frame[16:18] = len(frame).to_bytes(2, 'big')
    return bytes(frame)


def wrong_version(router):
    frame = bytearray(router.frame4())
    frame[14] = 0x65  # version 6 in an IPv4 EtherType, checksum left as it was
    return bytes(frame)


def rules(**facts):
    return lambda router: router.facts(**facts)


def both(*setups):
    def setup(router):
        for step in setups:
            step(router)
    return setup


def nothing(_router):
    pass


# (case, reason, action, what is changed first, the frame)
CASES = [
    # Unicast to the port (a broadcast request is not_our_mac: the MAC is checked first).
    ('arp', 'not_ip', XDP_PASS, nothing,
     lambda r: ether(r.ports['a0']['mac'], SENDER_MAC, ETH_P_ARP, arp_request(SENDER_MAC, '10.1.0.2', '10.1.0.1'))),
    ('broadcast_arp', 'not_our_mac', XDP_PASS, nothing,
     lambda r: ether('ff:ff:ff:ff:ff:ff', SENDER_MAC, ETH_P_ARP, arp_request(SENDER_MAC, '10.1.0.2', '10.1.0.1'))),
    ('vlan', 'not_ip', XDP_PASS, nothing,
     lambda r: vlan(r.ports['a0']['mac'], SENDER_MAC, 100, ETH_P_IP, r.frame4()[14:])),
    ('ipv4_cut_short', 'malformed', XDP_PASS, nothing, lambda r: r.frame4()[:20]),
    ('ipv4_bad_checksum', 'malformed', XDP_PASS, nothing, lambda r: r.frame4(bad_checksum=True)),
    ('ipv4_longer_than_frame', 'malformed', XDP_PASS, nothing, longer_than_frame),
    ('ipv4_wrong_version', 'malformed', XDP_PASS, nothing, wrong_version),
    ('ipv6_cut_short', 'malformed', XDP_PASS, nothing, lambda r: r.frame6()[:40]),
    ('ipv6_payload_past_frame', 'malformed', XDP_PASS, nothing, lambda r: r.frame6()[:-4]),
    ('port_without_entry', 'port_unknown', XDP_PASS, lambda r: _ports.clear_entry(r.prog.port_entry_path()),
     lambda r: r.frame4()),
    ('lease_ran_out', 'not_vouched', XDP_PASS, rules(vouched_until=1), lambda r: r.frame6()),
    ('other_host_mac', 'not_our_mac', XDP_PASS, nothing, lambda r: r.frame4(dst_mac='02:00:00:00:0c:0c')),
    ('broadcast_mac', 'not_our_mac', XDP_PASS, nothing, lambda r: r.frame6(dst_mac='ff:ff:ff:ff:ff:ff')),
    ('ipv4_loopback_destination', 'martian_destination', XDP_PASS, nothing, lambda r: r.frame4(dst='127.0.0.1')),
    ('ipv4_limited_broadcast', 'martian_destination', XDP_PASS, nothing, lambda r: r.frame4(dst='255.255.255.255')),
    ('ipv6_multicast_destination', 'martian_destination', XDP_PASS, nothing, lambda r: r.frame6(dst='ff0e::1')),
    ('ipv4_loopback_source', 'martian_source', XDP_PASS, nothing, lambda r: r.frame4(src='127.0.0.9')),
    ('ipv6_link_local_source', 'martian_source', XDP_PASS, nothing, lambda r: r.frame6(src='fe80::1')),
    # fib_validate_source()'s fast path (rp_filter 0): the vouched local table says "ours".
    ('own_source_fast_path', 'local_source', XDP_PASS, nothing, lambda r: r.frame4(src='10.2.0.1')),
    # Its full check (rp_filter 1): the reverse lookup finds a local route.
    ('own_source_full_check', 'local_source', XDP_PASS, rules(rp_filter=1), lambda r: r.frame4(src='10.2.0.1')),
    # The full check again, rp_filter 0 but the local table's lease ran out.
    ('own_source_lease_ran_out', 'local_source', XDP_PASS, lambda r: local_table(r, vouched_until=1),
     lambda r: r.frame4(src='10.2.0.1')),
    ('directed_broadcast_source', 'local_source', XDP_PASS, nothing, lambda r: r.frame4(src='10.2.0.255')),
    ('strict_spoofed_source', 'reverse_path', XDP_PASS, rules(rp_filter=1), lambda r: r.frame4(src='10.2.0.77')),
    ('loose_unreachable_source', 'reverse_path', XDP_PASS, rules(rp_filter=2), lambda r: r.frame4(src='10.8.0.5')),
    ('ipv4_ttl_1', 'ttl', XDP_PASS, nothing, lambda r: r.frame4(ttl=1)),
    ('ipv4_ttl_0', 'ttl', XDP_PASS, nothing, lambda r: r.frame4(ttl=0)),
    ('ipv6_hop_limit_1', 'ttl', XDP_PASS, nothing, lambda r: r.frame6(hlim=1)),
    # The kernel's order: a header it drops (ip_rcv_core, ipv6_rcv), a martian, a destination
    # of its own (ip_route_input_slow) come before the TTL test of ip_forward(): such frames
    # with TTL 1 are named by that rule (an eBGP session's TTL 1 packets are local_destination).
    ('ipv4_ttl_1_bad_checksum', 'malformed', XDP_PASS, nothing, lambda r: r.frame4(ttl=1, bad_checksum=True)),
    ('ipv4_ttl_1_martian_destination', 'martian_destination', XDP_PASS, nothing,
     lambda r: r.frame4(ttl=1, dst='127.0.0.1')),
    ('ipv4_ttl_1_martian_source', 'martian_source', XDP_PASS, nothing, lambda r: r.frame4(ttl=1, src='0.0.0.1')),
    ('ipv4_ttl_1_own_address', 'local_destination', XDP_PASS, nothing, lambda r: r.frame4(ttl=1, dst='10.1.0.1')),
    ('ipv6_hop_limit_1_payload_past_frame', 'malformed', XDP_PASS, nothing, lambda r: r.frame6(hlim=1)[:-4]),
    ('ipv6_hop_limit_1_multicast', 'martian_destination', XDP_PASS, nothing,
     lambda r: r.frame6(hlim=1, dst='ff0e::1')),
    ('ipv4_record_route', 'options', XDP_PASS, nothing, lambda r: r.frame4(options=b'\x07\x07\x04' + bytes(5))),
    ('ipv6_router_alert', 'options', XDP_PASS, nothing, lambda r: hop_by_hop(r, bytes([5, 2, 0, 0, 1, 0]))),
    ('icmp_unreachable', 'icmp_error', XDP_PASS, nothing, lambda r: icmp4(r, 3)),
    ('icmp_time_exceeded', 'icmp_error', XDP_PASS, nothing, lambda r: icmp4(r, 11)),
    ('icmpv6_packet_too_big', 'icmp_error', XDP_PASS, nothing, lambda r: icmp6(r, 2)),
    ('ipv4_no_route', 'no_route', XDP_PASS, no_default_route, lambda r: r.frame4(dst='10.5.0.1')),
    ('ipv6_no_route', 'no_route', XDP_PASS, no_default_route, lambda r: r.frame6(dst='fd05::1')),
    ('ipv6_own_address', 'no_route', XDP_PASS, nothing, lambda r: r.frame6(dst='fd02::1')),
    ('ipv4_own_address', 'local_destination', XDP_PASS, nothing, lambda r: r.frame4(dst='10.1.0.1')),
    ('ipv4_own_other_port_address', 'local_destination', XDP_PASS, nothing, lambda r: r.frame4(dst='10.2.0.1')),
    ('ipv4_subnet_broadcast', 'local_destination', XDP_PASS, nothing, lambda r: r.frame4(dst='10.2.0.255')),
    ('ipv4_unreachable_route', 'unreachable', XDP_PASS, nothing, lambda r: r.frame4(dst='10.8.1.1')),
    ('ipv6_unreachable_route', 'unreachable', XDP_PASS, nothing, lambda r: r.frame6(dst='fd08::1')),
    ('ipv4_prohibit_route', 'prohibit', XDP_PASS, nothing, lambda r: r.frame4(dst='10.7.1.1')),
    ('ipv6_prohibit_route', 'prohibit', XDP_PASS, nothing, lambda r: r.frame6(dst='fd07::1')),
    ('ipv4_blackhole_route', 'blackhole', XDP_DROP, nothing, lambda r: r.frame4(dst='10.9.1.1')),
    ('ipv6_blackhole_route', 'blackhole', XDP_DROP, nothing, lambda r: r.frame6(dst='fd09::1')),
    ('ipv4_forwarding_off', 'forwarding_disabled', XDP_PASS, forwarding_off, lambda r: r.frame4()),
    ('ipv6_forwarding_off', 'forwarding_disabled', XDP_PASS, forwarding_off, lambda r: r.frame6()),
    ('ipv4_seg6_encap_route', 'unsupported_route', XDP_PASS, encapsulated_routes, lambda r: r.frame4(dst='10.6.0.1')),
    ('ipv6_seg6_encap_route', 'unsupported_route', XDP_PASS, encapsulated_routes, lambda r: r.frame6(dst='fd06::1')),
    ('ipv4_neighbour_unknown', 'no_neighbour', XDP_PASS, nothing, lambda r: r.frame4(dst='10.2.0.3')),
    ('ipv6_neighbour_unknown', 'no_neighbour', XDP_PASS, nothing, lambda r: r.frame6(dst='fd02::3')),
    ('ipv4_above_egress_mtu', 'fragmentation_needed', XDP_PASS, small_egress_mtu,
     lambda r: r.frame4(payload=b'z' * 1400)),
    ('ipv6_above_egress_mtu', 'fragmentation_needed', XDP_PASS, small_egress_mtu,
     lambda r: r.frame6(payload=b'z' * 1400)),
    ('ipv4_back_out_of_ingress', 'hairpin', XDP_PASS, nothing, lambda r: r.frame4(src='10.1.0.99', dst='10.1.0.2')),
    ('ipv6_back_out_of_ingress', 'hairpin', XDP_PASS, nothing, lambda r: r.frame6(src='fd01::99', dst='fd01::2')),
    ('ipv4_egress_not_in_tx_ports', 'egress_without_router', XDP_PASS, lambda r: delete_key(r, 'tx_ports', 'b0'),
     lambda r: r.frame4()),
    ('ipv6_egress_not_in_tx_ports', 'egress_without_router', XDP_PASS, lambda r: delete_key(r, 'tx_ports', 'b0'),
     lambda r: r.frame6()),
]


def run_counted(router, frame):
    """(action, bytes out, reasons moved, actions moved) of one frame."""
    reasons, actions = router.prog.reasons(), router.prog.stats()
    action, out = router.run(frame)
    after = router.prog.stats()
    return action, out, moved(reasons, router.prog.reasons()), {
        name: after[name] - actions[name] for name in after if after[name] != actions[name]}


def test_every_reason_the_router_can_give_has_a_case():
    assert {case[1] for case in CASES} == set(REASON_NAMES) - NOT_PRODUCIBLE - {'redirected'}


@pytest.mark.parametrize('reason, action, setup, make_frame', [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_a_frame_is_counted_under_the_one_reason_it_meets(router, reason, action, setup, make_frame):
    setup(router)
    frame = make_frame(router)
    got, out, reasons, actions = run_counted(router, frame)
    assert got == action, 'expected %s for %s' % (ACTION_NAMES[action], reason)
    assert out == frame, 'a frame handed over or dropped is left as it came'
    assert reasons == {reason: (1, len(frame))}
    assert actions == {ACTION_NAMES[action]: 1}


@pytest.mark.parametrize('family', [4, 6])
def test_a_redirected_frame_moves_no_reason(router, family):
    frames = [router.frame4(), router.frame4(options=b'\x01' * 4, payload=b'o' * 64), router.frame4() + bytes(8)]
    if family == 6:
        frames = [router.frame6(), hop_by_hop(router, bytes(6)), router.frame6() + bytes(8)]
    for frame in frames:
        got, _out, reasons, actions = run_counted(router, frame)
        assert (got, reasons, actions) == (XDP_REDIRECT, {}, {'XDP_REDIRECT': 1})


def test_counts_add_up_per_reason_over_many_frames(router):
    """Three reasons, several frames each, interleaved with redirects: each count is its own."""
    frames = {'ttl': router.frame4(ttl=1), 'no_neighbour': router.frame6(dst='fd02::3'),
              'blackhole': router.frame4(dst='10.9.1.1', payload=b'b' * 100)}
    before = router.prog.reasons()
    for _round in range(3):
        for frame in frames.values():
            router.run(frame)
            router.run(router.frame4())
    assert moved(before, router.prog.reasons()) == {name: (3, 3 * len(frame)) for name, frame in frames.items()}


def test_a_lease_that_runs_out_moves_frames_from_redirected_to_not_vouched(router):
    router.facts(vouched_until=time.monotonic_ns() + 10 ** 9)
    assert run_counted(router, router.frame4())[2] == {}
    router.facts(vouched_until=time.monotonic_ns() - 1)
    frame = router.frame4()
    assert run_counted(router, frame)[2] == {'not_vouched': (1, len(frame))}
