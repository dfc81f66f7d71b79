"""The frr module against real FRR daemons in real namespaces: two routers learn each other's
subnets over OSPFv2 and OSPFv3; re-runs restart nothing; a new configuration is applied to the
running daemons by FRR's reload; absent stops them by their pids; bad input fails before
anything is made."""

import os
import subprocess

import pytest

from conftest import run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._frr_config import render_ospf_router
from ansible_collections.xdpkit.forwarding.plugins.module_utils._link_info import main_table_routes
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute


def router_config(node, namespace, number, cost=None):
    return render_ospf_router({
        'node': node, 'namespace': namespace, 'router_id': '10.87.255.%d' % number,
        'loopback': ['10.87.255.%d/32' % number, 'fd00:87:ff::%d/128' % number],
        'interfaces': [{'name': 'link0', 'mode': 'p2p', 'cost': cost}, {'name': 'stub0', 'mode': 'passive'}],
        'hello': 1, 'dead': 3, 'area': '0.0.0.0'})


@pytest.fixture
def pair(cleanup):
    """Namespaces a and b joined by link0, each with a stub subnet on stub0 (a veth to nowhere)."""
    names = cleanup
    a, b = names('a'), names('b')
    for ns in (a, b):
        assert run_module('netns', {'name': ns})['changed']
    link = run_module('veth', {'name': 'link0', 'namespace': a, 'addresses': ['10.87.0.0/31', 'fd00:87::/127'],
                               'peer': {'name': 'link0', 'namespace': b,
                                        'addresses': ['10.87.0.1/31', 'fd00:87::1/127']}})
    assert not link.get('failed'), link
    for ns, number in ((a, 1), (b, 2)):
        stub = run_module('veth', {'name': 'stub0', 'namespace': ns,
                                   'addresses': ['10.87.%d.1/24' % number, 'fd00:87:%d::1/64' % number],
                                   'peer': {'name': names('s%d' % number)}})
        assert not stub.get('failed'), stub
    return names, a, b


def instances(a, b, cost=None):
    return [{'namespace': a, 'config': router_config('a', a, 1, cost)},
            {'namespace': b, 'config': router_config('b', b, 2)}]


def waits(a, b):
    return [{'namespace': a, 'label': 'a', 'prefixes': ['10.87.2.0/24', 'fd00:87:2::/64', '10.87.255.2/32']},
            {'namespace': b, 'label': 'b', 'prefixes': ['10.87.1.0/24', 'fd00:87:1::/64', 'fd00:87:ff::1/128']}]


def ospf_routes(ns):
    """The prefixes FRR's OSPF installed in the namespace's main table, read as link_info reads them."""
    with iproute(ns) as ipr:
        return {route['dest'] for route in main_table_routes(ipr) if route['protocol'] == 'ospf'}


def net_inode(pid):
    return os.stat('/proc/%d/ns/net' % pid).st_ino


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_frr_instances_converge_rerun_unchanged_restart_on_change_and_go(pair):
    names, a, b = pair
    checked = run_module('frr', {'instances': instances(a, b)}, check=True)
    assert checked['changed'] and not os.path.exists('/etc/frr/' + a), checked

    made = run_module('frr', {'instances': instances(a, b), 'wait_for_routes': waits(a, b)}, diff=True)
    assert made['changed'] and not made.get('failed'), made
    assert made['converged_in'] is not None and made['converged_in'] < 60
    assert [d['name'] for d in made['diff']['after']] == [a, b]
    # Learned by OSPF, in the kernel of each namespace, both families.
    assert {'10.87.2.0/24', 'fd00:87:2::/64', '10.87.255.2/32', 'fd00:87:ff::2/128'} <= ospf_routes(a)
    assert {'10.87.1.0/24', 'fd00:87:1::/64'} <= ospf_routes(b)
    daemons = {i['name']: i['daemons'] for i in made['instances']}
    for ns in (a, b):
        assert set(daemons[ns]) >= {'watchfrr', 'zebra', 'ospfd', 'ospf6d'}
        # The daemons run inside the router's namespace, not the host's.
        for daemon in ('zebra', 'ospfd', 'ospf6d'):
            assert net_inode(daemons[ns][daemon]) == os.stat('/run/netns/' + ns).st_ino
    # vtysh reaches the instance by its pathspace, as the docs say.
    shown = subprocess.run(['nsenter', '--net=/run/netns/' + a, 'vtysh', '-N', a, '-c', 'show ip ospf neighbor'],
                           capture_output=True, text=True, check=True).stdout
    assert 'Full' in shown and '10.87.255.2' in shown

    again = run_module('frr', {'instances': instances(a, b), 'wait_for_routes': waits(a, b)})
    assert not again['changed'], again
    assert {i['name']: i['daemons'] for i in again['instances']} == daemons, 'a re-run must restart nothing'

    # Check mode with a new configuration: a change predicted, nothing written or restarted.
    predicted = run_module('frr', {'instances': instances(a, b, cost=50)}, check=True, diff=True)
    assert predicted['changed'] and [d['name'] for d in predicted['diff']['after']] == [a]
    assert 'ip ospf cost' not in open('/etc/frr/%s/frr.conf' % a).read()
    assert all(alive(pid) for pid in daemons[a].values())

    changed = run_module('frr', {'instances': instances(a, b, cost=50), 'wait_for_routes': waits(a, b)})
    assert changed['changed'], changed
    now = {i['name']: i['daemons'] for i in changed['instances']}
    assert now == daemons, 'a new configuration is reloaded into the running daemons, none restarts'
    assert ' ip ospf cost 50' in open('/etc/frr/%s/frr.conf' % a).read()
    # ... and the running daemons took it: the new cost is in force on the link.
    for command, wanted in (('show ip ospf interface link0', 'Cost: 50'),
                            ('show ipv6 ospf6 interface link0', 'Cost 50')):
        shown = subprocess.run(['nsenter', '--net=/run/netns/' + a, 'vtysh', '-N', a, '-c', command],
                               capture_output=True, text=True, check=True).stdout
        assert wanted in shown, shown

    removed = run_module('frr', {'instances': [{'namespace': a}, {'namespace': b}], 'state': 'absent'}, diff=True)
    assert removed['changed'] and removed['removed'] == [a, b], removed
    assert not any(alive(pid) for ns in (a, b) for pid in now[ns].values())
    for ns in (a, b):
        assert not os.path.exists('/etc/frr/' + ns) and not os.path.exists('/var/run/frr/' + ns)
    # zebra took its routes out of the kernel as it stopped.
    assert not ospf_routes(a)
    assert not run_module('frr', {'instances': [{'namespace': a}], 'state': 'absent'})['changed']


