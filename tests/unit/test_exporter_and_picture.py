"""The exporter's pure parts (listen addresses, the port cap, the collector's families), the
dashboard's queries against the reasons user space knows, and the lab picture's DOT text, on data."""

import json
import os
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _exporter, _metrics, _reasons
from ansible_collections.xdpkit.forwarding.plugins.module_utils._topology import plan_lab
from ansible_collections.xdpkit.forwarding.plugins.module_utils._topology_picture import lab_dot


@pytest.mark.parametrize('text, expected', [
    (':9435', ('', 9435)), ('127.0.0.1:9100', ('127.0.0.1', 9100)), ('[::1]:9435', ('::1', 9435)),
    ('[::]:1', ('::', 1))])
def test_listen_addresses_are_node_exporters(text, expected):
    assert _exporter.parse_listen_address(text) == expected


@pytest.mark.parametrize('text', ['9435', '::1:9435', 'host:', 'host:0', 'host:70000', '[::1:9435'])
def test_a_bad_listen_address_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match='listen address'):
        _exporter.parse_listen_address(text)


DASHBOARD = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'exporter', 'files', 'xdpkit-dashboard.json')


def sample(namespace, interface, redirected=0, port=None, reasons=None):
    counters = {action: {'packets': 0, 'bytes': 0} for action in _metrics.ACTIONS}
    counters['XDP_REDIRECT'] = {'packets': redirected, 'bytes': redirected * 98}
    return {'namespace': namespace, 'interface': interface, 'prog_id': 7, 'program': 'xdp_router',
            'counters': counters, 'port': port, 'reasons': reasons}


def test_the_port_cap_keeps_a_stable_first_n_and_counts_the_rest():
    kept, omitted = _exporter.bounded([sample('b', 'x'), sample('a', 'y'), sample('a', 'x')], 2)
    assert [(s['namespace'], s['interface']) for s in kept] == [('a', 'x'), ('a', 'y')] and omitted == 1


def test_the_collector_serves_what_the_text_says_with_prometheus_client():
    reasons = {name: {'packets': 0, 'bytes': 0} for name in _reasons.REASON_NAMES[1:]}
    reasons['no_neighbour'] = {'packets': 3, 'bytes': 294}
    samples = [sample('lab', 'r0', 1234, reasons=reasons), sample('lab', 'r9')]
    forwarded = {'lab': {'ipv4': 5, 'ipv6': 6}}

    def reader(max_ports):
        return _metrics.families(samples, None, forwarded)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_exporter.XdpkitCollector(10, reader))
    served = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(generate_latest(registry).decode())
              for s in family.samples}
    written = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(_metrics.exposition(samples, None, forwarded))
               for s in family.samples}
    assert served == written
    labels = (('action', 'XDP_REDIRECT'), ('interface', 'r0'), ('namespace', 'lab'), ('prog_id', '7'),
              ('program', 'xdp_router'))
    assert served[('xdpkit_xdp_packets_total', labels)] == 1234
    assert served[('xdpkit_kernel_forwarded_datagrams_total', (('family', 'ipv6'), ('namespace', 'lab')))] == 6
    # Every reason of a program that counts them, zeros included (a bounded label, known in advance);
    # none of one that does not (r9); 'redirected' is no reason.
    exported = {(name, dict(labels)['interface'], dict(labels)['reason']): value
                for (name, labels), value in served.items() if name.startswith('xdpkit_xdp_reason_')}
    names = ('xdpkit_xdp_reason_packets_total', 'xdpkit_xdp_reason_bytes_total')
    assert set(exported) == {(name, 'r0', reason) for name in names
                             for reason in _reasons.REASON_NAMES if reason != 'redirected'}
    assert exported[('xdpkit_xdp_reason_packets_total', 'r0', 'no_neighbour')] == 3
    assert exported[('xdpkit_xdp_reason_bytes_total', 'r0', 'no_neighbour')] == 294
    assert exported[('xdpkit_xdp_reason_packets_total', 'r0', 'ttl')] == 0
    labels = [dict(labels) for (name, labels) in served if name == 'xdpkit_xdp_reason_packets_total']
    assert {tuple(sorted(found)) for found in labels} == {
        ('interface', 'namespace', 'prog_id', 'program', 'reason')}


def dashboard_queries():
    with open(DASHBOARD) as handle:
        return {panel['title']: [target['expr'] for target in panel['targets']]
                for panel in json.load(handle)['panels']}


def test_the_dashboard_names_only_reasons_that_exist_and_its_port_share_counts_the_kernels_forwards():
    queries = dashboard_queries()
    for title, exprs in queries.items():
        for expr in exprs:
            for op, value in re.findall(r'reason(=~?|!~?)"([^"]*)"', expr):
                assert set(value.split('|')) <= set(_reasons.REASON_NAMES), (title, op, value)
    # The per-port share is _reasons.port_share(): the port's redirects over those plus its frames
    # of the reasons after which the kernel forwards (KERNEL_FORWARDS, written out in PromQL).
    [port] = queries['Acceleration share per port']
    [forwards] = re.findall(r'xdpkit_xdp_reason_packets_total\{reason=~"([^"]*)"', port)
    assert set(forwards.split('|')) == set(_reasons.KERNEL_FORWARDS), (
        'the dashboard\'s list of reasons the kernel forwards drifted from _reasons.KERNEL_FORWARDS: %s' % forwards)
    assert port.count('action="XDP_REDIRECT"') == 2 and port.count('sum by (namespace, interface)') == 3, port
    # Per namespace: XDP's redirects over those plus the kernel's own forwarded datagrams.
    [namespace] = queries['Acceleration share per namespace']
    assert namespace.count('action="XDP_REDIRECT"') == 2 and 'xdpkit_kernel_forwarded_datagrams_total' in namespace
    [leading] = queries['Leading pass reasons']
    assert leading.startswith('topk(5, sum by (namespace, reason) (rate(xdpkit_xdp_reason_packets_total'), leading


def test_the_picture_has_every_node_link_port_address_and_the_counts_where_xdp_runs():
    plan = plan_lab({'prefix': 'p-', 'nodes': {'h1': {}, 'r1': {'kind': 'router'}, 'h2': {}},
                     'links': [['h1:eth0', 'r1:eth0'], ['r1:eth1', 'h2:eth0']],
                     'pools': {'ipv4': '10.99.0.0/24', 'ipv6': 'fd00:99::/56'}})
    xdp = {'r1/eth0': {'program': 'xdp_router', 'stats': {'XDP_REDIRECT': {'packets': 1234567, 'bytes': 1},
                                                          'XDP_PASS': {'packets': 42, 'bytes': 1}}}}
    dot = lab_dot(plan, xdp, title='lab t')
    assert dot.startswith('graph lab {') and dot.rstrip().endswith('}')
    assert dot.count(' -- ') == 2
    for node in ('"h1"', '"r1"', '"h2"', 'p-r1'):
        assert node in dot
    for port, addresses in plan['nodes']['r1']['lab_ports'].items():
        assert '<B>%s</B>' % port in dot
        for address in addresses:
            assert address in dot
    assert 'redirect 1.23M' in dot and 'pass 42' in dot and dot.count('xdp_router') == 1
    assert 'redirect' not in lab_dot(plan, {}), 'no program, no counts'
