"""Pure functions behind the router's guards: the port entry's rules, which netfilter chains and
traffic control objects an XDP redirect would skip, and which programs forward at all."""

import struct

import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _netfilter, _ports, _traffic_control
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_source import (
    PORT_ENTRY_MAP,
    declares_port_entry,
    forwards_frames,
    pin_declarations,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._lease import PORT_ENTRY, is_port_entry


@pytest.mark.parametrize('rp_all, rp_dev, addressed, wanted', [
    (0, 0, True, 0), (1, 0, True, 1), (0, 2, True, 2), (2, 1, True, 2), (1, 2, True, 2),
    # loose on a port without IPv4 addresses fails everything not routed back through it
    (2, 0, False, 1), (0, 1, False, 1), (0, 0, False, 0),
])
def test_rp_filter_is_the_larger_of_all_and_the_port_as_the_kernel_applies_it(rp_all, rp_dev, addressed, wanted):
    assert _ports.effective_rules(rp_all, rp_dev, 0, 0, addressed)['rp_filter'] == wanted


@pytest.mark.parametrize('local_all, local_dev, wanted', [(0, 0, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)])
def test_accept_local_is_on_when_all_or_the_port_says_so(local_all, local_dev, wanted):
    assert _ports.effective_rules(0, 0, local_all, local_dev, True)['accept_local'] == wanted


def test_port_entry_round_trips_through_the_kernel_layout():
    entry = {'mac': '02:ab:cd:00:00:01', 'rp_filter': 2, 'accept_local': 1, 'vouched_until': 0x0102030405060708}
    raw = _ports.encode(entry)
    jiffies = _ports.lease_end_in_jiffies(0x0102030405060708)
    assert jiffies > 0, 'this kernel\'s routers read jiffies: the end is given in them too'
    assert raw == bytes.fromhex('02abcd000001') + b'\x02\x01' + struct.pack('=QQ', 0x0102030405060708, jiffies)
    assert len(raw) == _ports.PORT_SIZE == 24, 'struct xdpkit_port: the lease is 8-byte aligned'
    assert _ports.decode(raw) == dict(entry, vouched_until_jiffies=jiffies)
    assert _ports.facts(entry) == {'mac': '02:ab:cd:00:00:01', 'rp_filter': 2, 'accept_local': 1}


def test_the_port_entry_is_found_by_its_macro_and_pinned_per_instance():
    text = 'XDPKIT_DEVMAP_HASH(tx_ports, 256);\n  XDPKIT_PORT_ENTRY();\n'
    assert declares_port_entry(text) and not declares_port_entry('XDPKIT_DEVMAP_HASH(tx_ports, 256);\n')
    # In the instance's pin_dir, not in the maps_dir instances share.
    assert pin_declarations(text) == [('maps_dir', 'tx_ports'), ('pin_dir', PORT_ENTRY_MAP)]
    # The read-only side (_lease) names it too, without the change stack's _bpf_source.
    assert PORT_ENTRY == PORT_ENTRY_MAP


def test_an_entry_nobody_wrote_or_one_cleared_reads_as_none():
    assert _ports.decode(bytes(_ports.PORT_SIZE)) is None
    assert _ports.decode(_ports.encode({'mac': '02:00:00:00:00:01', 'rp_filter': 1, 'accept_local': 0})) is None
    assert _ports.decode(None) is None


def test_the_port_entry_is_told_from_local_state_by_its_name():
    entry = {'type': 'array', 'key_size': 4, 'value_size': _ports.PORT_SIZE, 'max_entries': 1, 'name': PORT_ENTRY}
    assert is_port_entry(entry)
    assert not is_port_entry(dict(entry, name='local_state'))
    assert not is_port_entry(dict(entry, type='hash', max_entries=256))
    assert not is_port_entry(dict(entry, value_size=_ports.PORT_SIZE + 8))  # another layout


def chain(family, name, hook, policy=1, table='t'):
    return {'family': family, 'table': table, 'name': name, 'hook': hook, 'policy': policy}


def test_chains_xdp_would_skip_are_those_on_prerouting_forward_postrouting_with_rules_or_drop():
    chains = [chain('inet', 'fwd_drop', 2, policy=0), chain('ip', 'pre', 0), chain('ip6', 'post', 4),
              chain('inet', 'input', 1, policy=0), chain('ip', 'output', 3), chain('ip', 'empty_forward', 2),
              chain('inet', 'regular', None), chain('netdev', 'ingress', 0), chain('bridge', 'fwd', 2, policy=0)]
    counts = {('ip', 't', 'pre'): 2, ('ip6', 't', 'post'): 1, ('ip', 't', 'output'): 5, ('netdev', 't', 'ingress'): 1,
              ('inet', 't', 'regular'): 4}
    found = _netfilter.bypassed_nftables_chains(chains, counts)
    assert [(c['family'], c['chain'], c['hook']) for c in found] == [
        ('inet', 'fwd_drop', 'forward'), ('ip', 'pre', 'prerouting'), ('ip6', 'post', 'postrouting'),
        ('netdev', 'ingress', 'ingress')]
    assert found[0]['policy'] == 'drop' and found[1]['rules'] == 2
    assert 'nftables inet t chain fwd_drop (forward hook: policy drop)' == _netfilter.describe_chain(found[0])
    assert '(prerouting hook: 2 rules)' in _netfilter.describe_chain(found[1])


def legacy_table(valid_hooks, hook_entry, underflow, policies, target_offset_at=88, entry_size=152):
    """GET_INFO and GET_ENTRIES bytes of a legacy table whose policy entries sit at `underflow`."""
    info = struct.pack(_netfilter.GETINFO_FORMAT, b'filter', valid_hooks, *hook_entry, *underflow, 0, 0)
    entries = bytearray(max(underflow) + entry_size)
    for hook, verdict in policies.items():
        at = underflow[hook]
        struct.pack_into('=H', entries, at + target_offset_at, 112)
        struct.pack_into('=i', entries, at + 112 + 32, verdict)
    return info, bytes(entries)


def test_legacy_forward_rules_and_drop_policies_are_read_from_the_entries():
    # filter: INPUT(1), FORWARD(2), OUTPUT(3); FORWARD has one rule and policy DROP.
    info, entries = legacy_table(0b1110, [0, 0, 152, 456, 0], [0, 0, 304, 456, 0],
                                 {1: -2, 2: _netfilter.STANDARD_DROP, 3: -2})
    state = _netfilter.legacy_hook_state(info, entries, 88)
    assert state == {'FORWARD': (True, 'drop')}


def test_empty_legacy_chains_with_accept_policies_are_harmless():
    info, entries = legacy_table(0b10011, [0, 152, 0, 0, 304], [0, 152, 0, 0, 304], {0: -2, 1: -2, 4: -2})
    assert _netfilter.legacy_hook_state(info, entries, 88) == {'PREROUTING': (False, 'accept'),
                                                               'POSTROUTING': (False, 'accept')}


@pytest.mark.parametrize('source, forwards', [
    ('int f(struct xdp_md *c) { return XDP_PASS; }', False),
    ('int f(struct xdp_md *c) { return tx_ports.redirect_map(1, 0); }', True),
    ('int f(struct xdp_md *c) { return bpf_redirect(7, 0); }', True),
    ('int f(struct xdp_md *c) { return XDP_TX; }', True),
    ('/* never bpf_redirect() here */ int f(struct xdp_md *c) { return XDP_DROP; } // XDP_TX', False),
])
def test_forwarding_programs_are_the_ones_that_redirect_or_transmit(source, forwards):
    assert forwards_frames(source) is forwards


def qdisc(kind, handle, parent=0xFFFFFFFF):
    return {'kind': kind, 'handle': handle, 'parent': parent}


def test_tc_a_redirect_skips_is_filters_tcx_and_configured_qdiscs_not_the_kernels_defaults():
    qdiscs = [qdisc('noqueue', 0), qdisc('mq', 0), qdisc('fq_codel', 0, 0x1), qdisc('clsact', 0xFFFF0000, 0xFFFFFFF1),
              qdisc('htb', 0x10000), qdisc('fq', 0x80010000, 0x10001)]
    filters = [{'direction': 'ingress', 'kind': 'u32', 'pref': 10}, {'direction': 'egress', 'kind': 'bpf', 'pref': 1}]
    tcx = [{'direction': 'egress', 'id': 42, 'name': 'other_tool'}, {'direction': 'ingress', 'id': 7, 'name': None}]
    both = _traffic_control.bypassed_tc(qdiscs, filters, tcx, ('ingress', 'egress'))
    assert [item['detail'] for item in both] == [
        'qdisc htb 1: (root)', 'qdisc fq 8001: (parent 1:1)', 'ingress filter u32 pref 10',
        'egress filter bpf pref 1', 'tcx egress program id 42 (other_tool)', 'tcx ingress program id 7 (name unknown)']
    # A port frames only leave by (xdp_redirect's DEST_IFINDEX): its ingress is not skipped.
    egress = _traffic_control.bypassed_tc(qdiscs, filters, tcx, ('egress',))
    assert [item['object'] for item in egress] == ['qdisc', 'qdisc', 'filter', 'tcx']
    # What the kernel made by itself, and a clsact without filters, skip nothing.
    assert _traffic_control.bypassed_tc(qdiscs[:4], [], [], ('ingress', 'egress')) == []


def test_tc_handles_print_as_tc_prints_them():
    assert [_traffic_control.handle_text(h) for h in (0x10000, 0x10010, 0xFFFF0000, 0x80010000)] == \
        ['1:', '1:10', 'ffff:', '8001:']
