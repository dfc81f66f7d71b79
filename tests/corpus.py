"""A seeded corpus of frames for the differential test: valid, odd and hostile IPv4/IPv6.

Every frame is addressed to the router's ingress MAC. Destinations stay inside the test's
own prefixes (routed to the sink, blackholed, unroutable, the router's own addresses) or are
special addresses the router must not forward; the router namespace has no default route,
so nothing can leave the test bed whatever the corpus holds.
"""

import ipaddress
import random
import struct

from packets import ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, arp_request, checksum, ipv4, ipv6, mac_bytes, udp

SINK4 = '10.230.2.2'
ROUTED4 = ipaddress.ip_network('10.231.0.0/16')       # via the sink
BLACKHOLE4 = ipaddress.ip_network('10.232.0.0/16')
UNROUTED4 = ipaddress.ip_network('10.233.0.0/16')
ROUTED6 = ipaddress.ip_network('fd31::/32')
BLACKHOLE6 = ipaddress.ip_network('fd32::/32')
UNROUTED6 = ipaddress.ip_network('fd33::/32')
SPECIAL4 = ['127.0.0.1', '224.0.0.5', '255.255.255.255', '0.0.0.0', '10.230.1.255', '10.230.1.1', '10.230.2.1',
            SINK4, '240.0.0.1']
SPECIAL6 = ['::1', 'ff02::1', 'ff05::2', '::', 'fd30:1::1', 'fd30:2::1', 'fd30:2::2', 'fe80::1', '::ffff:10.231.0.1']
SOURCES4 = ['10.230.1.2', '10.230.1.77', '192.0.2.7', '127.0.0.9', '0.0.0.1', '224.1.2.3', '255.255.255.255',
            'routed', '240.0.0.9']
SOURCES6 = ['fd30:1::2', 'fd30:1::99', '2001:db8::5', '::1', 'ff02::3', '::', 'fe80::99', '::ffff:192.0.2.1',
            'routed']


def rand_addr(rng, network):
    return str(network[rng.randrange(1, min(network.num_addresses - 1, 1 << 24))])


def dest4(rng):
    roll = rng.random()
    if roll < 0.6:
        return rand_addr(rng, ROUTED4)
    if roll < 0.7:
        return rand_addr(rng, BLACKHOLE4)
    if roll < 0.8:
        return rand_addr(rng, UNROUTED4)
    return rng.choice(SPECIAL4)


def dest6(rng):
    roll = rng.random()
    if roll < 0.6:
        return rand_addr(rng, ROUTED6)
    if roll < 0.7:
        return rand_addr(rng, BLACKHOLE6)
    if roll < 0.8:
        return rand_addr(rng, UNROUTED6)
    return rng.choice(SPECIAL6)


def source4(rng):
    # A source behind the sink gets the router's ICMP errors delivered to the sink, where
    # they are compared too. The kernel rate-limits errors per source (ip_error(), 5 in a
    # burst, not tunable per namespace), so each such frame gets a source of its own.
    choice = rng.choice(SOURCES4) if rng.random() < 0.3 else '10.230.1.2'
    return rand_addr(rng, ROUTED4) if choice == 'routed' else choice


def source6(rng):
    choice = rng.choice(SOURCES6) if rng.random() < 0.3 else 'fd30:1::2'
    return rand_addr(rng, ROUTED6) if choice == 'routed' else choice


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


def ipv4_frame(rng, dst_mac, src_mac):
    proto = rng.choice([17, 17, 6, 1])
    size = rng.choice([0, 1, 18, 64, 200, 1000, 1360, 1380, 1430, 1472])
    ttl = rng.choice([0, 1, 2, 64, 255, 255, 64, 64])
    options = rng.choice([b''] * 8 + [b'\x01\x01\x01\x00', b'\x07\x07\x04' + bytes(4) + b'\x00'])
    flags_frag = rng.choice([0x4000, 0x4000, 0x0000, 0x2000, 0x2000 | 37, 185, 0x4000 | 8])
    packet = ipv4(source4(rng), dest4(rng), l4(rng, proto, size), ttl=ttl, proto=proto, tos=rng.choice([0, 0xb8]),
                  ident=rng.getrandbits(16), flags_frag=flags_frag, options=options,
                  bad_checksum=rng.random() < 0.04)
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack('!H', ETH_P_IP) + packet


