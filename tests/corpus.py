"""A seeded corpus of frames for the differential test, each labelled with its class: valid,
odd and hostile IPv4/IPv6 as a real router sees them (see test_differential's router: a default
route, rp_filter=1, addresses on both ports, blackhole, unreachable and prohibit routes).

Frames are addressed to the router's ingress MAC unless their class is about the L2
destination. Destinations stay inside the test's own prefixes (routed to the sink, the
router's default route, which also points at the sink, blackholed, unreachable, prohibited,
routed back towards the generator, the router's own addresses) or are special addresses the
router must not forward; nothing can leave the test bed whatever the corpus holds.
"""

import ipaddress
import random
import struct

from packets import ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, arp_request, checksum, ipv4, ipv6, mac_bytes, udp

# The router: r0 (ingress) 10.230.1.1/24, 10.230.3.1/24, fd30:1::1/64; r1 (egress) 10.230.2.1/24,
# fd30:2::1/64; the generator's side is routed via 10.230.1.2 / fd30:1::2, the sink is .2 of r1.
GEN4, GEN6 = '10.230.1.2', 'fd30:1::2'
ROUTER_OWN4 = ['10.230.1.1', '10.230.3.1', '10.230.2.1']
ROUTER_OWN6 = ['fd30:1::1', 'fd30:2::1']
BEHIND_GEN4 = ipaddress.ip_network('10.234.0.0/16')   # routed back out of the ingress port
BEHIND_GEN6 = ipaddress.ip_network('fd34::/32')
ROUTED4 = ipaddress.ip_network('10.231.0.0/16')       # via the sink
ROUTED6 = ipaddress.ip_network('fd31::/32')
DEFAULT4 = ipaddress.ip_network('10.233.0.0/16')      # only the default route (via the sink) covers it
DEFAULT6 = ipaddress.ip_network('fd33::/32')
BLACKHOLE4 = ipaddress.ip_network('10.232.0.0/16')
BLACKHOLE6 = ipaddress.ip_network('fd32::/32')
UNREACHABLE4 = ipaddress.ip_network('10.235.0.0/16')
UNREACHABLE6 = ipaddress.ip_network('fd35::/32')
PROHIBIT4 = ipaddress.ip_network('10.236.0.0/16')
PROHIBIT6 = ipaddress.ip_network('fd36::/32')
SPECIAL_DST4 = ['255.255.255.255', '224.0.0.5', '239.1.2.3', '0.0.0.7', '127.0.0.1', '10.230.1.255', '10.230.2.255',
                '10.230.3.255']
SPECIAL_DST6 = ['::1', 'ff02::1', 'ff05::2', 'ff0e::1', '::', 'fe80::1', '::ffff:10.231.0.1']
MARTIAN_SRC4 = ['127.0.0.9', '0.0.0.1', '224.1.2.3', '255.255.255.255', '239.9.9.9']
BROADCAST_SRC4 = ['10.230.1.255', '10.230.2.255', '10.230.3.255']
REFUSED_SRC6 = ['::1', 'ff02::3', '::', 'fe80::99', '::ffff:192.0.2.1']
OTHER_HOST_MAC = '02:00:00:00:0c:0c'
L2_MULTICAST = {4: '01:00:5e:00:00:05', 6: '33:33:00:00:00:01'}


def rand_addr(rng, network):
    return str(network[rng.randrange(1, min(network.num_addresses - 1, 1 << 24))])


def valid_source(rng, family, fresh=False):
    """A source the router accepts on r0 with rp_filter=1: the generator's own address or one
    routed behind it. The kernel limits some answers per source with host-wide settings
    (ip_error()'s unreachables: a burst of 5; ICMP redirects), so frames that draw those get a
    `fresh` source each, and both passes see the same answers."""
    if family == 4:
        return GEN4 if rng.random() < 0.2 and not fresh else rand_addr(rng, BEHIND_GEN4)
    return GEN6 if rng.random() < 0.2 and not fresh else rand_addr(rng, BEHIND_GEN6)


def tcp_syn(rng, payload=b''):
    options = b'\x02\x04\x05\xb4\x01\x01\x04\x02'  # MSS, NOP, NOP, SACK permitted
    return struct.pack('!HHIIBBHHH', rng.randrange(1024, 65535), rng.choice([22, 80, 443]), rng.getrandbits(32), 0,
                       (7 << 4), 0x02, 65535, rng.getrandbits(16), 0) + options + payload


def icmp_echo(rng, payload):
    body = struct.pack('!BBHHH', 8, 0, 0, rng.getrandbits(16), rng.getrandbits(16)) + payload
    return body[:2] + struct.pack('!H', checksum(body)) + body[4:]


def l4(rng, proto, size):
    payload = bytes(rng.getrandbits(8) for _i in range(size))
    if proto == 6:
        return tcp_syn(rng, payload)
    if proto == 1:
        return icmp_echo(rng, payload)
    return udp(rng.randrange(1, 65535), rng.randrange(1, 65535), payload)


