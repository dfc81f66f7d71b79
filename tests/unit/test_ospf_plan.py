"""routing: ospf in topology data, as pure functions: what each router's FRR is told, what the
lab waits for, and the topologies refused before anything is made."""

import os
import subprocess

import pytest
import yaml

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._topology import plan_lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def diamond(**extra):
    spec = {
        'prefix': 'ut-', 'routing': 'ospf',
        'nodes': {'h1': {'kind': 'host'}, 'r1': {'kind': 'router'}, 'r2': {'kind': 'router'},
                  'r3': {'kind': 'router'}, 'r4': {'kind': 'router'}, 'h2': {'kind': 'host'}},
        'links': [['h1:eth0', 'r1:eth0'], ['r1:eth1', 'r2:eth0'], ['r1:eth2', 'r3:eth0'],
                  ['r2:eth1', 'r4:eth0'], {'endpoints': ['r3:eth1', 'r4:eth1'], 'cost': '100'},
                  ['r4:eth2', 'h2:eth0']],
        'pools': {'ipv4': '10.86.0.0/24', 'ipv4_prefixlen': 31, 'ipv6': 'fd00:86::/56', 'ipv6_prefixlen': 127,
                  'loopback_ipv4': '10.86.255.0/24', 'loopback_ipv6': 'fd00:86:ff::/64'},
    }
    spec.update(extra)
    return spec


def interface_block(config, name):
    lines = config.splitlines()
    start = lines.index('interface %s' % name)
    return lines[start:lines.index('exit', start)]


def test_routers_get_no_computed_routes_and_hosts_keep_their_defaults():
    plan = plan_lab(diamond())
    assert plan['routing'] == 'ospf'
    assert {r['namespace'] for r in plan['routes']} == {'ut-h1', 'ut-h2'}
    assert {r['dest'] for r in plan['routes']} == {'default'}
    assert [i['namespace'] for i in plan['frr']] == ['ut-r1', 'ut-r2', 'ut-r3', 'ut-r4']
    assert set(plan['frr_configs']) == {'r1', 'r2', 'r3', 'r4'}
    # Forwarding on in every router, as with static routing.
    assert {(s['namespace'], s['name']) for s in plan['sysctls']} >= {('ut-r2', 'net.ipv6.conf.all.forwarding')}


def test_router_links_are_point_to_point_host_links_passive_with_lab_timers_and_costs():
    config = plan_lab(diamond(ospf={'hello': 1, 'dead': 3}))['frr_configs']['r1']
    eth0, eth1 = interface_block(config, 'eth0'), interface_block(config, 'eth1')
    assert ' ip ospf passive' in eth0 and ' ipv6 ospf6 passive' in eth0
    assert not any('point-to-point' in line for line in eth0)
    for line in (' ip ospf network point-to-point', ' ipv6 ospf6 network point-to-point',
                 ' ip ospf hello-interval 1', ' ip ospf dead-interval 3', ' ipv6 ospf6 dead-interval 3'):
        assert line in eth1
    r3 = plan_lab(diamond())['frr_configs']['r3']
    assert ' ip ospf cost 100' in interface_block(r3, 'eth1') and ' ipv6 ospf6 cost 100' in interface_block(r3, 'eth1')
    assert not any('cost' in line for line in interface_block(r3, 'eth0'))


def test_loopbacks_and_router_ids_come_from_the_loopback_pools_in_node_order():
    plan = plan_lab(diamond())
    r2 = plan['frr_configs']['r2']
    assert interface_block(r2, 'lo')[1:3] == [' ip address 10.86.255.2/32', ' ipv6 address fd00:86:ff::2/128']
    assert ' ospf router-id 10.86.255.2' in r2.splitlines() and ' ospf6 router-id 10.86.255.2' in r2.splitlines()
    assert plan['nodes']['r4']['lab_loopback'] == ['10.86.255.4/32', 'fd00:86:ff::4/128']
    # Without loopback pools the router id is the router's lowest IPv4 port address: unique in the lab.
    pools = {k: v for k, v in diamond()['pools'].items() if not k.startswith('loopback')}
    ids = [plan_lab(diamond(pools=pools))['nodes'][r]['lab_router_id'] for r in ('r1', 'r2', 'r3', 'r4')]
    assert len(set(ids)) == 4 and ids[0] == '10.86.0.1'


