"""xdp_pass, xdp_redirect and xdp_redirect_map under BPF_PROG_RUN: actions, bytes, counters."""

import os

import pytest
from bpf_loader import XDP_PASS, XDP_REDIRECT, XDP_TX, LoadedProgram, moved
from packets import (
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    arp_request,
    checksum,
    ether,
    generator_defines,
    ipv4,
    ipv6,
    mac_bytes,
    pseudo_header,
    udp,
)

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns, in_netns

A_MAC = '02:00:00:00:0a:01'
B_MAC = '02:00:00:00:0b:01'
FRAME = ether('02:00:00:00:00:99', A_MAC, 0x0800, ipv4('10.1.0.2', '10.2.0.2', udp(1, 2, b'x' * 18)))


@pytest.fixture
def program(bpf_dir):
    loaded = []

    def load(name, **kw):
        loaded.append(LoadedProgram(name, bpf_dir + '/' + name, maps_dir=bpf_dir + '/shared', **kw))
        return loaded[-1]

    yield load
    for prog in loaded:
        prog.close()


def test_xdp_pass_passes_unchanged_and_counts(program):
    prog = program('xdp_pass')
    action, out = prog.run(FRAME)
    assert action == XDP_PASS and out == FRAME
    prog.run(FRAME)
    assert prog.stats()['XDP_PASS'] == 2


def test_xdp_redirect_rewrites_only_the_destination_mac(program):
    prog = program('xdp_redirect', defines={'DEST_IFINDEX': 1, 'DEST_MAC': B_MAC})
    action, out = prog.run(FRAME)
    assert action == XDP_REDIRECT
    assert out[:6] == mac_bytes(B_MAC)
    assert out[6:] == FRAME[6:]
    assert prog.stats()['XDP_REDIRECT'] == 1


def test_xdp_redirect_writes_the_source_mac_when_given(program):
    prog = program('xdp_redirect', defines={'DEST_IFINDEX': 1, 'DEST_MAC': B_MAC, 'SRC_MAC': '02:00:00:00:0c:01'})
    out = prog.run(FRAME)[1]
    assert out[:12] == mac_bytes(B_MAC) + mac_bytes('02:00:00:00:0c:01') and out[12:] == FRAME[12:]


def test_xdp_redirect_passes_a_bare_ethernet_header(program):
    prog = program('xdp_redirect', defines={'DEST_IFINDEX': 1, 'DEST_MAC': B_MAC})
    action = prog.run(FRAME[:14])[0]
    assert action == XDP_REDIRECT  # 14 bytes is a whole Ethernet header: still forwarded


def test_xdp_redirect_without_its_defines_does_not_compile(bpf_dir):
    with pytest.raises(XdpkitError, match='DEST_IFINDEX is not defined'):
        LoadedProgram('xdp_redirect', bpf_dir + '/nodefs')


@pytest.fixture
def ports(cleanup):
    """A namespace with a veth pair whose ifindexes the redirect_map tests use."""
    ns = cleanup('ns')
    create_netns(ns)
    with iproute(ns) as ipr:
        ipr.link('add', ifname='p0', kind='veth', peer={'ifname': 'p1'})
        return ns, get_link(ipr, 'p0')['ifindex'], get_link(ipr, 'p1')['ifindex']


def set_mac(prog, src, dst):
    fd = prog.map_fd('mac_table')
    try:
        sysbpf.map_update(fd, mac_bytes(src), mac_bytes(dst))
    finally:
        os.close(fd)


def test_xdp_redirect_map_forwards_known_sources_through_the_port_map(program, ports):
    ns, p0, p1 = ports
    prog = program('xdp_redirect_map')
    set_mac(prog, A_MAC, B_MAC)
    prog.set_port(p0, p1)
    with in_netns(ns):
        action, out = prog.run(FRAME, ingress_ifindex=p0)
    assert action == XDP_REDIRECT
    assert out[:6] == mac_bytes(B_MAC) and out[6:] == FRAME[6:]


def test_xdp_redirect_map_passes_unknown_sources_unchanged(program, ports):
    ns, p0, p1 = ports
    prog = program('xdp_redirect_map')
    prog.set_port(p0, p1)
    with in_netns(ns):
        action, out = prog.run(FRAME, ingress_ifindex=p0)
    assert action == XDP_PASS and out == FRAME


def test_xdp_redirect_map_passes_unchanged_when_the_port_has_no_egress(program, ports):
    ns, p0 = ports[:2]
    prog = program('xdp_redirect_map')
    set_mac(prog, A_MAC, B_MAC)
    with in_netns(ns):
        action, out = prog.run(FRAME, ingress_ifindex=p0)
    assert action == XDP_PASS and out == FRAME, 'a frame for the kernel must keep its MAC'
    assert prog.stats()['XDP_PASS'] == 1


