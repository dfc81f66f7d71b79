# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] Why a forwarding program did not redirect a frame: the reasons its
`xdp_reasons_map` counts (bpf/xdpkit_reasons.h, in the same order: a unit test compares them),
what each means and what to do about it, and the sums operators read from them (the leading
reasons, the acceleration share). Pure: _xdp_stats and _metrics read the counters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

REASONS_MAP_NAME = 'xdp_reasons_map'

# (name, what it means, whether the kernel forwards such a frame itself). Index = the C enum's
# value; index 0 is XDPKIT_REDIRECTED, which is no reason and never counted.
REASONS = (
    ('redirected', 'redirected by XDP (counted by its action only)', False),
    ('not_ip', 'not IPv4 or IPv6 (ARP, VLAN-tagged, ...): the kernel\'s', False),
    ('malformed', 'cut short, or a bad version, length or header checksum: the kernel drops it', False),
    ('port_unknown', 'nobody wrote the port entry of the router on this port (or the keeper cleared it: the '
                     'program was attached nowhere): attach the router with xdp_program again', True),
    ('not_vouched', 'the lease on the port\'s cached settings ran out: start the keeper (xdp_program '
                    'keeper=start or the xdpkit-keeper service)', True),
    ('not_our_mac', 'addressed to another MAC (other host, broadcast, multicast): not for this router', False),
    ('martian_destination', 'a destination never forwarded as unicast (0/8, 127/8, multicast, link-local, '
                            'broadcast)', False),
    ('martian_source', 'a source the kernel refuses before any lookup', False),
    ('local_source', 'the source is one of the router\'s own (or a broadcast) addresses: spoofed, or a loop', False),
    ('reverse_path', 'rp_filter: no route back to the source (strict: not through the ingress port)', False),
    ('ttl', 'TTL / hop limit <= 1: the kernel sends time exceeded (a loop, or traceroute)', False),
    ('options', 'IPv4 options or IPv6 hop-by-hop options other than padding: the kernel processes them', True),
    ('icmp_error', 'an ICMP error: the kernel picks its path (over multipath it hashes the quoted header)', True),
    ('no_route', 'no route to the destination (IPv6: or a destination of the router itself)', False),
    ('local_destination', 'for the router itself (one of its IPv4 addresses or broadcasts)', False),
    ('unreachable', 'an unreachable route: the kernel sends the ICMP error', False),
    ('prohibit', 'a prohibit route: the kernel sends the ICMP error', False),
    ('blackhole', 'a blackhole route: dropped, as the kernel would', False),
    ('forwarding_disabled', 'forwarding is off on the ingress port: set the forwarding sysctls', False),
    ('unsupported_route', 'a route with encapsulation (lightweight tunnel): the kernel\'s', True),
    ('no_neighbour', 'the next hop\'s MAC is not known yet: the kernel resolves it and forwards', True),
    ('fragmentation_needed', 'larger than the egress MTU: the kernel fragments or sends "fragmentation needed"',
     False),
    ('hairpin', 'the next hop is back out of the ingress port: the kernel forwards it and sends a redirect', True),
    ('egress_without_router', 'the egress port has no router attached: attach it there too (router_interfaces)',
     True),
    ('lookup_failed', 'bpf_fib_lookup() gave an answer this program does not know', False),
    ('unknown_source_mac', 'no entry for the source MAC in the map program\'s mac_table', False),
    ('no_egress_port', 'no egress for the ingress port in the map program\'s tx_ports', False),
    ('redirect_refused', 'bpf_redirect() refused the egress (hardcoded program)', False),
)
REASON_NAMES = tuple(name for name, _text, _forwards in REASONS)
# Frames the kernel goes on to forward after the program handed them over: per port, the
# kernel keeps no count of what it forwarded by ingress port (IPv4 none at all), so the port's
# share counts these as the kernel's forwards.
KERNEL_FORWARDS = frozenset(name for name, _text, forwards in REASONS if forwards)


def describe(name):
    return dict((reason, text) for reason, text, _forwards in REASONS).get(name, name)


def difference(after, before):
    """{reason: {'packets', 'bytes'}} risen between two reads (a reason missing before counts from 0)."""
    before = before or {}
    return {name: {key: value - before.get(name, {}).get(key, 0) for key, value in counts.items()}
            for name, counts in (after or {}).items()}


def total(reason_counts):
    """The reason counters of several ports (each {reason: {'packets', 'bytes'}}, None for a port
    whose program counts none) summed into one."""
    summed = {}
    for counts in reason_counts:
        for name, values in (counts or {}).items():
            into = summed.setdefault(name, {'packets': 0, 'bytes': 0})
            into['packets'] += values['packets']
            into['bytes'] += values['bytes']
    return summed


def leading(reasons, count=3):
    """The `count` reasons with the most packets, most first, as [(name, packets)], zeros left out."""
    ranked = sorted(((counts['packets'], name) for name, counts in (reasons or {}).items() if counts['packets']),
                    key=lambda item: (-item[0], item[1]))
    return [(name, packets) for packets, name in ranked[:count]]


def leading_described(reasons, count=3):
    """leading() as [{'reason', 'packets', 'means'}], as the xdp_stats module and the leading_reasons filter
    return it."""
    return [{'reason': name, 'packets': packets, 'means': describe(name)} for name, packets in leading(reasons, count)]


def share(redirected, kernel_forwarded):
    """Frames XDP redirected over all frames forwarded; None when nothing was forwarded."""
    total = redirected + kernel_forwarded
    return None if total <= 0 else redirected / float(total)


def port_share(redirected, reasons):
    """The acceleration share of one ingress port: its redirected frames over those plus the
    frames it handed to the kernel for a reason after which the kernel forwards them
    (KERNEL_FORWARDS)."""
    handed = sum(counts['packets'] for name, counts in (reasons or {}).items() if name in KERNEL_FORWARDS)
    return share(redirected, handed)
