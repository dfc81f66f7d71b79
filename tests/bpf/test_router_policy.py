"""xdp_router where the route depends on more than the destination: policy rules on ports,
multipath routes hashed on ports, and ICMP errors (which the kernel hashes by the header they
quote). Each case asks the kernel itself (`ip route get ... iif`, the input path) where the
packet goes and checks that the router sends it to the same next hop, or hands it over."""

import json
import select
import socket
import struct
import time

import pytest
from bpf_loader import XDP_PASS, XDP_REDIRECT
from conftest import in_ns
from packets import ETH_P_IP, ETH_P_IPV6, ether, ipv4, ipv6, udp
from test_router import NEIGH_MAC, NUD_PERMANENT, SENDER_MAC, build_router_namespace, load_router

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

ALT_MAC = '02:00:00:00:0c:02'
NEXT_HOP_PORT = {NEIGH_MAC: 'b0', ALT_MAC: 'c0'}
SOURCE = {4: '10.1.0.2', 6: 'fd01::2'}
ALT_GATEWAY = {4: '10.3.0.2', 6: 'fd03::2'}


@pytest.fixture
def router(cleanup, bpf_dir):
    """The test_router namespace (a0 in, b0 out by the default route) plus a third port c0
    whose next hop has ALT_MAC; the full lookup (policy rules apply)."""
    ns = cleanup('r')
    ports = build_router_namespace(ns)
    VethManager({'name': 'c0', 'namespace': ns, 'addresses': ['10.3.0.1/24', 'fd03::1/64'], 'state': 'present',
                 'peer': {'name': 'c1', 'namespace': ns}}).run()
    with iproute(ns) as ipr:
        link = get_link(ipr, 'c0')
        ports['c0'] = {'ifindex': link['ifindex'], 'mac': link['mac']}
        for dst in ALT_GATEWAY.values():
            ipr.neigh('add', dst=dst, lladdr=ALT_MAC, ifindex=link['ifindex'], state=NUD_PERMANENT)
    loaded = load_router(ns, ports, bpf_dir)
    yield loaded
    loaded.prog.close()


def ip(router, family, *argv):
    return in_ns(router.ns, 'ip', '-%d' % family, *argv)


def kernel_port(router, family, dst, sport, dport, proto='udp'):
    """The port Linux forwards this packet out of (None when it would not forward it)."""
    out = in_ns(router.ns, 'ip', '-j', '-%d' % family, 'route', 'get', dst, 'from', SOURCE[family], 'iif', 'a0',
                'ipproto', proto, 'sport', str(sport), 'dport', str(dport), check=False)
    return json.loads(out.stdout)[0]['dev'] if out.returncode == 0 else None


def udp_frame(router, family, dst, sport, dport):
    payload = udp(sport, dport, b'r' * 26, SOURCE[family], dst)
    if family == 4:
        return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IP, ipv4(SOURCE[4], dst, payload))
    return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, ipv6(SOURCE[6], dst, payload))


def router_port(router, frame):
    """The port the router sends the frame out of, by its next hop's MAC (None: handed over)."""
    action, out = router.run(frame)
    if action == XDP_PASS:
        assert out == frame
        return None
    assert action == XDP_REDIRECT, action
    return NEXT_HOP_PORT[bytes(out[:6]).hex(':')]


@pytest.mark.parametrize('family, dst', [(4, '10.2.0.2'), (6, 'fd02::2')])
def test_policy_rules_on_ports_route_as_the_kernel_does(router, family, dst):
    ip(router, family, 'route', 'add', 'default', 'via', ALT_GATEWAY[family], 'dev', 'c0', 'table', '100')
    ip(router, family, 'rule', 'add', 'pref', '100', 'ipproto', 'udp', 'dport', '53', 'table', '100')
    for dport, port in ((53, 'c0'), (5353, 'b0')):
        assert kernel_port(router, family, dst, 4000, dport) == port, 'the kernel itself'
        assert router_port(router, udp_frame(router, family, dst, 4000, dport)) == port, 'dport %d' % dport


def test_the_reverse_path_check_sees_the_ports_swapped_as_fib_validate_source_does(router):
    """A rule on source port 53 sends replies to the sender out of c0: with strict rp_filter,
    a packet to port 53 fails the check (its reverse lookup has source port 53), others pass."""
    ip(router, 4, 'route', 'add', '10.1.0.0/24', 'via', ALT_GATEWAY[4], 'dev', 'c0', 'table', '101')
    ip(router, 4, 'rule', 'add', 'pref', '101', 'ipproto', 'udp', 'sport', '53', 'table', '101')
    write_sysctl(router.ns, 'net.ipv4.conf.all.rp_filter', '0')
    for rp_filter, to_53 in ((1, None), (0, 'b0')):
        write_sysctl(router.ns, 'net.ipv4.conf.a0.rp_filter', str(rp_filter))
        router.facts(rp_filter=rp_filter)
        assert kernel_port(router, 4, '10.2.0.2', 4000, 53) == to_53, 'the kernel itself, rp_filter %d' % rp_filter
        assert kernel_port(router, 4, '10.2.0.2', 4000, 80) == 'b0'
        assert router_port(router, udp_frame(router, 4, '10.2.0.2', 4000, 53)) == to_53, 'rp_filter %d' % rp_filter
        assert router_port(router, udp_frame(router, 4, '10.2.0.2', 4000, 80)) == 'b0'


