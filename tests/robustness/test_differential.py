"""Differential test on a real router: every corpus frame crosses a router namespace twice,
once with Linux forwarding alone and once with xdp_router attached. Both wires must show the
same bytes: what reaches the sink, and what comes back to the sender (ICMP errors, redirects,
ARP and echo replies). The router's own counters, read after every frame, show what XDP did
with it; XDP must have done the work (redirected) for the frames Linux forwards unchanged.

    [G: g0, captured] ==veth== [R: r0 | router | r1] ==veth== [S: s0, captured]

R is set up as a real router: a default route (towards S), rp_filter=1, addresses on both
ports (two on r0), blackhole, unreachable and prohibit routes, routes back towards G, and ICMP
rate limits off (per-namespace sysctls). G and S have no addresses and no IPv6, so their
stacks say nothing. After each frame two markers follow: a UDP frame that R forwards to S, and
an echo request to R whose reply comes back to G; what each side captured before its marker
belongs to the frame. The test process stays on one CPU so that frames cannot overtake.
"""

import ipaddress
import os
import socket
import struct
import time

import pytest
from conftest import report
from corpus import GEN4, GEN6, ROUTER_OWN4, corpus
from packets import ETH_P_IP, ETH_P_IPV6, icmp_echo_request, ipv4, mac_bytes, udp

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins, _keeper
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_source
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns, in_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    ACTIONS,
    find_stats_map,
    interface_program,
    read_counters,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_program import XdpProgramManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_map import XdpMapManager

SEED = 20261125
FRAMES = 3200
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
NUD_PERMANENT = 0x80
MARKER_TAG = b'XDPKIT-DIFF-MARKER'
ROUTER_SYSCTLS = [
    ('net.ipv4.conf.all.forwarding', '1'), ('net.ipv6.conf.all.forwarding', '1'),
    ('net.ipv4.conf.all.rp_filter', '1'), ('net.ipv4.conf.default.rp_filter', '1'),
    # Every ICMP error and reply comes out, in both passes alike.
    ('net.ipv4.icmp_ratelimit', '0'), ('net.ipv4.icmp_ratemask', '0'), ('net.ipv6.icmp.ratelimit', '0'),
    ('net.ipv6.icmp.ratemask', '\n'), ('net.ipv4.icmp_msgs_per_sec', '1000000'),
    ('net.ipv4.icmp_msgs_burst', '1000000'),
]
ROUTES = [
    ('default', {'gateway': '10.230.2.2'}), ('default', {'gateway': 'fd30:2::2'}),
    ('10.231.0.0/16', {'gateway': '10.230.2.2'}), ('fd31::/32', {'gateway': 'fd30:2::2'}),
    ('10.234.0.0/16', {'gateway': GEN4}), ('fd34::/32', {'gateway': GEN6}),
    ('10.232.0.0/16', {'type': 'blackhole'}), ('fd32::/32', {'type': 'blackhole'}),
    ('10.235.0.0/16', {'type': 'unreachable'}), ('fd35::/32', {'type': 'unreachable'}),
    ('10.236.0.0/16', {'type': 'prohibit'}), ('fd36::/32', {'type': 'prohibit'}),
]


def attach(interface, namespace, program, **extra):
    sources = _bpf_source.read_source_tree(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'bpf', program + '.c'))
    params = {'interface': interface, 'namespace': namespace, 'source_files': sources,
              'source_main': program + '.c', 'state': 'present', 'mode': 'native'}
    params.update(extra)
    return XdpProgramManager(params).run()


def quiet_end(namespace, interface):
    """An end whose own stack never speaks: no IPv6, no forwarding."""
    write_sysctl(namespace, 'net.ipv6.conf.%s.disable_ipv6' % interface, '1')
    write_sysctl(namespace, 'net.ipv4.conf.all.forwarding', '0')


