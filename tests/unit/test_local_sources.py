"""The local source table as data (pure functions): what fib_validate_source()'s fast path needs
from a namespace, which of the kernel's conditions make the full check, and the events that set
the kernel's sticky flags."""

import socket
import struct

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_source, _lease
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _local_sources as ls

DEFAULT_RULES = [{'priority': p, 'table': t, 'action': 1, 'selectors': False, 'realm': False}
                 for p, t in ((0, 255), (32766, 254), (32767, 253))]


def route(dst, dst_len, rtype, proto=ls.RTPROT_KERNEL, table=ls.RT_TABLE_LOCAL, realm=False):
    return {'dst': dst, 'dst_len': dst_len, 'type': rtype, 'proto': proto, 'table': table, 'realm': realm}


# What a namespace with lo up and 10.1.0.1/24 holds (ip route show table all).
KERNEL_ROUTES = [route('127.0.0.0', 8, ls.RTN_LOCAL), route('127.0.0.1', 32, ls.RTN_LOCAL),
                 route('127.255.255.255', 32, 3), route('10.1.0.1', 32, ls.RTN_LOCAL),
                 route('10.1.0.255', 32, 3), route('10.1.0.0', 24, ls.RTN_UNICAST, table=254),
                 route('10.9.0.0', 16, ls.RTN_BLACKHOLE, proto=4, table=254),
                 route(None, 0, ls.RTN_UNICAST, proto=4, table=254)]


def test_a_plain_namespace_takes_the_fast_path_with_its_addresses_and_broadcasts():
    table = ls.wanted(['127.0.0.1', '10.1.0.1'], KERNEL_ROUTES, DEFAULT_RULES)
    assert table == {'entries': {'127.0.0.1': ls.LOCAL_ADDRESS, '10.1.0.1': ls.LOCAL_ADDRESS | ls.LOCAL_ROUTE,
                                 '10.1.0.255': ls.LOCAL_ROUTE}, 'full_check': 0}


def test_what_makes_linux_s_full_check_makes_the_router_s():
    custom_local = route('10.7.7.7', 32, ls.RTN_LOCAL, proto=3)
    assert ls.wanted([], KERNEL_ROUTES + [custom_local], DEFAULT_RULES)['full_check'] == ls.FULL_CUSTOM_LOCAL_ROUTES
    in_main = route('10.7.7.7', 32, ls.RTN_LOCAL, table=254)
    assert ls.wanted([], KERNEL_ROUTES + [in_main], DEFAULT_RULES)['full_check'] == ls.FULL_CUSTOM_LOCAL_ROUTES
    rule = dict(DEFAULT_RULES[1], priority=100, table=100, selectors=True)
    assert ls.wanted([], KERNEL_ROUTES, DEFAULT_RULES + [rule])['full_check'] == ls.FULL_CUSTOM_RULES
    assert ls.wanted([], KERNEL_ROUTES, DEFAULT_RULES[1:])['full_check'] == ls.FULL_CUSTOM_RULES
    realm = route('10.5.0.0', 16, ls.RTN_UNICAST, proto=4, table=254, realm=True)
    assert ls.wanted([], KERNEL_ROUTES + [realm], DEFAULT_RULES)['full_check'] == ls.FULL_TCLASSID
    wide = route('10.6.0.0', 16, 3, proto=4, table=254)
    assert ls.wanted([], KERNEL_ROUTES + [wide], DEFAULT_RULES)['full_check'] == ls.FULL_WIDE_ROUTES
    # Never reset, as the kernel's: the sticky bits survive the route's removal.
    assert ls.wanted([], KERNEL_ROUTES, DEFAULT_RULES, sticky=ls.STICKY | ls.FULL_WIDE_ROUTES)['full_check'] == \
        ls.STICKY


def test_a_router_on_several_namespaces_gets_every_one_s_entries_and_reasons():
    merged = ls.merge([{'entries': {'10.1.0.1': 1}, 'full_check': 0},
                       {'entries': {'10.1.0.1': 2, '10.2.0.1': 1}, 'full_check': ls.FULL_CUSTOM_RULES}])
    assert merged == {'entries': {'10.1.0.1': 3, '10.2.0.1': 1}, 'full_check': ls.FULL_CUSTOM_RULES}


def nlmsg(kind, body):
    return struct.pack('=IHHII', 16 + len(body), kind, 0, 0, 0) + body + b'\0' * (-len(body) % 4)


def rtmsg(rtype, proto, table, family=socket.AF_INET):
    return struct.pack('=8BI', family, 32, 0, 0, table, proto, 254, rtype, 0)


def test_events_that_set_the_kernel_s_flags_set_the_table_s():
    user_local = nlmsg(ls.RTM_NEWROUTE, rtmsg(ls.RTN_LOCAL, 3, 255))
    kernel_local = nlmsg(ls.RTM_NEWROUTE, rtmsg(ls.RTN_LOCAL, ls.RTPROT_KERNEL, 255))
    unicast = nlmsg(ls.RTM_NEWROUTE, rtmsg(ls.RTN_UNICAST, 3, 254))
    ipv6_local = nlmsg(ls.RTM_NEWROUTE, rtmsg(ls.RTN_LOCAL, 3, 255, family=socket.AF_INET6))
    rule_del = nlmsg(ls.RTM_DELRULE, struct.pack('=4B', socket.AF_INET, 0, 0, 0))
    assert ls.event_reasons(kernel_local + unicast + ipv6_local) == 0
    assert ls.event_reasons(unicast + user_local) == ls.FULL_CUSTOM_LOCAL_ROUTES
    assert ls.event_reasons(rule_del) == ls.FULL_CUSTOM_RULES


def test_the_local_tables_are_no_port_entry_and_are_declared_only_where_used():
    for info in ({'type': 'hash', 'value_size': ls.ADDR_SIZE, 'max_entries': 4096, 'name': 'local_addrs'},
                 {'type': 'array', 'value_size': ls.STATE_SIZE, 'max_entries': 1, 'name': 'local_state'}):
        assert not _lease.is_port_entry(dict(info, key_size=4))
    assert ls.ADDR_SIZE == 4 and ls.STATE_SIZE == 24 + 8 * ls.FILTER_WORDS
    used = '#include "xdpkit.h"\nXDPKIT_PORT_ENTRY();\nXDPKIT_LOCAL_SOURCES(4096);\n'
    header = '#define XDPKIT_LOCAL_SOURCES(_m) BPF_TABLE_PINNED(..., XDPKIT_MAPS_DIR "/" "local_addrs")\n'
    assert ('maps_dir', 'local_addrs') in _bpf_source.pin_declarations(header + used)
    assert ('maps_dir', 'local_addrs') not in _bpf_source.pin_declarations(header + 'XDPKIT_PORT_ENTRY();\n')
