# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] The local source table (XDPKIT_LOCAL_SOURCES in bpf/xdpkit.h): what
a router needs to check an IPv4 source as cheaply as Linux does with rp_filter 0.

fib_validate_source() (net/ipv4/fib_frontend.c) makes no reverse lookup when rp_filter is 0 and
no route or rule has a realm: with accept_local it accepts every source, else it refuses a
source that is one of the namespace's addresses (inet_lookup_ifaddr_rcu()), unless the
namespace has custom local routes (net->ipv4.fib_has_custom_local_routes: set when user space
adds a route of type local, never reset) or custom policy rules (fib4_has_custom_rules(): set
when a rule is added or deleted, never reset); then it makes the full check. The keeper reads
the namespace (addresses, routes, rules) and writes two pinned maps in the router's maps_dir:
`local_addrs` (address -> kind) and `local_state` (the reasons for a full check and a lease,
`vouched_until`, as the port entry's). The kernel's two flags cannot be read from user space:
the keeper sets them when it sees what sets them (route and rule events, and what a dump
shows), for as long as it follows the namespace. For what it did not see (a flag set before it
started), the table also holds the /32 destinations of every non-unicast route (subnet
broadcasts, local routes), the sources the full check refuses and the fast path accepts: the
router hands those to the kernel, so a missed flag costs a hand-over, never a wrong forward.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket
import struct

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute

ADDRS_NAME = 'local_addrs'
STATE_NAME = 'local_state'
# struct xdpkit_local_addr: kind; struct xdpkit_local_state: vouched_until, full_check, addresses,
# vouched_until_jiffies, filter[FILTER_WORDS]
FILTER_WORDS = 64
ADDR_FORMAT = '=I'
STATE_FORMAT = '=QIIQ%dQ' % FILTER_WORDS
ADDR_SIZE = struct.calcsize(ADDR_FORMAT)
STATE_SIZE = struct.calcsize(STATE_FORMAT)

LOCAL_ADDRESS, LOCAL_ROUTE = 1, 2
FULL_CUSTOM_LOCAL_ROUTES, FULL_CUSTOM_RULES, FULL_TCLASSID, FULL_WIDE_ROUTES = 1, 2, 4, 8
REASONS = ((FULL_CUSTOM_LOCAL_ROUTES, 'custom local routes'), (FULL_CUSTOM_RULES, 'custom policy rules'),
           (FULL_TCLASSID, 'routes or rules with realms'), (FULL_WIDE_ROUTES, 'non-unicast routes wider than /32'))
# Sticky: the kernel never resets these flags, so neither does the keeper (for a namespace it follows).
STICKY = FULL_CUSTOM_LOCAL_ROUTES | FULL_CUSTOM_RULES

RTN_UNICAST, RTN_LOCAL = 1, 2
RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW = 6, 7, 8, 9
# Route types whose lookup is an answer the full check accepts (a unicast route) or an error
# (fib_lookup() fails: `goto last_resort`, accepted with rp_filter 0).
ACCEPTED_TYPES = (RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW)
RTPROT_KERNEL = 2
RT_TABLE_LOCAL = 255
# Sources the router hands to the kernel before any source check (ipv4_never_unicast()):
# routes inside these change nothing.
NEVER_UNICAST = tuple(ipaddress.ip_network(n) for n in ('0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4',
                                                        '255.255.255.255/32'))
# fib4_rules_init()'s rules: (priority, table), action "to table", nothing to match.
DEFAULT_RULES = {(0, 255), (32766, 254), (32767, 253)}
# Netlink message types the keeper reads from its event sockets.
RTM_NEWROUTE, RTM_NEWRULE, RTM_DELRULE = 24, 32, 33


def kernel_made_local(route):
    """fib_magic()'s local routes for an address: protocol kernel, table local."""
    return route['type'] == RTN_LOCAL and route['proto'] == RTPROT_KERNEL and route['table'] == RT_TABLE_LOCAL


def _never_unicast(network):
    return any(network.subnet_of(special) for special in NEVER_UNICAST)


def wanted(addresses, routes, rules, sticky=0):
    """What the tables should hold, from a namespace's state as plain data:
    addresses: IPv4 addresses (IFA_LOCAL) as strings; routes: dicts with dst, dst_len, type,
    proto, table, realm (bool); rules: dicts with priority, table, action, selectors (bool:
    anything to match); sticky: full-check bits seen before. Returns {'entries': {address: kind},
    'full_check': bits}."""
    entries = {}
    full_check = sticky & STICKY
    for route in routes:
        if route.get('realm'):
            full_check |= FULL_TCLASSID
        if route['type'] == RTN_LOCAL and not kernel_made_local(route):
            full_check |= FULL_CUSTOM_LOCAL_ROUTES
        if route['type'] in ACCEPTED_TYPES:
            continue
        network = ipaddress.ip_network('%s/%d' % (route['dst'] or '0.0.0.0', route['dst_len']), strict=False)
        if _never_unicast(network):
            continue
        if route['dst_len'] == 32:
            entries[str(network.network_address)] = entries.get(str(network.network_address), 0) | LOCAL_ROUTE
        else:
            full_check |= FULL_WIDE_ROUTES
    for address in addresses:
        entries[address] = entries.get(address, 0) | LOCAL_ADDRESS
    for rule in rules:
        if rule.get('realm'):
            full_check |= FULL_TCLASSID
    if {(r['priority'], r['table']) for r in rules if r['action'] == 1 and not r['selectors']} != DEFAULT_RULES or \
            len(rules) != len(DEFAULT_RULES):
        full_check |= FULL_CUSTOM_RULES
    return {'entries': entries, 'full_check': full_check}


def merge(views):
    """One table for a router whose ports live in several namespaces: every namespace's
    entries and reasons (more hand-overs and full checks than one namespace needs, never fewer)."""
    entries, full_check = {}, 0
    for view in views:
        for address, kind in view['entries'].items():
            entries[address] = entries.get(address, 0) | kind
        full_check |= view['full_check']
    return {'entries': entries, 'full_check': full_check}


def describe(full_check):
    return ', '.join(text for bit, text in REASONS if full_check & bit) or 'none'


# -- reading a namespace -------------------------------------------------------------------------
_RULE_SELECTORS = ('FRA_SRC', 'FRA_DST', 'FRA_IIFNAME', 'FRA_OIFNAME', 'FRA_FWMARK', 'FRA_FWMASK', 'FRA_UID_RANGE',
                   'FRA_IP_PROTO', 'FRA_SPORT_RANGE', 'FRA_DPORT_RANGE', 'FRA_L3MDEV', 'FRA_TUN_ID', 'FRA_GOTO',
                   'FRA_SUPPRESS_IFGROUP', 'FRA_DSCP', 'FRA_FLOWLABEL')


def _route(msg):
    return {'dst': msg.get_attr('RTA_DST'), 'dst_len': msg['dst_len'], 'type': msg['type'], 'proto': msg['proto'],
            'table': msg.get_attr('RTA_TABLE') or msg['table'],
            'realm': bool(msg.get_attr('RTA_FLOW')) or any(
                nh.get_attr('RTA_FLOW') for nh in (msg.get_attr('RTA_MULTIPATH') or []))}


def _rule(msg):
    suppress = msg.get_attr('FRA_SUPPRESS_PREFIXLEN')
    return {'priority': msg.get_attr('FRA_PRIORITY') or 0, 'table': msg.get_attr('FRA_TABLE') or msg['table'],
            'action': msg['action'], 'realm': bool(msg.get_attr('FRA_FLOW')),
            'selectors': bool(msg['dst_len'] or msg['src_len'] or msg['tos'] or msg['flags'] or
                              any(msg.get_attr(name) is not None for name in _RULE_SELECTORS) or
                              (suppress is not None and suppress != 0xFFFFFFFF))}


def read_namespace(namespace, addresses=None):
    """wanted()'s inputs of a namespace: (addresses, routes, rules). `addresses` when the
    caller has dumped them already."""
    with iproute(namespace) as ipr:
        if addresses is None:
            addresses = [msg.get_attr('IFA_LOCAL') for msg in dump(ipr.get_addr, family=socket.AF_INET)]
        routes = [_route(msg) for msg in dump(ipr.get_routes, family=socket.AF_INET)]
        rules = [_rule(msg) for msg in dump(ipr.get_rules, family=socket.AF_INET)]
    return [a for a in addresses if a], routes, rules


def event_reasons(data):
    """The sticky full-check bits that the netlink messages in `data` (one recv() of an event
    socket) set in the kernel: a route of type local added by user space
    (`fib_has_custom_local_routes = true` in inet_rtm_newroute()), a rule added or deleted
    (`fib_has_custom_rules = true` in fib4_rule_configure() and fib4_rule_delete())."""
    bits, offset = 0, 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from('=IH', data, offset)
        if length < 16:
            break
        if kind == RTM_NEWROUTE and offset + 28 <= len(data):
            family, _dst_len, _src_len, _tos, table, proto, _scope, rtype = struct.unpack_from('=8B', data, offset + 16)
            if family == socket.AF_INET and not kernel_made_local({'type': rtype, 'proto': proto, 'table': table}) \
                    and rtype == RTN_LOCAL:
                bits |= FULL_CUSTOM_LOCAL_ROUTES
        elif kind in (RTM_NEWRULE, RTM_DELRULE) and offset + 17 <= len(data):
            if data[offset + 16] == socket.AF_INET:
                bits |= FULL_CUSTOM_RULES
        offset += (length + 3) & ~3
    return bits


# -- the maps ------------------------------------------------------------------------------------
def unpin_other_layout(directory):
    """A local state pinned by a release whose state had another layout: unpin both maps, so that
    the program loaded now gets today's (programs still on the old ones keep them until they are
    replaced, and make the full check meanwhile: nobody renews their lease). True when unpinned."""
    info = sysbpf.pinned_map_info(os.path.join(directory, STATE_NAME))
    if info is None or info['value_size'] == STATE_SIZE:
        return False
    for name in (STATE_NAME, ADDRS_NAME):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    return True


def tables_in(directory):
    """(local_addrs path, local_state path) pinned in a maps directory, or None (the router
    there has no local source table, or one of another layout)."""
    paths = (os.path.join(directory, ADDRS_NAME), os.path.join(directory, STATE_NAME))
    shapes = (('hash', 4, ADDR_SIZE), ('array', 4, STATE_SIZE))
    for path, (kind, key_size, value_size) in zip(paths, shapes):
        try:
            fd = sysbpf.obj_get(path)
        except OSError:
            return None
        try:
            info = sysbpf.map_info(fd)
        finally:
            os.close(fd)
        if (info['type'], info['key_size'], info['value_size']) != (kind, key_size, value_size):
            return None
    return paths


def filter_bit(key):
    """The filter bit of an address (4 bytes, network order) as xdpkit_local_filter_bit() computes
    it: the 32-bit word as the host's memory holds it, times a golden-ratio constant, top 12 bits."""
    return ((struct.unpack('=I', key)[0] * 2654435761) & 0xFFFFFFFF) >> 20


def filter_words(keys):
    words = [0] * FILTER_WORDS
    for key in keys:
        bit = filter_bit(key)
        words[bit >> 6] |= 1 << (bit & 63)
    return words


def _key(address):
    return socket.inet_aton(address)


def read(paths):
    """{'entries': {address: kind}, 'full_check', 'vouched_until', 'addresses'} of the pinned tables."""
    addrs_path, state_path = paths
    fd = sysbpf.obj_get(addrs_path)
    try:
        entries = {}
        for key in sysbpf.map_keys(fd, 4):
            raw = sysbpf.map_lookup(fd, key, ADDR_SIZE)
            if raw is not None:
                entries[socket.inet_ntoa(key)] = struct.unpack(ADDR_FORMAT, raw)[0]
    finally:
        os.close(fd)
    fd = sysbpf.obj_get(state_path)
    try:
        raw = sysbpf.map_lookup(fd, struct.pack('=I', 0), STATE_SIZE)
    finally:
        os.close(fd)
    vouched_until, full_check, count, vouched_until_jiffies = struct.unpack(STATE_FORMAT, raw)[:4]
    return {'entries': entries, 'full_check': full_check, 'vouched_until': vouched_until, 'addresses': count,
            'vouched_until_jiffies': vouched_until_jiffies}


def write(paths, table, vouched_until, vouched_until_jiffies=0):
    """Bring the pinned tables to `table` (wanted()), then vouch for them until `vouched_until`
    (CLOCK_MONOTONIC ns; the same time in jiffies for routers on the jiffies clock).
    New entries go in before old ones go out, so the table is never short of an address the
    namespace has; the state (and its lease) comes last. Raises OSError when the table is full:
    then the state is written without a lease, and the router makes the full check."""
    addrs_path, state_path = paths
    fd = sysbpf.obj_get(addrs_path)
    try:
        present = {}
        for key in sysbpf.map_keys(fd, 4):
            raw = sysbpf.map_lookup(fd, key, ADDR_SIZE)
            if raw is not None:
                present[key] = struct.unpack(ADDR_FORMAT, raw)[0]
        wanted_keys = {_key(address): kind for address, kind in table['entries'].items()}
        if any(key not in present for key in wanted_keys):
            # The filter first, with the bits of the addresses about to go in: no bit is ever
            # clear for an address the table holds, whatever the router reads meanwhile.
            _widen_filter(state_path, filter_words(set(present) | set(wanted_keys)))
        try:
            for key, kind in wanted_keys.items():
                if present.get(key) != kind:
                    sysbpf.map_update(fd, key, struct.pack(ADDR_FORMAT, kind))
        except OSError:
            vouched_until = vouched_until_jiffies = 0
            raise
        finally:
            if vouched_until:
                for key in present:
                    if key not in wanted_keys:
                        sysbpf.map_delete(fd, key)
            # Without a lease the old entries stay: so do their bits.
            kept = wanted_keys if vouched_until else set(present) | set(wanted_keys)
            _write_state(state_path, table['full_check'], len(wanted_keys), vouched_until, vouched_until_jiffies,
                         filter_words(kept))
    finally:
        os.close(fd)


def _write_state(state_path, full_check, count, vouched_until, vouched_until_jiffies, words):
    fd = sysbpf.obj_get(state_path)
    try:
        sysbpf.map_update(fd, struct.pack('=I', 0),
                          struct.pack(STATE_FORMAT, vouched_until, full_check, count, vouched_until_jiffies, *words))
    finally:
        os.close(fd)


def _widen_filter(state_path, words):
    """OR `words` into the pinned state's filter, leaving the rest (the lease among it) as it is."""
    fd = sysbpf.obj_get(state_path)
    try:
        raw = sysbpf.map_lookup(fd, struct.pack('=I', 0), STATE_SIZE)
        values = list(struct.unpack(STATE_FORMAT, raw))
        values[4:] = [old | new for old, new in zip(values[4:], words)]
        sysbpf.map_update(fd, struct.pack('=I', 0), struct.pack(STATE_FORMAT, *values))
    finally:
        os.close(fd)