def ipv6_frame(rng, dst_mac, src_mac):
    proto = rng.choice([17, 17, 6, 58])
    size = rng.choice([0, 1, 18, 64, 200, 1000, 1340, 1352, 1400, 1440])
    body = l4(rng, 1 if proto == 58 else proto, size)
    if proto == 58:
        body = struct.pack('!BB', 128, 0) + body[2:]  # ICMPv6 echo request (checksum left wrong: nobody checks it)
    ext = rng.choice([None] * 6 + [0, 43, 44, 60, 59])
    nexthdr = proto
    if ext is not None:
        if ext == 59:
            body, nexthdr = b'', 59
        elif ext == 44:
            body, nexthdr = struct.pack('!BBHI', proto, 0, rng.choice([0, 1, 8 << 3]), rng.getrandbits(32)) + body, 44
        elif ext == 43:
            body, nexthdr = struct.pack('!BBBB', proto, 2, 0, 1) + bytes(4) + ipaddress.ip_address(
                rand_addr(rng, ROUTED6)).packed + body, 43
        else:
            body, nexthdr = struct.pack('!BB', proto, 0) + b'\x01\x04' + bytes(4) + body, ext
    packet = ipv6(source6(rng), dest6(rng), body, hlim=rng.choice([0, 1, 2, 64, 255, 64, 64]), nexthdr=nexthdr,
                  flow=rng.getrandbits(20))
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack('!H', ETH_P_IPV6) + packet


def mangle(rng, frame):
    """Runts, padding, trailing bytes, oversize, VLAN tags, lying lengths, wrong versions."""
    roll = rng.random()
    if roll < 0.05:
        return frame[:rng.randrange(14, min(len(frame), 54))]                       # runt / truncated
    if roll < 0.12:
        return frame + bytes(rng.getrandbits(8) for _i in range(rng.randrange(1, 40)))   # trailing bytes
    if roll < 0.14:
        return frame + bytes(rng.randrange(1500, 3000))                              # oversized
    if roll < 0.18:
        return frame[:12] + struct.pack('!HH', ETH_P_8021Q, rng.randrange(1, 4094)) + frame[12:]  # VLAN tag
    if roll < 0.21 and len(frame) > 18:
        mangled = bytearray(frame)
        mangled[14] = (mangled[14] & 0x0F) | (rng.choice([0, 5, 7, 15]) << 4)        # wrong IP version
        return bytes(mangled)
    if roll < 0.24 and frame[12:14] == struct.pack('!H', ETH_P_IP) and len(frame) >= 34:
        mangled = bytearray(frame)
        mangled[16:18] = struct.pack('!H', rng.choice([0, 19, len(frame), 65535]))     # lying total length
        return bytes(mangled)
    return frame


def pad_to_minimum(frame):
    # Ethernet's 60-byte minimum: short frames carry padding the kernel trims off.
    return frame + bytes(60 - len(frame)) if len(frame) < 60 else frame


def corpus(seed, count, dst_mac, src_mac):
    rng = random.Random(seed)
    frames = []
    for _i in range(count):
        roll = rng.random()
        if roll < 0.47:
            frame = ipv4_frame(rng, dst_mac, src_mac)
        elif roll < 0.94:
            frame = ipv6_frame(rng, dst_mac, src_mac)
        else:
            frame = mac_bytes('ff:ff:ff:ff:ff:ff') + mac_bytes(src_mac) + struct.pack('!H', ETH_P_ARP) + \
                arp_request(src_mac, '10.230.1.2', rng.choice(['10.230.1.1', '10.230.1.9']))
        frame = mangle(rng, frame)
        if rng.random() < 0.5:
            frame = pad_to_minimum(frame)
        frames.append(frame)
    return frames
