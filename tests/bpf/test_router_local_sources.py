"""xdp_router's source check where Linux makes its fast one (fib_validate_source() with
rp_filter 0): the local source table (local_addrs, local_state) decides, as
inet_lookup_ifaddr_rcu() does, and the full reverse lookup runs where Linux's full check does
(custom local routes, custom rules, realms, rp_filter 1 or 2) and whenever the table's lease
ran out. The tests stand in for the keeper and write the tables themselves.

An empty table vouched for is the tell: the fast path then forwards a frame from one of the
namespace's own addresses (the table does not list it), where the full check hands it over."""

import os
import struct

import pytest
from bpf_loader import VOUCHED_FOREVER, XDP_PASS, XDP_REDIRECT
from test_router import build_router_namespace, load_router

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _local_sources, _ports

OWN = '10.2.0.1'  # b0's address: martian as a source to Linux whichever check it makes


@pytest.fixture
def router(cleanup, bpf_dir):
    ns = cleanup('r')
    loaded = load_router(ns, build_router_namespace(ns), bpf_dir)
    yield loaded
    loaded.prog.close()


def local_table(router, entries=(), full_check=0, vouched_until=VOUCHED_FOREVER):
    paths = _local_sources.tables_in(router.prog.maps_dir)
    assert paths, 'xdp_router pins no local source table'
    _local_sources.write(paths, {'entries': dict(entries), 'full_check': full_check}, vouched_until,
                         _ports.lease_end_in_jiffies(vouched_until))


def action(router, src, **facts):
    router.facts(**facts)
    frame = router.frame4(src=src)
    got, out = router.run(frame)
    if got == XDP_PASS:
        assert out == frame
    return got


def test_without_a_vouched_local_table_the_full_check_decides(router):
    # As before the table existed: the reverse lookup finds OWN local and hands it over.
    assert action(router, OWN) == XDP_PASS
    assert action(router, '10.5.0.1') == XDP_REDIRECT


def test_with_rp_filter_0_the_address_table_decides_as_inet_lookup_ifaddr_does(router):
    local_table(router)
    # Nothing listed: the fast path has nothing to refuse (the tell that the table decided).
    assert action(router, OWN) == XDP_REDIRECT
    local_table(router, {OWN: _local_sources.LOCAL_ADDRESS})
    assert action(router, OWN) == XDP_PASS
    assert action(router, '10.5.0.1') == XDP_REDIRECT
    # A blackholed source: Linux's fast path does not look it up, nor does the router.
    assert action(router, '10.9.0.5') == XDP_REDIRECT


def test_the_filter_in_front_of_the_table_lets_every_listed_source_reach_it(router):
    """The router skips the table for a source whose filter bit is clear, so the keeper's bit for
    an address must be the router's (_local_sources.filter_bit() and xdpkit_local_filter_bit()):
    300 sources listed, each handed over; 100 beside them, forwarded; and a table that loses
    an address clears its bit once no other address shares it."""
    listed = ['10.%d.%d.%d' % (20 + i % 7, (i * 37) % 256, 1 + (i * 11) % 254) for i in range(300)]
    others = ['10.%d.%d.%d' % (40 + i % 5, (i * 53) % 256, 1 + (i * 13) % 254) for i in range(100)]
    local_table(router, {address: _local_sources.LOCAL_ADDRESS for address in listed})
    wrong = [address for address in listed if action(router, address) != XDP_PASS]
    assert not wrong, 'listed sources forwarded (filter bit clear): %s' % wrong[:5]
    assert [address for address in others if action(router, address) != XDP_REDIRECT] == []
    local_table(router, {listed[0]: _local_sources.LOCAL_ADDRESS})
    state = _local_sources.tables_in(router.prog.maps_dir)[1]
    fd = sysbpf.obj_get(state)
    try:
        raw = sysbpf.map_lookup(fd, bytes(4), _local_sources.STATE_SIZE)
    finally:
        os.close(fd)
    words = struct.unpack(_local_sources.STATE_FORMAT, raw)[4:]
    assert sum(bin(word).count('1') for word in words) == 1, 'one address, one bit'
    assert action(router, listed[0]) == XDP_PASS and action(router, listed[1]) == XDP_REDIRECT


@pytest.mark.parametrize('reason', [_local_sources.FULL_CUSTOM_LOCAL_ROUTES, _local_sources.FULL_CUSTOM_RULES,
                                    _local_sources.FULL_WIDE_ROUTES, _local_sources.FULL_TCLASSID])
def test_custom_local_routes_rules_realms_make_the_full_check(router, reason):
    local_table(router, full_check=reason)
    assert action(router, OWN) == XDP_PASS
    assert action(router, '10.5.0.1') == XDP_REDIRECT


def test_a_table_whose_lease_ran_out_makes_the_full_check(router):
    local_table(router, vouched_until=1)
    assert action(router, OWN) == XDP_PASS


@pytest.mark.parametrize('rp_filter', [1, 2])
def test_rp_filter_1_and_2_make_the_full_check_whatever_the_table_says(router, rp_filter):
    local_table(router)
    assert action(router, OWN, rp_filter=rp_filter) == XDP_PASS
    # Spoofed: connected behind b0, arriving on a0.
    assert action(router, '10.2.0.77', rp_filter=rp_filter) == (XDP_PASS if rp_filter == 1 else XDP_REDIRECT)


def test_accept_local_checks_nothing_unless_realms_make_the_full_check(router):
    local_table(router, {OWN: _local_sources.LOCAL_ADDRESS})
    assert action(router, OWN, accept_local=1) == XDP_REDIRECT
    local_table(router, {OWN: _local_sources.LOCAL_ADDRESS}, full_check=_local_sources.FULL_TCLASSID)
    assert action(router, OWN, accept_local=1) == XDP_PASS


def test_the_namespace_s_own_table_hands_over_its_addresses_and_broadcasts(router):
    table = _local_sources.wanted(*_local_sources.read_namespace(router.ns))
    assert table['full_check'] == 0, _local_sources.describe(table['full_check'])
    local_table(router, table['entries'], table['full_check'])
    for src in ('10.1.0.1', '10.2.0.1', '10.1.0.255', '10.2.0.255'):
        assert action(router, src) == XDP_PASS, src
    for src in ('10.1.0.2', '10.5.0.1', '10.9.0.5', '10.2.0.77'):
        assert action(router, src) == XDP_REDIRECT, src


def test_the_local_tables_are_not_taken_for_the_port_entry(router):
    """local_state is an array of one with a value the size of the port entry's: told apart by
    name, in the pin directory and among the program's maps (what xdp_stats reads)."""
    from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease
    state = os.path.join(router.prog.maps_dir, 'local_state')

    def info(path):
        fd = sysbpf.obj_get(path)
        try:
            return sysbpf.map_info(fd)
        finally:
            os.close(fd)
    assert not _lease.is_port_entry(info(state))
    assert _lease.is_port_entry(info(router.prog.port_entry_path()))
    fd = _lease.port_entry_fd(sysbpf.prog_info(router.prog.fn.fd)['id'])
    try:
        assert sysbpf.map_info(fd)['id'] == info(router.prog.port_entry_path())['id']
    finally:
        os.close(fd)