def test_every_router_waits_for_every_host_subnet_in_both_families():
    plan = plan_lab(diamond())
    wanted = ['10.86.0.0/31', '10.86.0.10/31', 'fd00:86::/127', 'fd00:86::a/127']
    assert [(w['label'], w['namespace'], w['prefixes']) for w in plan['frr_waits']] == [
        (r, 'ut-' + r, wanted) for r in ('r1', 'r2', 'r3', 'r4')]


def test_static_routing_is_the_default_and_plans_no_frr():
    spec = diamond()
    del spec['routing']
    plan = plan_lab(spec)
    assert plan['routing'] == 'static' and plan['frr'] == [] and plan['frr_waits'] == []
    assert any(r['namespace'] == 'ut-r1' for r in plan['routes'])


@pytest.mark.parametrize('change, message', [
    ({'routing': 'bgp'}, "routing is 'bgp'; it is one of static, ospf"),
    ({'ospf': {'hello': 4, 'dead': 4}}, 'must be longer than ospf.hello'),
    ({'ospf': {'hello': 'often'}}, 'ospf.hello and ospf.dead are whole seconds'),
    ({'extra_prefixes': {'count': 3}}, 'extra_prefixes needs routing: static'),
    ({'ospf': {'dead_interval': 4}}, 'ospf has no dead_interval; it takes hello, dead, area'),
])
def test_bad_ospf_topologies_are_refused_naming_what_is_wrong(change, message):
    with pytest.raises(XdpkitError, match=message.replace('(', r'\(')):
        plan_lab(diamond(**change))


def test_a_link_with_ospf_on_one_end_only_is_refused():
    spec = diamond()
    spec['links'][1] = {'endpoints': ['r1:eth1', 'r2:eth0'], 'ospf': [True, False]}
    with pytest.raises(XdpkitError, match=r'link 2 \(r1:eth1 - r2:eth0\) has OSPF on only one end'):
        plan_lab(spec)
    # Off on both ends is a link OSPF does not use: allowed, and no interface block for it.
    spec['links'][1]['ospf'] = False
    assert 'interface eth1\n' not in plan_lab(spec)['frr_configs']['r1']
    # A host subnet whose router does not run OSPF on it is advertised by nobody: nobody waits for it.
    spec['links'][0] = {'endpoints': ['h1:eth0', 'r1:eth0'], 'ospf': False}
    assert '10.86.0.0/31' not in plan_lab(spec)['frr_waits'][0]['prefixes']


def test_a_router_without_links_is_refused():
    spec = diamond()
    spec['nodes']['r9'] = {'kind': 'router'}
    with pytest.raises(XdpkitError, match="router 'r9' has no link that runs OSPF"):
        plan_lab(spec)
    # Links, none of them with OSPF on: the same.
    spec['links'].append({'endpoints': ['r9:eth0', 'h2:eth1'], 'ospf': False})
    with pytest.raises(XdpkitError, match="router 'r9' has no link that runs OSPF"):
        plan_lab(spec)


def test_the_lab_host_cannot_be_an_ospf_router():
    spec = diamond()
    spec['nodes']['r1'] = {'kind': 'router', 'lab_host': True}
    with pytest.raises(XdpkitError, match="router 'r1' is the lab host"):
        plan_lab(spec)


@pytest.mark.parametrize('lab', ['chain-ospf', 'diamond-ospf'])
def test_every_generated_configuration_passes_frrs_own_dry_run(lab, tmp_path):
    """vtysh --dryrun parses what the planner writes: a line FRR 8.4 does not know fails here."""
    with open(os.path.join(ROOT, 'labs', lab, 'topology.yml')) as handle:
        spec = yaml.safe_load(handle)['lab_topology_spec']
    # The example files are templates; give their variables the values the playbook would.
    spec['prefix'] = 'ut-'
    spec['ospf'] = {'hello': 1, 'dead': 4}
    spec['links'] = [dict(link, cost=100) if isinstance(link, dict) and 'cost' in link else link
                     for link in spec['links']]
    for node, config in plan_lab(spec)['frr_configs'].items():
        path = tmp_path / (node + '.conf')
        path.write_text(config)
        done = subprocess.run(['/usr/bin/vtysh', '--dryrun', '-f', str(path)], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, '%s: %s' % (node, done.stdout + done.stderr)
