"""xdp_router where the route depends on more than the destination: policy rules on ports,
multipath routes hashed on ports, and ICMP errors (which the kernel hashes by the header they
quote). Each case asks the kernel itself (`ip route get ... iif`, the input path) where the
packet goes and checks that the router sends it to the same next hop, or hands it over."""

import json
import struct

import pytest
from bpf_loader import XDP_PASS, XDP_REDIRECT
from conftest import in_ns
from packets import ETH_P_IP, ETH_P_IPV6, ether, ipv4, ipv6, udp
from test_router import NEIGH_MAC, NUD_PERMANENT, SENDER_MAC, build_router_namespace, load_router

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
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


def icmp_frame(router, family, icmp_type):
    """An ICMP / ICMPv6 message of `icmp_type` from the sender through the router, quoting a
    packet of the reverse direction (as an error would)."""
    if family == 4:
        quoted = ipv4('10.2.0.2', SOURCE[4], udp(5000, 4000, b'q' * 8))
        packet = ipv4(SOURCE[4], '10.2.0.2', struct.pack('!BBHI', icmp_type, 0, 0, 0) + quoted, proto=1)
        return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IP, packet)
    quoted = ipv6('fd02::2', SOURCE[6], udp(5000, 4000, b'q' * 8))
    packet = ipv6(SOURCE[6], 'fd02::2', struct.pack('!BBHI', icmp_type, 0, 0, 0) + quoted, nexthdr=58)
    return ether(router.ports['a0']['mac'], SENDER_MAC, ETH_P_IPV6, packet)


@pytest.mark.parametrize('family, icmp_type, port', [
    (4, 3, None), (4, 4, None), (4, 11, None), (4, 12, None), (4, 8, 'b0'), (4, 0, 'b0'), (4, 13, 'b0'),
    (6, 1, None), (6, 2, None), (6, 3, None), (6, 4, None), (6, 128, 'b0'), (6, 129, 'b0'),
])
def test_icmp_errors_go_to_the_kernel_which_hashes_the_header_they_quote(router, family, icmp_type, port):
    assert router_port(router, icmp_frame(router, family, icmp_type)) == port
