"""Hand-built frames for BPF_PROG_RUN tests: exact bytes, no packet library in between."""

import ipaddress
import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(':', ''))


def mac_text(raw):
    return ':'.join('%02x' % b for b in raw)


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(dst, src, ethertype, payload):
    return mac_bytes(dst) + mac_bytes(src) + struct.pack('!H', ethertype) + payload


def vlan(dst, src, vid, ethertype, payload):
    return mac_bytes(dst) + mac_bytes(src) + struct.pack('!HHH', ETH_P_8021Q, vid, ethertype) + payload


def pseudo_header(src, dst, proto, length):
    """What a transport checksum covers before its header: the IPv4 pseudo-header (RFC 768) or
    the IPv6 one (RFC 8200 8.1), by the addresses' family."""
    src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if src.version == 4:
        return src.packed + dst.packed + struct.pack('!BBH', 0, proto, length)
    return src.packed + dst.packed + struct.pack('!I3xB', length, proto)


def udp(sport, dport, payload, src=None, dst=None):
    """A UDP datagram. Given the addresses it travels between, it carries its checksum
    (mandatory over IPv6: receivers drop a zero one, RFC 8200 8.1); without, checksum 0 (IPv4's
    "none"). The router must not touch it either way."""
    header = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0)
    if src is None:
        return header + payload
    csum = checksum(pseudo_header(src, dst, 17, len(header) + len(payload)) + header + payload) or 0xFFFF
    return header[:6] + struct.pack('!H', csum) + payload


def ipv4(src, dst, payload, ttl=64, proto=17, tos=0, ident=1, flags_frag=0x4000, options=b'', bad_checksum=False):
    ihl = 5 + len(options) // 4
    header = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, tos, ihl * 4 + len(payload), ident, flags_frag, ttl, proto,
                         0, ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + options
    csum = checksum(header) ^ (0x1111 if bad_checksum else 0)
    return header[:10] + struct.pack('!H', csum) + header[12:] + payload


def icmp_echo_request(ident, seq, payload):
    body = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + payload
    return body[:2] + struct.pack('!H', checksum(body)) + body[4:]


def ipv6(src, dst, payload, hlim=64, nexthdr=17, flow=0x12345):
    return struct.pack('!IHBB16s16s', (6 << 28) | flow, len(payload), nexthdr, hlim,
                       ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + payload


def generator_defines(src_mac, dst_mac, src, dst):
    """The defines of bpf/xdp_trafficgen.c for UDP frames from `src` to `dst` (both IPv4 or both
    IPv6): MACs, and addresses as host-order 32-bit words."""
    src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    defines = {'GEN_SRC_MAC': src_mac, 'GEN_DST_MAC': dst_mac, 'GEN_IPV6': int(src.version == 6)}
    if src.version == 4:
        return dict(defines, GEN_SRC_IP4=int(src), GEN_DST_IP4=int(dst))
    for name, addr in (('SRC', src), ('DST', dst)):
        for i, word in enumerate(struct.unpack('!4I', addr.packed)):
            defines['GEN_%s_IP6_%d' % (name, i)] = word
    return defines


def arp_request(src_mac, src_ip, dst_ip):
    return struct.pack('!HHBBH6s4s6s4s', 1, ETH_P_IP, 6, 4, 1, mac_bytes(src_mac),
                       ipaddress.ip_address(src_ip).packed, b'\0' * 6, ipaddress.ip_address(dst_ip).packed)


def ipv4_header_ok(frame, offset=14):
    ihl = (frame[offset] & 0x0F) * 4
    return checksum(frame[offset:offset + ihl]) == 0