class Bed:
    def __init__(self, names):
        self.g, self.r, self.s = names('g'), names('r'), names('s')
        self.maps_dir = '/sys/fs/bpf/xdpkit/%s-diff' % names.prefix
        for ns in (self.g, self.r, self.s):
            create_netns(ns)
        # g0's larger MTU lets oversized frames be sent (r0 drops them); 3000 still allows native
        # XDP on r0. r1's smaller MTU puts fragmentation-needed inside the corpus.
        VethManager({'name': 'r0', 'namespace': self.r, 'state': 'present',
                     'addresses': ['10.230.1.1/24', '10.230.3.1/24', 'fd30:1::1/64'],
                     'peer': {'name': 'g0', 'namespace': self.g, 'mtu': 3000}}).run()
        VethManager({'name': 'r1', 'namespace': self.r, 'mtu': 1400, 'state': 'present',
                     'addresses': ['10.230.2.1/24', 'fd30:2::1/64'],
                     'peer': {'name': 's0', 'namespace': self.s}}).run()
        quiet_end(self.g, 'g0')
        quiet_end(self.s, 's0')
        for key, value in ROUTER_SYSCTLS:
            write_sysctl(self.r, key, value)
        for dest, extra in ROUTES:
            RouteManager(dict({'namespace': self.r, 'dest': dest, 'state': 'present'}, **extra)).run()
        with iproute(self.s) as ipr:
            self.sink_mac = get_link(ipr, 's0')['mac']
        with iproute(self.g) as ipr:
            self.gen_mac = get_link(ipr, 'g0')['mac']
        with iproute(self.r) as ipr:
            self.r0_mac = get_link(ipr, 'r0')['mac']
            r0, r1 = get_link(ipr, 'r0')['ifindex'], get_link(ipr, 'r1')['ifindex']
            # Permanent: resolution must not differ between the two passes (and G and S
            # answer no ARP or ND).
            # fe80::1 is a corpus destination: an unresolved one would answer on a timer.
            for dst, mac, port in (('10.230.2.2', self.sink_mac, r1), ('fd30:2::2', self.sink_mac, r1),
                                   (GEN4, self.gen_mac, r0), (GEN6, self.gen_mac, r0),
                                   ('fe80::1', self.gen_mac, r0)):
                ipr.neigh('add', dst=dst, lladdr=mac, ifindex=port, state=NUD_PERMANENT)
        # s0 receives redirected frames in the XDP pass; keep it identical in both passes.
        attach('s0', self.s, 'xdp_pass')
        with in_netns(self.g):
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.tx.bind(('g0', 0))
            self.rx_g = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.rx_g.bind(('g0', 0))
        with in_netns(self.s):
            self.rx_s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.rx_s.bind(('s0', 0))
        self.stats_fd = None

    def router(self, state):
        if state == 'present':
            attach('r0', self.r, 'xdp_router', maps_dir=self.maps_dir)
            # The module starts the keeper; a manager called directly leaves that to its caller.
            _keeper.ensure()
            XdpMapManager({'path': self.maps_dir + '/tx_ports', 'namespace': self.r, 'state': 'present',
                           'entries': [{'key': 'r1', 'value': 'r1'}, {'key': 'r0', 'value': 'r0'}]}).run()
            self.stats_fd = find_stats_map(interface_program(self.r, 'r0')['id'])
        else:
            os.close(self.stats_fd)
            self.stats_fd = None
            XdpProgramManager({'interface': 'r0', 'namespace': self.r, 'maps_dir': self.maps_dir,
                               'state': 'absent'}).run()
            _keeper.stop()

    def counters(self):
        if self.stats_fd is None:
            return None
        counters = read_counters(self.stats_fd)
        return {action: counters[action]['packets'] for action in ACTIONS}

    def markers(self, index):
        tag = MARKER_TAG + struct.pack('!I', index)
        to_sink = mac_bytes(self.r0_mac) + mac_bytes(self.gen_mac) + struct.pack('!H', ETH_P_IP) + \
            ipv4(GEN4, '10.231.255.254', udp(9, 9, tag))
        to_router = mac_bytes(self.r0_mac) + mac_bytes(self.gen_mac) + struct.pack('!H', ETH_P_IP) + \
            ipv4(GEN4, '10.230.1.1', icmp_echo_request(0x7777, index & 0xFFFF, tag), proto=1)
        return tag, to_sink, to_router

    def exchange(self, index, frame):
        """Send one frame and the markers; return (at the sink, back at the sender, XDP's action)."""
        before = self.counters()
        tag, to_sink, to_router = self.markers(index)
        try:
            self.tx.send(frame)
        except OSError as exc:
            return ['send failed: %s (%d bytes)' % (exc.strerror, len(frame))], [], None
        self.tx.send(to_sink)
        self.tx.send(to_router)
        at_sink = self.collect(self.rx_s, tag, index)
        back = self.collect(self.rx_g, tag, index)
        action = None
        if before is not None:
            after = self.counters()
            delta = {a: after[a] - before[a] for a in ACTIONS}
            # The markers: one forwarded by XDP, one handed to the kernel (it is for R).
            delta['XDP_REDIRECT'] -= 1
            delta['XDP_PASS'] -= 1
            taken = [a for a in ACTIONS if delta[a] == 1]
            assert sum(delta.values()) == 1 and len(taken) == 1, 'frame %d: counters moved by %s' % (index, delta)
            action = taken[0]
        return at_sink, back, action

    @staticmethod
    def collect(sock, tag, index):
        arrived = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                data, address = sock.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] == PACKET_OUTGOING:
                continue
            if data[0] & 1:
                # Multicast destination: the router's own neighbour solicitations and MLD
                # reports, sent on timers; never a forwarded frame or an answer to one.
                continue
            if tag in data:
                return arrived
            arrived.append(normalize(data).hex())
        raise AssertionError('marker %d did not arrive on %s: the test bed is broken' % (index, sock.getsockname()[0]))

    def drain(self):
        for sock in (self.rx_s, self.rx_g):
            sock.settimeout(0.05)
            try:
                while True:
                    sock.recv(65535)
            except socket.timeout:
                pass
            sock.settimeout(0.5)

    def close(self):
        if self.stats_fd is not None:
            os.close(self.stats_fd)
        for sock in (self.tx, self.rx_g, self.rx_s):
            sock.close()