def test_frr_refuses_bad_input_before_anything_starts(pair):
    names, a, b = pair
    cases = [
        ({'instances': [{'namespace': a, 'config': 'interface link0\n ip ospf bogus 3\n'}]},
         'FRR does not accept the configuration of %s' % a),
        ({'instances': [{'namespace': a, 'config': 'hostname x\n', 'daemons': ['zebra', 'ospfd', 'nonesuchd']}]},
         'Got no match for: nonesuchd'),
        ({'instances': [{'namespace': names('gone'), 'config': 'hostname x\n'}]}, 'does not exist'),
        ({'instances': [{'namespace': a}]}, 'have no config'),
        ({'instances': [{'namespace': a, 'config': 'hostname x\n'}], 'timeout': 0}, 'timeout is 0'),
        ({'instances': [{'namespace': a, 'config': 'hostname x\n'}, {'namespace': a, 'config': 'hostname y\n'}]},
         'frr instances named twice'),
        ({'instances': [{'namespace': a, 'config': 'hostname x\n'}],
          'wait_for_routes': [{'namespace': a, 'prefixes': ['10.87.300.0/24']}]}, 'is not a prefix'),
    ]
    for args, message in cases:
        result = run_module('frr', args)
        assert result.get('failed') and message in result['msg'], (args, result)
        assert not os.path.exists('/etc/frr/' + a) and not os.path.exists('/var/run/frr/' + a), args


def test_frr_refuses_a_pathspace_it_did_not_make(pair):
    names, a, b = pair
    os.makedirs('/etc/frr/' + a)
    try:
        with open('/etc/frr/%s/frr.conf' % a, 'w') as handle:
            handle.write('hostname theirs\n')
        for state in ('present', 'absent'):
            result = run_module('frr', {'instances': [{'namespace': a, 'config': 'hostname x\n'}], 'state': state})
            assert result.get('failed') and 'was not made by xdpkit' in result['msg'], result
        assert open('/etc/frr/%s/frr.conf' % a).read() == 'hostname theirs\n'
    finally:
        subprocess.run(['rm', '-rf', '/etc/frr/' + a], check=True)


def test_frr_names_the_router_and_prefix_that_never_arrived(pair):
    names, a, b = pair
    args = {'instances': instances(a, b), 'timeout': 8,
            'wait_for_routes': [{'namespace': b, 'label': 'router-b', 'prefixes': ['10.87.0.0/31', '192.0.2.0/24']}]}
    result = run_module('frr', args)
    assert result.get('failed'), result
    assert 'routing did not converge within 8 s: router-b (namespace %s) has no route to 192.0.2.0/24' % b \
        in result['msg'], result['msg']
    assert '10.87.0.0/31' not in result['msg'], 'a connected prefix is there: only the missing one is named'
    assert 'vtysh -N %s' % b in result['msg']