@pytest.mark.parametrize('family, prefix, dst', [(4, '10.20.0.0/16', '10.20.0.5'), (6, 'fd20::/32', 'fd20::5')])
def test_multipath_routes_hashed_on_ports_take_the_kernels_path(router, family, prefix, dst):
    """fib_multipath_hash_policy 1 hashes addresses, protocol and ports: for each flow the router
    picks the next hop the kernel picks, and the flows use both."""
    ip(router, family, 'route', 'add', prefix, 'nexthop', 'via', {4: '10.2.0.2', 6: 'fd02::2'}[family], 'dev', 'b0',
       'nexthop', 'via', ALT_GATEWAY[family], 'dev', 'c0')
    write_sysctl(router.ns, 'net.ipv%d.fib_multipath_hash_policy' % family, '1')
    seen = set()
    for flow in range(24):
        sport, dport = 1000 + 37 * flow, 2000 + flow
        port = kernel_port(router, family, dst, sport, dport)
        assert port in ('b0', 'c0')
        assert router_port(router, udp_frame(router, family, dst, sport, dport)) == port, 'flow %d -> %d' % (
            sport, dport)
        seen.add(port)
    assert seen == {'b0', 'c0'}, 'the flows should use both paths'


ICMP_TYPES = {4: list(range(19)), 6: [1, 2, 3, 4, 5, 100, 127, 128, 129, 130, 200]}
MULTIPATH = {4: ('10.20.0.0/16', '10.20.0.5'), 6: ('fd20::/32', 'fd20::5')}
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def quoting_frame(router, family, icmp_type, variant):
    """An ICMP / ICMPv6 message of `icmp_type` from the sender to a multipath destination, the
    same outer header every time, quoting a packet whose addresses change with `variant`."""
    tag = b'Q%03d%03d' % (icmp_type, variant)
    dst = MULTIPATH[family][1]
    if family == 4:
        quoted = ipv4('10.20.%d.%d' % (variant // 200, 1 + variant % 200), SOURCE[4], udp(5000, 4000, tag))
        packet = ipv4(SOURCE[4], dst, struct.pack('!BBHI', icmp_type, 0, 0, 0) + quoted, proto=1)
        return tag, ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IP, packet)
    quoted = ipv6('fd20::%x' % (0x100 + variant), SOURCE[6], udp(5000, 4000, tag))
    packet = ipv6(SOURCE[6], dst, struct.pack('!BBHI', icmp_type, 0, 0, 0) + quoted, nexthdr=58)
    return tag, ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, packet)


class KernelPath:
    """Frames sent into a0 through its peer a1; the port Linux forwards each out of is the one
    whose peer (b1, c1) receives it."""

    def __init__(self, ns):
        with in_netns(ns):
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.tx.bind(('a1', 0))
            self.rx = {}
            for port, peer in (('b0', 'b1'), ('c0', 'c1')):
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.bind((peer, 0))
                sock.setblocking(False)
                self.rx[port] = sock

    def port(self, tag, frame):
        self.tx.send(frame)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            readable = select.select(list(self.rx.values()), [], [], 0.1)[0]
            for sock in readable:
                data, address = sock.recvfrom(65535)
                if address[2] != PACKET_OUTGOING and tag in data:
                    return [port for port, rx in self.rx.items() if rx is sock][0]
        return None

    def close(self):
        for sock in [self.tx] + list(self.rx.values()):
            sock.close()


@pytest.mark.parametrize('family', [4, 6])
def test_icmp_errors_go_to_the_kernel_which_hashes_the_header_they_quote(router, family):
    """Over a multipath route with fib_multipath_hash_policy 0 the kernel hashes an ICMP error by
    the header it quotes (icmp_is_err(), icmpv6_is_err()) and anything else by its own. The
    kernel itself says which types are errors: the same outer header quoting 16 different
    packets leaves by both paths for an error type and by one path otherwise. Every error type
    must go to the kernel, every other one to the next hop the kernel picks."""
    prefix = MULTIPATH[family][0]
    ip(router, family, 'route', 'add', prefix, 'nexthop', 'via', {4: '10.2.0.2', 6: 'fd02::2'}[family], 'dev', 'b0',
       'nexthop', 'via', ALT_GATEWAY[family], 'dev', 'c0')
    write_sysctl(router.ns, 'net.ipv%d.fib_multipath_hash_policy' % family, '0')
    kernel = KernelPath(router.ns)
    errors = []
    try:
        for icmp_type in ICMP_TYPES[family]:
            frames = [quoting_frame(router, family, icmp_type, variant) for variant in range(16)]
            kernel_ports = [kernel.port(tag, frame) for tag, frame in frames]
            assert None not in kernel_ports, 'the kernel forwarded every type %d message' % icmp_type
            router_ports = [router_port(router, frame) for _tag, frame in frames]
            if len(set(kernel_ports)) > 1:
                errors.append(icmp_type)
                assert router_ports == [None] * 16, 'type %d is an error to the kernel: hand it over' % icmp_type
            else:
                assert router_ports == kernel_ports, 'type %d: the router takes the kernel\'s path' % icmp_type
    finally:
        kernel.close()
    assert errors, 'no type left by both paths: the probe cannot tell errors, the test bed is broken'
