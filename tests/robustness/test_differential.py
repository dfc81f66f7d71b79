"""Differential test: every corpus frame crosses a router namespace twice, once forwarded by
the kernel alone and once with xdp_router attached. What reaches the far side must be the
same bytes (or, where XDP handed the frame to the kernel, the kernel's same answer).

    [G: g0] ==veth== [R: r0 | router | r1] ==veth== [S: s0, captured]

Frames are written with an AF_PACKET socket on g0 and read with one on s0. After each frame
a marker frame follows; everything captured before the marker belongs to that frame. R has
routes only to the test's own prefixes, and no default route.
"""

import os
import socket
import struct
import time

import pytest
from corpus import corpus
from packets import ETH_P_IP, ipv4, mac_bytes, udp

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns, in_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._stats import (
    find_stats_map,
    interface_program,
    read_counters,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp import XdpProgramManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdpmap import XdpMapManager

SEED = 20261124
FRAMES = 2400
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
NUD_PERMANENT = 0x80
MARKER_TAG = b'XDPKIT-DIFF-MARKER'


def attach(interface, namespace, program, **extra):
    sources = _bpf.read_source_tree(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'bpf', program + '.c'))
    params = {'interface': interface, 'namespace': namespace, 'source_files': sources,
              'source_main': program + '.c', 'state': 'present', 'mode': 'native'}
    params.update(extra)
    return XdpProgramManager(params).run()


class Bed:
    def __init__(self, names):
        self.g, self.r, self.s = names('g'), names('r'), names('s')
        self.maps_dir = '/sys/fs/bpf/xdpkit/%s-diff' % names.prefix
        for ns in (self.g, self.r, self.s):
            create_netns(ns)
        VethManager({'name': 'r0', 'namespace': self.r, 'addresses': ['10.230.1.1/24', 'fd30:1::1/64'],
                     'state': 'present',
                     'peer': {'name': 'g0', 'namespace': self.g, 'mtu': 3000,
                              'addresses': ['10.230.1.2/24', 'fd30:1::2/64']}}).run()
        # g0's larger MTU lets oversized frames be sent (r0 drops them); 3000 still allows native
        # XDP on r0. r1's smaller MTU puts fragmentation-needed inside the corpus.
        VethManager({'name': 'r1', 'namespace': self.r, 'mtu': 1400, 'state': 'present',
                     'addresses': ['10.230.2.1/24', 'fd30:2::1/64'],
                     'peer': {'name': 's0', 'namespace': self.s,
                              'addresses': ['10.230.2.2/24', 'fd30:2::2/64']}}).run()
        for key in ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding'):
            write_sysctl(self.r, key, '1')
        # ICMP errors are rate limited per peer and globally: the second pass would find the
        # buckets the first one emptied. Without limits both passes answer alike.
        for key, value in (('net.ipv4.icmp_ratelimit', '0'), ('net.ipv6.icmp.ratelimit', '0'),
                           ('net.ipv4.icmp_msgs_per_sec', '1000000'), ('net.ipv4.icmp_msgs_burst', '1000000')):
            write_sysctl(self.r, key, value)
        for dest, extra in (('10.231.0.0/16', {'gateway': '10.230.2.2'}), ('fd31::/32', {'gateway': 'fd30:2::2'}),
                            ('10.232.0.0/16', {'type': 'blackhole'}), ('fd32::/32', {'type': 'blackhole'})):
            RouteManager(dict({'namespace': self.r, 'dest': dest, 'state': 'present'}, **extra)).run()
        with iproute(self.s) as ipr:
            self.sink_mac = get_link(ipr, 's0')['mac']
        with iproute(self.g) as ipr:
            self.gen_mac = get_link(ipr, 'g0')['mac']
        with iproute(self.r) as ipr:
            self.r0_mac = get_link(ipr, 'r0')['mac']
            r1 = get_link(ipr, 'r1')['ifindex']
            # Permanent: resolution must not differ between the two passes.
            for dst in ('10.230.2.2', 'fd30:2::2'):
                ipr.neigh('add', dst=dst, lladdr=self.sink_mac, ifindex=r1, state=NUD_PERMANENT)
        # s0 receives redirected frames in the XDP pass; keep it identical in both passes.
        attach('s0', self.s, 'xdp_pass')
        with in_netns(self.g):
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.tx.bind(('g0', 0))
        with in_netns(self.s):
            self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.rx.bind(('s0', 0))
        self.rx.settimeout(0.5)

    def router(self, state):
        if state == 'present':
            attach('r0', self.r, 'xdp_router', maps_dir=self.maps_dir)
            XdpMapManager({'path': self.maps_dir + '/tx_ports', 'namespace': self.r, 'state': 'present',
                           'entries': [{'key': 'r1', 'value': 'r1'}]}).run()
        else:
            XdpProgramManager({'interface': 'r0', 'namespace': self.r, 'maps_dir': self.maps_dir,
                               'state': 'absent'}).run()

    def marker(self, index):
        payload = MARKER_TAG + struct.pack('!I', index)
        return mac_bytes(self.r0_mac) + mac_bytes(self.gen_mac) + struct.pack('!H', ETH_P_IP) + \
            ipv4('10.230.1.2', '10.231.255.254', udp(9, 9, payload))

    def exchange(self, index, frame):
        """Send one frame and its marker; return what arrived at s0 before the marker."""
        try:
            self.tx.send(frame)
        except OSError as exc:
            return ['send failed: %s' % exc.strerror]
        marker = MARKER_TAG + struct.pack('!I', index)
        self.tx.send(self.marker(index))
        arrived = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                data, address = self.rx.recvfrom(65535)
            except socket.timeout:
                break
            if address[2] == PACKET_OUTGOING:
                continue
            if data[0] & 1:
                # Multicast destination: the router's own MLD reports and the like, never a
                # forwarded frame (those go to the next hop's unicast MAC).
                continue
            if marker in data:
                return arrived
            arrived.append(data.hex())
        raise AssertionError('marker %d did not arrive: the test bed is broken' % index)

    def drain(self):
        self.rx.settimeout(0.05)
        try:
            while True:
                self.rx.recv(65535)
        except socket.timeout:
            pass
        self.rx.settimeout(0.5)

    def close(self):
        self.tx.close()
        self.rx.close()