@pytest.fixture
def bed(cleanup):
    testbed = Bed(cleanup)
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        yield testbed
    finally:
        os.sched_setaffinity(0, cpus)
        testbed.close()
        _bpf_pins.remove_pins(testbed.maps_dir)


ROUTER_OWN4_PACKED = {ipaddress.ip_address(a).packed for a in ROUTER_OWN4}


def normalize(frame):
    """Blank the IPv4 identification (and so the header checksum) of what the router itself
    sends (ICMP errors and replies, TCP resets): the kernel numbers them from a counter, so
    they differ between any two passes. Forwarded frames are compared byte for byte."""
    if len(frame) < 34 or frame[12:14] != b'\x08\x00' or frame[26:30] not in ROUTER_OWN4_PACKED:
        return frame
    return frame[:18] + b'\0\0' + frame[20:24] + b'\0\0' + frame[26:]


def run_pass(bed, frames):
    bed.drain()
    return [bed.exchange(i, data) for i, (_cls, data) in enumerate(frames)]


def forwarded_unchanged(frame, at_sink, back):
    """Whether Linux forwarded the frame as it is, but for MACs, TTL / hop limit and checksum
    (and the padding it trims): one frame at the sink, nothing back to the sender."""
    if len(at_sink) != 1 or back or at_sink[0].startswith('send failed'):
        return False
    out = bytes.fromhex(at_sink[0])
    if out[12:14] != frame[12:14] or out[12:14] not in (struct.pack('!H', ETH_P_IP), struct.pack('!H', ETH_P_IPV6)):
        return False
    sent, got = bytearray(frame[14:14 + len(out) - 14]), bytearray(out[14:])
    if len(sent) != len(got):
        return False
    masked = (8, 10, 11) if out[12:14] == struct.pack('!H', ETH_P_IP) else (7,)
    for i in masked:
        sent[i] = got[i] = 0
    return sent == got


def class_table(frames, kernel, xdp):
    rows = {}
    for (cls, frame), (k_sink, k_back, _none), (x_sink, x_back, action) in zip(frames, kernel, xdp, strict=True):
        row = rows.setdefault(cls, {'frames': 0, 'redirected': 0, 'passed': 0, 'dropped': 0, 'differences': 0,
                                    'linux forwarded': 0})
        row['frames'] += 1
        row['redirected'] += action == 'XDP_REDIRECT'
        row['passed'] += action == 'XDP_PASS'
        row['dropped'] += action == 'XDP_DROP'
        row['differences'] += (k_sink, k_back) != (x_sink, x_back)
        row['linux forwarded'] += forwarded_unchanged(frame, k_sink, k_back)
    columns = ['frames', 'linux forwarded', 'redirected', 'passed', 'dropped', 'differences']
    lines = ['%-22s' % 'class' + ''.join('%17s' % c for c in columns)]
    for cls in sorted(rows):
        lines.append('%-22s' % cls + ''.join('%17d' % rows[cls][c] for c in columns))
    totals = {c: sum(r[c] for r in rows.values()) for c in columns}
    lines.append('%-22s' % 'all' + ''.join('%17d' % totals[c] for c in columns))
    return rows, '\n'.join(lines)


def test_xdp_router_forwards_exactly_what_linux_forwards_on_a_real_router(bed):
    frames = corpus(SEED, FRAMES, bed.r0_mac, bed.gen_mac)
    assert len(frames) >= 3000
    kernel = run_pass(bed, frames)
    bed.router('present')
    xdp = run_pass(bed, frames)
    bed.router('absent')

    rows, table = class_table(frames, kernel, xdp)
    report('differential test, seed %d: per class, what Linux and the XDP router did\n%s' % (SEED, table))
    differences = [(i, frames[i][0], frames[i][1].hex(), kernel[i][:2], xdp[i][:2])
                   for i in range(len(frames)) if kernel[i][:2] != xdp[i][:2]]
    detail = '\n\n'.join('frame %d (%s) in: %s\n  linux: %s\n  xdp:   %s' % d for d in differences[:5])
    assert not differences, '%d of %d frames differ (seed %d)\n%s\nfirst ones:\n%s' % (
        len(differences), len(frames), SEED, table, detail)

    # XDP did the work: nearly every frame Linux forwards unchanged was redirected by XDP,
    # not handed to the kernel; were the router passing everything, this would be 0%.
    unchanged = [i for i, (_cls, frame) in enumerate(frames) if forwarded_unchanged(frame, *kernel[i][:2])]
    redirected = [i for i in unchanged if xdp[i][2] == 'XDP_REDIRECT']
    assert len(unchanged) >= 1000, table
    assert len(redirected) >= 0.95 * len(unchanged), '%d of %d frames Linux forwarded unchanged were redirected ' \
        'by XDP\n%s' % (len(redirected), len(unchanged), table)
    # What Linux refuses or answers itself, XDP never forwarded.
    for cls in ('l2 other host', 'l2 broadcast', 'l2 multicast', 'own source4', 'broadcast source4',
                'martian source', 'rp filter spoofed', 'unreachable route', 'hairpin', 'router destination',
                'special destination4', 'special destination6'):
        assert rows[cls]['frames'] >= 20 and rows[cls]['redirected'] == 0, (cls, rows[cls], table)
