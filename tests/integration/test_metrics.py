"""Prometheus metrics of every attached program: tools/xdp_stats --prometheus and --textfile,
read with prometheus_client's own parser while traffic flows."""

import os
import subprocess
import time

from conftest import ROOT, run_module
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

TOOL = os.path.join(ROOT, 'tools', 'xdp_stats')
# Written out, not imported from _metrics / _xdp_stats: the test states what is exported.
METRICS = ('xdpkit_xdp_packets_total', 'xdpkit_xdp_bytes_total')
ACTIONS = ('XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT')


KERNEL = 'xdpkit_kernel_forwarded_datagrams_total'
REASON_METRICS = ('xdpkit_xdp_reason_packets_total', 'xdpkit_xdp_reason_bytes_total')


def reason_samples(text):
    """{(metric, namespace, interface, reason): value} of the per-reason counters."""
    return {(s.name, s.labels['namespace'], s.labels['interface'], s.labels['reason']): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name in REASON_METRICS}


def kernel_forwarded(text):
    """{(namespace, family): value} of the kernel's own forwarded datagrams."""
    return {(s.labels['namespace'], s.labels['family']): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == KERNEL}


def samples(text):
    """{(metric, namespace, interface, action): value} from Prometheus text, parsed for real."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == 'counter', family
        for sample in family.samples:
            if sample.name.endswith('_created') or sample.name in (KERNEL,) + REASON_METRICS:
                continue
            labels = sample.labels
            assert set(labels) == {'namespace', 'interface', 'program', 'prog_id', 'action'}, labels
            found[(sample.name, labels['namespace'], labels['interface'], labels['action'])] = (
                sample.value, labels['program'], labels['prog_id'])
    return found


def test_prometheus_text_and_textfile_count_traffic_as_it_flows(cleanup, tmp_path):
    ns, host = cleanup('ns'), cleanup('h')
    create_netns(ns)
    VethManager({'name': host, 'addresses': ['10.68.0.1/24'], 'state': 'present',
                 'peer': {'name': 'veth0', 'namespace': ns, 'addresses': ['10.68.0.2/24']}}).run()
    attached = run_module('xdp_program', {'interface': host, 'program': 'xdp_pass'})
    assert attached['changed'], attached
    inside = run_module('xdp_program', {'interface': 'veth0', 'namespace': ns, 'program': 'xdp_pass'})
    assert inside['changed'], inside
    ping = subprocess.Popen(['nsenter', '--net=/run/netns/' + ns, 'ping', '-q', '-i', '0.01', '-c', '3000',
                             '10.68.0.1'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        first = subprocess.run([TOOL, '--prometheus', '--count', '1'], capture_output=True, text=True,
                               check=True, timeout=60).stdout
        time.sleep(1.0)
        textfile = tmp_path / 'xdpkit.prom'
        out = subprocess.run([TOOL, '--textfile', str(textfile), '--count', '1'], capture_output=True, text=True,
                             check=True, timeout=60)
        assert ping.poll() is None, 'the traffic still flowed when the second sample was taken'
    finally:
        ping.kill()
        ping.wait()
    assert 'lines written' in out.stdout
    second = textfile.read_text()
    assert not [p for p in os.listdir(tmp_path) if p != 'xdpkit.prom'], 'no temporary file left beside it'

    before, after = samples(first), samples(second)
    key = ('xdpkit_xdp_packets_total', '', host, 'XDP_PASS')
    assert key in before and key in after, sorted(k for k in after if host in k[2])
    assert after[key][0] - before[key][0] >= 50, (before[key], after[key])
    byte_key = ('xdpkit_xdp_bytes_total', '', host, 'XDP_PASS')
    assert after[byte_key][0] - before[byte_key][0] >= 50 * 98, 'ICMP echo frames are 98 bytes'
    assert after[key][1] == 'xdp_pass' and after[key][2] == str(attached['program']['prog_id'])
    # Each program it attached is there under its own namespace and interface, with every action
    # of both counters labelled with the program's name and the id the attach returned.
    for namespace, interface, result in (('', host, attached), (ns, 'veth0', inside)):
        exported = {(metric, action): (program, prog_id) for (metric, sample_ns, sample_if, action), (
            _value, program, prog_id) in after.items() if (sample_ns, sample_if) == (namespace, interface)}
        assert set(exported) == {(metric, action) for metric in METRICS for action in ACTIONS}, exported
        assert set(exported.values()) == {('xdp_pass', str(result['program']['prog_id']))}, exported
    assert attached['program']['prog_id'] != inside['program']['prog_id']
    # The echo replies reached the program inside the namespace.
    inside_key = ('xdpkit_xdp_packets_total', ns, 'veth0', 'XDP_PASS')
    assert after[inside_key][0] - before[inside_key][0] >= 50, (before[inside_key], after[inside_key])
    # The kernel's own forwarding, per namespace where a program runs (the host's is ''), both families
    # (other programs on the host may add namespaces of theirs).
    kernel = kernel_forwarded(second)
    assert set(kernel) >= {(n, f) for n in ('', ns) for f in ('ipv4', 'ipv6')}, kernel
    # Actions the program never returned are exported as zero, not left out.
    assert after[('xdpkit_xdp_packets_total', '', host, 'XDP_DROP')][0] == 0
    # xdp_pass keeps no reasons: none exported for it (tests/integration/test_exporter.py has the router's).
    assert not [key for key in reason_samples(second) if (key[1], key[2]) in (('', host), (ns, 'veth0'))]
    assert '# TYPE xdpkit_xdp_reason_packets_total counter' in second

    for interface, namespace in ((host, None), ('veth0', ns)):
        args = {'interface': interface, 'state': 'absent'}
        if namespace:
            args['namespace'] = namespace
        run_module('xdp_program', args)