def ipv4_packet(rng, src, dst, odd):
    """An IPv4 packet; `odd` adds the parity classes of before: TTLs at the edge, options,
    fragments, bad checksums, TOS."""
    proto = rng.choice([17, 17, 6, 1])
    size = rng.choice([0, 1, 18, 64, 200, 1000, 1360, 1380, 1430, 1472])
    ttl, options, flags_frag, bad = 64, b'', 0x4000, False
    if odd:
        ttl = rng.choice([0, 1, 2, 64, 255, 255, 64, 64])
        options = rng.choice([b''] * 5 + [b'\x01\x01\x01\x00', b'\x07\x07\x04' + bytes(4) + b'\x00'])
        flags_frag = rng.choice([0x4000, 0x4000, 0x0000, 0x2000, 0x2000 | 37, 185, 0x4000 | 8])
        bad = rng.random() < 0.1
    return ipv4(src, dst, l4(rng, proto, size), ttl=ttl, proto=proto, tos=rng.choice([0, 0xb8]),
                ident=rng.getrandbits(16), flags_frag=flags_frag, options=options, bad_checksum=bad)


def ipv6_packet(rng, src, dst, odd):
    proto = rng.choice([17, 17, 6, 58])
    size = rng.choice([0, 1, 18, 64, 200, 1000, 1340, 1352, 1400, 1440])
    body = l4(rng, 1 if proto == 58 else proto, size)
    if proto == 58:
        body = struct.pack('!BB', 128, 0) + body[2:]  # ICMPv6 echo request (checksum left wrong: nobody checks it)
    nexthdr, hlim = proto, 64
    if odd:
        hlim = rng.choice([0, 1, 2, 64, 255, 64, 64])
        ext = rng.choice([None] * 3 + [0, 43, 44, 60, 59])
        if ext == 59:
            body, nexthdr = b'', 59
        elif ext == 44:
            body, nexthdr = struct.pack('!BBHI', proto, 0, rng.choice([0, 1, 8 << 3]), rng.getrandbits(32)) + body, 44
        elif ext == 43:
            body, nexthdr = struct.pack('!BBBB', proto, 2, 0, 1) + bytes(4) + ipaddress.ip_address(
                rand_addr(rng, ROUTED6)).packed + body, 43
        elif ext is not None:
            body, nexthdr = struct.pack('!BB', proto, 0) + b'\x01\x04' + bytes(4) + body, ext
    return ipv6(src, dst, body, hlim=hlim, nexthdr=nexthdr, flow=rng.getrandbits(20))


def frame(dst_mac, src_mac, family, packet):
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack('!H', ETH_P_IP if family == 4 else ETH_P_IPV6) + packet


def mangle(rng, data):
    """Runts, padding, trailing bytes, oversize, VLAN tags, lying lengths, wrong versions."""
    roll = rng.random()
    if roll < 0.15:
        return data[:rng.randrange(14, min(len(data), 54))]                       # runt / truncated
    if roll < 0.35:
        return data + bytes(rng.getrandbits(8) for _i in range(rng.randrange(1, 40)))   # trailing bytes
    if roll < 0.45:
        return data + bytes(rng.randrange(1500, 3000))                             # oversized
    if roll < 0.6:
        return data[:12] + struct.pack('!HH', ETH_P_8021Q, rng.randrange(1, 4094)) + data[12:]  # VLAN tag
    if roll < 0.8 and len(data) > 18:
        mangled = bytearray(data)
        mangled[14] = (mangled[14] & 0x0F) | (rng.choice([0, 5, 7, 15]) << 4)      # wrong IP version
        return bytes(mangled)
    if data[12:14] == struct.pack('!H', ETH_P_IP) and len(data) >= 34:
        mangled = bytearray(data)
        mangled[16:18] = struct.pack('!H', rng.choice([0, 19, len(data), 65535]))   # lying total length
        return bytes(mangled)
    return data + bytes(8)


def pad_to_minimum(data):
    # Ethernet's 60-byte minimum: short frames carry padding the kernel trims off.
    return data + bytes(60 - len(data)) if len(data) < 60 else data