@pytest.fixture
def bed(cleanup):
    testbed = Bed(cleanup)
    yield testbed
    testbed.close()
    _bpf.remove_pins(testbed.maps_dir)


def run_pass(bed, frames):
    bed.drain()
    return [[normalize(out) for out in bed.exchange(i, frame)] for i, frame in enumerate(frames)]


def normalize(frame_hex):
    """Blank the IPv4 identification (and so the header checksum) of the router's own ICMP
    errors: the kernel numbers them from a counter, so they differ between any two passes."""
    frame = bytes.fromhex(frame_hex) if isinstance(frame_hex, str) and not frame_hex.startswith('send') else None
    if frame is None or len(frame) < 34 or frame[12:14] != b'\x08\x00' or frame[23] != 1:
        return frame_hex
    if frame[26:30] not in (bytes([10, 230, 2, 1]), bytes([10, 230, 1, 1])):
        return frame_hex
    return (frame[:18] + b'\0\0' + frame[20:24] + b'\0\0' + frame[26:]).hex()


def test_xdp_router_forwards_exactly_what_the_kernel_forwards(bed):
    frames = corpus(SEED, FRAMES, bed.r0_mac, bed.gen_mac)
    assert len(frames) >= 2000
    kernel = run_pass(bed, frames)
    bed.router('present')
    xdp = run_pass(bed, frames)
    program = interface_program(bed.r, 'r0')
    fd = find_stats_map(program['id'])
    try:
        counters = read_counters(fd)
    finally:
        os.close(fd)
    bed.router('absent')

    differences = [(i, frames[i].hex(), kernel[i], xdp[i]) for i in range(len(frames)) if kernel[i] != xdp[i]]
    report = '\n\n'.join('frame %d in:  %s\n  kernel out: %s\n  xdp out:    %s' % diff for diff in differences[:5])
    assert not differences, '%d of %d frames differ (seed %d); first ones:\n%s' % (
        len(differences), len(frames), SEED, report)
    forwarded = sum(1 for out in kernel if out)
    # The corpus is meant to exercise both paths: plenty forwarded by XDP, plenty handed over.
    assert counters['XDP_REDIRECT']['packets'] >= 500, counters
    assert counters['XDP_PASS']['packets'] >= 300, counters
    assert forwarded >= 600, forwarded
