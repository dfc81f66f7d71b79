"""Why frames were not accelerated, as the xdp_stats module tells an operator, with real pings
through a router namespace:

    [NAMEg: g0] ==veth== [NAMEr: r0 | xdp_router | r1] ==veth== [NAMEs: s0]

First the router is on r0 only: r1, the way to S, has none, so every echo request goes to the
kernel for that reason and nothing is accelerated, on the port or in the namespace. Then on both
ports: over an interval while pings flow, the namespace's share (XDP against the kernel's own
SNMP count) is all but 1. Pings to the router's own addresses count as frames for the router.
"""

import subprocess
import time

import pytest
import three_namespaces
from conftest import run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _keeper

SINK = '10.74.2.2'
ECHOES = 40


@pytest.fixture
def lab(cleanup):
    names = three_namespaces.build(cleanup, '10.74')
    names.maps_dir = '/sys/fs/bpf/xdpkit/%s-rsn' % names.prefix
    receivers = [{'interface': 's0', 'namespace': names.s}, {'interface': 'g0', 'namespace': names.g}]
    names.router = {'namespace': names.r, 'program': 'xdp_router', 'maps_dir': names.maps_dir,
                    'receivers': receivers}
    try:
        yield names
    finally:
        run_module('xdp_program', {'interfaces': ['r0', 'r1'], 'namespace': names.r, 'maps_dir': names.maps_dir,
                                   'receivers': names.router['receivers'], 'state': 'absent'})
        deadline = time.monotonic() + _keeper.IDLE_EXIT_SECONDS + 5
        while _keeper.running() is not None and time.monotonic() < deadline:
            time.sleep(0.2)


def ping_argv(ns, target, count):
    return ['nsenter', '--net=/run/netns/%s' % ns, 'ping', '-q', '-c', str(count), '-i', '0.01', '-W', '2', target]


def ping(ns, target, count=ECHOES):
    subprocess.run(ping_argv(ns, target, count), check=True, capture_output=True)


def stats(lab, interface, **extra):
    result = run_module('xdp_stats', dict({'interface': interface, 'namespace': lab.r}, **extra))
    assert not result.get('failed'), result
    return result


def test_xdp_stats_says_why_frames_were_not_accelerated_and_the_share(lab):
    assert run_module('xdp_program', dict(lab.router, interfaces=['r0']))['changed']
    before = stats(lab, 'r0')
    assert before['reasons'] is not None and set(before['reasons']) >= {'egress_without_router', 'ttl'}
    ping(lab.g, SINK)
    after = stats(lab, 'r0')
    risen = {name: after['reasons'][name]['packets'] - before['reasons'][name]['packets'] for name in after['reasons']}
    # Every echo request met the same rule; the replies came in on r1, where no program counts. G's
    # ARP for its gateway (broadcast, or a unicast probe) is the only other thing that arrives.
    assert risen['egress_without_router'] == ECHOES, risen
    others = {name: count for name, count in risen.items() if count and name != 'egress_without_router'}
    assert set(others) <= {'not_our_mac', 'not_ip'} and sum(others.values()) <= 3, others
    assert after['stats']['XDP_REDIRECT']['packets'] == before['stats']['XDP_REDIRECT']['packets']
    assert after['leading_reasons'][0]['reason'] == 'egress_without_router'
    assert 'attach it there too' in after['leading_reasons'][0]['means']
    assert after['acceleration']['port'] == 0.0
    assert after['acceleration']['namespace'] == 0.0
    assert after['acceleration']['kernel_forwarded'] - before['acceleration']['kernel_forwarded'] == 2 * ECHOES

    # Frames for the router itself: its own addresses, on the ingress port and behind the other one.
    ping(lab.g, '10.74.1.1', 5)
    ping(lab.g, '10.74.2.1', 5)
    mine = stats(lab, 'r0')
    assert mine['reasons']['local_destination']['packets'] - after['reasons']['local_destination']['packets'] == 10

    # The router on both ports: over an interval with pings flowing, XDP forwards all but nothing.
    assert run_module('xdp_program', dict(lab.router, interfaces=['r0', 'r1']))['changed']
    ping(lab.g, SINK, 2)  # each port's lease and table in place before the interval starts
    flow = subprocess.Popen(ping_argv(lab.g, SINK, 300), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        over = stats(lab, 'r1', interval=1.0)
    finally:
        assert flow.wait(timeout=30) == 0
    assert over['rates']['XDP_REDIRECT']['pps'] > 30, over['rates']
    assert over['acceleration_over_interval']['namespace'] >= 0.95, over
    assert over['acceleration_over_interval']['port'] == 1.0, over
    assert over['acceleration']['namespace_redirected'] > 0