class Corpus:
    """Makes frames of each class; `router_mac` is r0's, `gen_mac` the generator's."""

    def __init__(self, rng, router_mac, gen_mac):
        self.rng, self.router_mac, self.gen_mac = rng, router_mac, gen_mac

    def ip(self, family, src, dst, odd=False, dst_mac=None):
        packet = (ipv4_packet if family == 4 else ipv6_packet)(self.rng, src, dst, odd)
        return frame(dst_mac or self.router_mac, self.gen_mac, family, packet)

    def family(self):
        return self.rng.choice([4, 6])

    # -- the classes: (name, weight, maker) ------------------------------------------------
    def forwarded(self):
        family = self.family()
        net = ROUTED4 if family == 4 else ROUTED6
        return self.ip(family, valid_source(self.rng, family), rand_addr(self.rng, net))

    def default_route(self):
        family = self.family()
        net = DEFAULT4 if family == 4 else DEFAULT6
        return self.ip(family, valid_source(self.rng, family), rand_addr(self.rng, net))

    def odd_headers(self):
        family = self.family()
        net = ROUTED4 if family == 4 else ROUTED6
        return self.ip(family, valid_source(self.rng, family), rand_addr(self.rng, net), odd=True)

    def mangled(self):
        data = self.odd_headers() if self.rng.random() < 0.5 else self.forwarded()
        return mangle(self.rng, data)

    def l2_other_host(self):
        return self._l2(OTHER_HOST_MAC)

    def l2_broadcast(self):
        return self._l2('ff:ff:ff:ff:ff:ff')

    def l2_multicast(self):
        return self._l2(None)

    def _l2(self, dst_mac):
        family = self.family()
        net = ROUTED4 if family == 4 else ROUTED6
        return self.ip(family, valid_source(self.rng, family), rand_addr(self.rng, net),
                       dst_mac=dst_mac or L2_MULTICAST[family])

    def special_destination4(self):
        return self.ip(4, valid_source(self.rng, 4, fresh=True), self.rng.choice(SPECIAL_DST4))

    def special_destination6(self):
        return self.ip(6, valid_source(self.rng, 6, fresh=True), self.rng.choice(SPECIAL_DST6))

    def router_destination(self):
        family = self.family()
        return self.ip(family, valid_source(self.rng, family),
                       self.rng.choice(ROUTER_OWN4 if family == 4 else ROUTER_OWN6))

    def own_source4(self):
        return self.ip(4, self.rng.choice(ROUTER_OWN4), rand_addr(self.rng, ROUTED4))

    def own_source6(self):
        return self.ip(6, self.rng.choice(ROUTER_OWN6), rand_addr(self.rng, ROUTED6))

    def broadcast_source4(self):
        return self.ip(4, self.rng.choice(BROADCAST_SRC4), rand_addr(self.rng, ROUTED4))

    def martian_source(self):
        if self.rng.random() < 0.5:
            return self.ip(4, self.rng.choice(MARTIAN_SRC4), rand_addr(self.rng, ROUTED4))
        return self.ip(6, self.rng.choice(REFUSED_SRC6), rand_addr(self.rng, ROUTED6))

    def rp_filter_spoofed(self):
        # Sources the router routes out of r1 (behind the sink, or only by the default
        # route) or not at all usefully (blackholed): strict rp_filter refuses them on r0.
        src = rand_addr(self.rng, self.rng.choice([ROUTED4, DEFAULT4, BLACKHOLE4, UNREACHABLE4]))
        return self.ip(4, src, rand_addr(self.rng, ROUTED4))

    def unreachable_route(self):
        family = self.family()
        net = (UNREACHABLE4, PROHIBIT4) if family == 4 else (UNREACHABLE6, PROHIBIT6)
        return self.ip(family, valid_source(self.rng, family, fresh=True), rand_addr(self.rng, self.rng.choice(net)))

    def blackhole_route(self):
        family = self.family()
        return self.ip(family, valid_source(self.rng, family),
                       rand_addr(self.rng, BLACKHOLE4 if family == 4 else BLACKHOLE6))

    def hairpin(self):
        family = self.family()
        net = BEHIND_GEN4 if family == 4 else BEHIND_GEN6
        return self.ip(family, valid_source(self.rng, family, fresh=True), rand_addr(self.rng, net))

    def arp(self):
        return mac_bytes('ff:ff:ff:ff:ff:ff') + mac_bytes(self.gen_mac) + struct.pack('!H', ETH_P_ARP) + \
            arp_request(self.gen_mac, GEN4, self.rng.choice(['10.230.1.1', '10.230.1.9']))


# Class, weight. Plenty of plain forwarding (what XDP must take over), and every class of
# frame Linux refuses or answers itself (what XDP must leave alone).
CLASSES = [
    ('forwarded', 30), ('default route', 8), ('odd headers', 14), ('mangled', 6),
    ('l2 other host', 3), ('l2 broadcast', 3), ('l2 multicast', 3),
    ('special destination4', 3), ('special destination6', 3), ('router destination', 3),
    ('own source4', 3), ('own source6', 2), ('broadcast source4', 3), ('martian source', 3),
    ('rp filter spoofed', 4), ('unreachable route', 4), ('blackhole route', 2), ('hairpin', 3), ('arp', 1),
]


def corpus(seed, count, router_mac, gen_mac):
    """[(class, frame)] of `count` frames."""
    rng = random.Random(seed)
    maker = Corpus(rng, router_mac, gen_mac)
    names = [name for name, _weight in CLASSES]
    weights = [weight for _name, weight in CLASSES]
    frames = []
    for _i in range(count):
        name = rng.choices(names, weights)[0]
        data = getattr(maker, name.replace(' ', '_'))()
        if rng.random() < 0.3:
            data = pad_to_minimum(data)
        frames.append((name, data))
    return frames