def test_xdp_redirect_map_is_bidirectional(program, ports):
    ns, p0, p1 = ports
    prog = program('xdp_redirect_map')
    set_mac(prog, A_MAC, B_MAC)
    set_mac(prog, B_MAC, A_MAC)
    prog.set_port(p0, p1)
    prog.set_port(p1, p0)
    back = ether(A_MAC, B_MAC, 0x0800, FRAME[14:])
    with in_netns(ns):
        assert prog.run(FRAME, ingress_ifindex=p0)[0] == XDP_REDIRECT
        action, out = prog.run(back, ingress_ifindex=p1)
    assert action == XDP_REDIRECT and out[:6] == mac_bytes(A_MAC)
    assert prog.stats()['XDP_REDIRECT'] == 2


def test_xdp_redirect_map_treats_arp_like_any_frame_from_a_known_source(program, ports):
    ns, p0, p1 = ports
    prog = program('xdp_redirect_map')
    set_mac(prog, A_MAC, B_MAC)
    prog.set_port(p0, p1)
    arp = ether('ff:ff:ff:ff:ff:ff', A_MAC, ETH_P_ARP, arp_request(A_MAC, '10.1.0.2', '10.1.0.1'))
    with in_netns(ns):
        action, out = prog.run(arp, ingress_ifindex=p0)
    # Layer-2 forwarding by source MAC: the seed's map mode forwards ARP too.
    assert action == XDP_REDIRECT and out[6:] == arp[6:]


# -- reasons: why a frame was not redirected, counted per reason (packets, bytes) ---------------
# A frame shorter than an Ethernet header (both programs' `malformed`) cannot be run:
# BPF_PROG_RUN refuses input under 14 bytes. bpf_redirect() with flags 0 never refuses, so the
# hardcoded program's `redirect_refused` cannot be produced either.


def test_xdp_redirect_counts_no_reason_for_a_redirected_frame(program):
    prog = program('xdp_redirect', defines={'DEST_IFINDEX': 1, 'DEST_MAC': B_MAC})
    before = prog.reasons()
    assert prog.run(FRAME)[0] == XDP_REDIRECT and prog.run(FRAME[:14])[0] == XDP_REDIRECT
    assert moved(before, prog.reasons()) == {}


def test_xdp_redirect_map_counts_unknown_sources_and_missing_egress_each_under_its_reason(program, ports):
    ns, p0, p1 = ports
    prog = program('xdp_redirect_map')
    set_mac(prog, A_MAC, B_MAC)
    unknown = ether('02:00:00:00:00:99', '02:00:00:00:0d:01', 0x0800, FRAME[14:] + b'u' * 10)
    with in_netns(ns):
        before = prog.reasons()
        assert prog.run(FRAME, ingress_ifindex=p0) == (XDP_PASS, FRAME)  # no egress for p0 yet
        assert moved(before, prog.reasons()) == {'no_egress_port': (1, len(FRAME))}
        prog.set_port(p0, p1)
        before = prog.reasons()
        assert prog.run(unknown, ingress_ifindex=p0) == (XDP_PASS, unknown)
        assert moved(before, prog.reasons()) == {'unknown_source_mac': (1, len(unknown))}
        before = prog.reasons()
        assert prog.run(FRAME, ingress_ifindex=p0)[0] == XDP_REDIRECT
        assert moved(before, prog.reasons()) == {}, 'a redirected frame moves no reason'


# The benchmark's addresses; and a pair whose 64-byte frame sums to checksum 0, sent as 0xFFFF.
GENERATED = [('fd00:201:1::2', 'fd00:201:2::2'), ('10.201.1.2', '10.201.2.2'), ('fd00::2', 'fd00::5c5')]


@pytest.mark.parametrize('src, dst', GENERATED)
@pytest.mark.parametrize('size', [64, 1500])
def test_xdp_trafficgen_writes_udp_with_its_checksum_into_every_frame(program, src, dst, size):
    """IPv6 receivers drop UDP with a zero checksum (RFC 8200 8.1): the generator's frames carry
    the right one, also in a frame a forwarder left behind (every header is written anew)."""
    prog = program('xdp_trafficgen', defines=generator_defines(A_MAC, B_MAC, src, dst))
    action, out = prog.run(bytes(size))
    assert action == XDP_TX
    if ':' in src:
        datagram, ttl_offset = out[54:], 21
        wanted = ether(B_MAC, A_MAC, ETH_P_IPV6, ipv6(src, dst, udp(9, 9, bytes(size - 62), src, dst), flow=0))
    else:
        datagram, ttl_offset = out[34:], 22
        wanted = ether(B_MAC, A_MAC, ETH_P_IP, ipv4(src, dst, udp(9, 9, bytes(size - 42), src, dst), ident=0))
    assert out == wanted
    assert datagram[6:8] != bytes(2) and checksum(pseudo_header(src, dst, 17, len(datagram)) + datagram) == 0
    forwarded = bytearray(out)
    forwarded[:12] = mac_bytes('02:00:00:00:0c:01') + mac_bytes(B_MAC)
    forwarded[ttl_offset] -= 1
    assert prog.run(bytes(forwarded)) == (XDP_TX, out)
