# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] What netfilter does in a namespace that an XDP forwarding program would skip.

A frame redirected by XDP never reaches the prerouting, forward or postrouting hooks (nor a
netdev ingress or egress chain): its filter, NAT and conntrack rules silently stop applying.
This module finds the chains that would matter, over netlink for nftables (iptables-nft rules
are nftables chains) and through the legacy x_tables socket options for iptables-legacy, in
the tables that already exist (reading never creates one).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import socket
import struct

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, describe_ns, libc
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns

NFPROTO_NAMES = {1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6'}
_INET_HOOKS = {0: 'prerouting', 2: 'forward', 4: 'postrouting'}
# The hooks a redirected frame skips, by nftables family.
BYPASSED_HOOKS = {
    'ip': _INET_HOOKS,
    'ip6': _INET_HOOKS,
    'inet': {0: 'prerouting', 2: 'forward', 4: 'postrouting', 5: 'ingress'},
    'netdev': {0: 'ingress', 1: 'egress'},
}
NF_DROP = 0

# Legacy x_tables: IPT_SO_GET_INFO / IPT_SO_GET_ENTRIES (and the ip6 ones, same numbers).
SO_GET_INFO = 64
SO_GET_ENTRIES = 65
GETINFO_FORMAT = '=32sI5I5III'
GETINFO_SIZE = struct.calcsize(GETINFO_FORMAT)
# family -> (tables file, socket level, target_offset within an entry, entry table offset)
LEGACY = {
    'ip': ('/proc/thread-self/net/ip_tables_names', socket.IPPROTO_IP, 88, 40),
    'ip6': ('/proc/thread-self/net/ip6_tables_names', socket.IPPROTO_IPV6, 140, 40),
}
LEGACY_HOOKS = {0: 'PREROUTING', 2: 'FORWARD', 4: 'POSTROUTING'}
STANDARD_DROP = -NF_DROP - 1


def bypassed_nftables_chains(chains, rule_counts):
    """The base chains an XDP redirect would skip that do something: rules, or a drop policy.

    `chains`: dicts with family, table, name, hook (number or None) and policy;
    `rule_counts`: (family, table, chain) -> number of rules. Pure, for the unit tests.
    """
    found = []
    for chain in chains:
        hooks = BYPASSED_HOOKS.get(chain['family'], {})
        if chain['hook'] not in hooks:
            continue
        rules = rule_counts.get((chain['family'], chain['table'], chain['name']), 0)
        drops = chain['policy'] == NF_DROP
        if rules or drops:
            found.append({'source': 'nftables', 'family': chain['family'], 'table': chain['table'],
                          'chain': chain['name'], 'hook': hooks[chain['hook']], 'rules': rules,
                          'policy': 'drop' if drops else 'accept'})
    return found


def _nftables_state():
    from pyroute2.nftables.main import NFTables

    nft = NFTables(nfgen_family=0)  # NFPROTO_UNSPEC: every family
    try:
        chains = []
        for msg in nft.get_chains():
            hook = msg.get_attr('NFTA_CHAIN_HOOK')
            chains.append({'family': NFPROTO_NAMES.get(msg['nfgen_family'], str(msg['nfgen_family'])),
                           'table': msg.get_attr('NFTA_CHAIN_TABLE'), 'name': msg.get_attr('NFTA_CHAIN_NAME'),
                           'hook': hook.get_attr('NFTA_HOOK_HOOKNUM') if hook else None,
                           'policy': msg.get_attr('NFTA_CHAIN_POLICY')})
        counts = {}
        for msg in nft.get_rules():
            key = (NFPROTO_NAMES.get(msg['nfgen_family'], str(msg['nfgen_family'])),
                   msg.get_attr('NFTA_RULE_TABLE'), msg.get_attr('NFTA_RULE_CHAIN'))
            counts[key] = counts.get(key, 0) + 1
    finally:
        nft.close()
    return chains, counts


def legacy_hook_state(info, entries, target_offset_at):
    """{hook name: (rules, policy)} of a legacy table from its GET_INFO and GET_ENTRIES bytes."""
    fields = struct.unpack(GETINFO_FORMAT, info[:GETINFO_SIZE])
    valid_hooks, hook_entry, underflow = fields[1], fields[2:7], fields[7:12]
    state = {}
    for hook, name in LEGACY_HOOKS.items():
        if not valid_hooks & (1 << hook):
            continue
        policy_at = underflow[hook]
        target_offset, = struct.unpack_from('=H', entries, policy_at + target_offset_at)
        verdict, = struct.unpack_from('=i', entries, policy_at + target_offset + 32)
        state[name] = (hook_entry[hook] != underflow[hook], 'drop' if verdict == STANDARD_DROP else 'accept')
    return state


def _getsockopt(sock, level, option, buf):
    size = ctypes.c_uint(len(buf))
    if libc().getsockopt(sock.fileno(), level, option, buf, ctypes.byref(size)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, 'getsockopt: %s' % err)
    return buf.raw[:size.value]


def _legacy_state():
    found = []
    for family, (names_file, level, target_offset_at, table_at) in LEGACY.items():
        try:
            with open(names_file) as handle:
                tables = handle.read().split()
        except OSError:
            continue  # no legacy x_tables in this kernel, or none instantiated here
        if not tables:
            continue
        sock_family = socket.AF_INET if family == 'ip' else socket.AF_INET6
        with socket.socket(sock_family, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
            for table in tables:
                request = ctypes.create_string_buffer(struct.pack('=32s', table.encode()), GETINFO_SIZE)
                info = _getsockopt(sock, level, SO_GET_INFO, request)
                size = struct.unpack_from('=I', info, GETINFO_SIZE - 4)[0]
                request = ctypes.create_string_buffer(struct.pack('=32sI', table.encode(), size), table_at + size)
                entries = _getsockopt(sock, level, SO_GET_ENTRIES, request)[table_at:]
                for hook, (rules, policy) in legacy_hook_state(info, entries, target_offset_at).items():
                    if rules or policy == 'drop':
                        found.append({'source': 'iptables-legacy', 'family': family, 'table': table,
                                      'chain': hook, 'hook': hook.lower(), 'rules': rules, 'policy': policy})
    return found


def bypassed_chains(namespace):
    """Every netfilter chain of `namespace` that XDP forwarding would skip and that matters."""
    with in_netns(namespace):
        try:
            chains, counts = _nftables_state()
            found = bypassed_nftables_chains(chains, counts)
            found += _legacy_state()
        except (OSError, ImportError) as exc:
            raise XdpkitError("reading the netfilter rules of %s failed (%s); if you know that XDP may skip them, "
                              "say netfilter: bypass" % (describe_ns(namespace), exc))
    return found


def describe_chain(chain):
    what = []
    if chain['rules'] is True:  # legacy tables: rules, not counted
        what.append('rules')
    elif chain['rules']:
        what.append('%d rule%s' % (chain['rules'], '' if chain['rules'] == 1 else 's'))
    if chain['policy'] == 'drop':
        what.append('policy drop')
    return '%s %s %s chain %s (%s hook: %s)' % (
        chain['source'], chain['family'], chain['table'], chain['chain'], chain['hook'], ', '.join(what))


def refusal(namespace, interface, program, chains):
    return XdpkitError(
        "refusing to attach %s to '%s' in %s: XDP forwarding runs before netfilter, so it would silently skip "
        "these chains: %s. Either move that policy somewhere XDP does not skip it (a host firewall at the edge, "
        "or the input/output hooks), or accept that forwarded traffic is no longer filtered, NATed or tracked "
        "here and say so with netfilter: bypass" % (
            program, interface, describe_ns(namespace), '; '.join(describe_chain(c) for c in chains)))
