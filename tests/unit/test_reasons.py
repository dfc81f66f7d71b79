"""The reasons user space names are the ones the programs count, in the same order, and the
sums operators read from them."""

import os
import re

from conftest import ROOT

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _reasons


def header_reasons():
    with open(os.path.join(ROOT, 'bpf', 'xdpkit_reasons.h')) as handle:
        text = handle.read()
    body = re.search(r'enum xdpkit_reason \{(.*?)\};', text, re.S).group(1)
    names = re.findall(r'^\s*(XDPKIT_\w+)', body, re.M)
    assert names[0] == 'XDPKIT_REDIRECTED' and names[-1] == 'XDPKIT_REASON_MAX'
    assert re.search(r'XDPKIT_REDIRECTED = 0,', body)
    return ['redirected'] + [name[len('XDPKIT_REASON_'):].lower() for name in names[1:-1]]


def test_user_space_names_every_reason_the_programs_count_in_their_order():
    assert list(_reasons.REASON_NAMES) == header_reasons()


def test_every_forwarding_program_counts_reasons_and_no_reason_is_unused():
    used = set()
    for name in ('xdp_router', 'xdp_redirect', 'xdp_redirect_map'):
        with open(os.path.join(ROOT, 'bpf', name + '.c')) as handle:
            text = handle.read()
        assert '#include "xdpkit_reasons.h"' in text, name
        # XDPKIT_REASON_COUNTERS is the define that compiles counting out, not a reason.
        used.update(reason.lower() for reason in re.findall(r'XDPKIT_REASON_(\w+)', text) if reason != 'COUNTERS')
    assert used == set(_reasons.REASON_NAMES[1:])


def test_leading_reasons_are_the_largest_rises_without_zeros():
    before = {'ttl': {'packets': 5, 'bytes': 500}, 'no_neighbour': {'packets': 1, 'bytes': 100}}
    after = {'ttl': {'packets': 6, 'bytes': 600}, 'no_neighbour': {'packets': 9, 'bytes': 900},
             'hairpin': {'packets': 2, 'bytes': 200}, 'blackhole': {'packets': 0, 'bytes': 0}}
    risen = _reasons.difference(after, before)
    assert _reasons.leading(risen) == [('no_neighbour', 8), ('hairpin', 2), ('ttl', 1)]
    assert _reasons.leading(risen, 1) == [('no_neighbour', 8)]
    described = _reasons.leading_described(risen, 1)
    assert described == [{'reason': 'no_neighbour', 'packets': 8, 'means': _reasons.describe('no_neighbour')}]
    assert described[0]['means'].startswith('the next hop')
    assert _reasons.leading_described({}) == []


def test_shares_count_only_what_the_kernel_forwards_per_port():
    reasons = {'no_neighbour': {'packets': 10, 'bytes': 0}, 'ttl': {'packets': 50, 'bytes': 0},
               'egress_without_router': {'packets': 10, 'bytes': 0}}
    assert _reasons.port_share(80, reasons) == 0.8
    assert _reasons.port_share(0, {}) is None
    assert _reasons.share(3, 1) == 0.75 and _reasons.share(0, 0) is None
