"""The lab planner as pure functions: pools, computed routes on a chain, a ring and a
diamond, extra prefixes, the inventory, and the errors bad topologies get."""

import ipaddress

import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._topology import plan_lab

POOLS = {'ipv4': '10.90.0.0/24', 'ipv6': 'fd00:90::/56'}


def routes_of(plan, netns):
    return {(r['dest'], r['gateway']) for r in plan['routes'] if r.get('namespace') == netns}


def next_hop_node(plan, node, dest):
    """Which node owns the gateway of node's route to dest (or its default)."""
    address = ipaddress.ip_address(dest)
    gateway = None
    for prefix, via in sorted(routes_of(plan, node)):
        if prefix == 'default' and ipaddress.ip_address(via).version == address.version:
            gateway = gateway or via
        elif prefix != 'default' and address in ipaddress.ip_network(prefix):
            gateway = via
    for name, host in plan['nodes'].items():
        if any(a.split('/')[0] == gateway for addresses in host['lab_ports'].values() for a in addresses):
            return name
    return None


def walk(plan, source, target, family='lab_ipv4', dest=None):
    """The nodes a packet from source to target's first address (or dest) visits, by the planned routes."""
    dest = dest or plan['nodes'][target][family]
    path, here = [source], source
    connected = {name: {ipaddress.ip_interface(a).network for addrs in host['lab_ports'].values() for a in addrs}
                 for name, host in plan['nodes'].items()}
    while not any(ipaddress.ip_address(dest) in net for net in connected[here]):
        here = next_hop_node(plan, here, dest)
        assert here and here not in path, path
        path.append(here)
    return path + [target]


def chain(routers=3, **extra):
    nodes = {'h1': {'kind': 'host'}, 'h2': {'kind': 'host'}}
    nodes.update({'r%d' % i: {'kind': 'router'} for i in range(1, routers + 1)})
    names = ['h1'] + ['r%d' % i for i in range(1, routers + 1)] + ['h2']
    pairs = zip(names[:-1], names[1:], strict=True)
    links = [['%s:eth%d' % (a, 1 if i else 0), '%s:eth0' % b] for i, (a, b) in enumerate(pairs)]
    return dict({'nodes': nodes, 'links': links, 'pools': POOLS}, **extra)


def test_a_chain_routes_end_to_end_in_both_families_with_no_route_written():
    plan = plan_lab(chain(3))
    for family in ('lab_ipv4', 'lab_ipv6'):
        assert walk(plan, 'h1', 'h2', family) == ['h1', 'r1', 'r2', 'r3', 'h2']
        assert walk(plan, 'h2', 'h1', family) == ['h2', 'r3', 'r2', 'r1', 'h1']
    # Hosts with one link get default routes, routers one route per subnet they are not on.
    assert {dest for dest, _gateway in routes_of(plan, 'h1')} == {'default'}
    assert len(routes_of(plan, 'r2')) == 2 * 2  # two remote subnets, two families


def test_a_diamond_takes_the_same_path_both_ways():
    plan = plan_lab({'nodes': {'h1': {}, 'h2': {}, 'r1': {'kind': 'router'}, 'r2': {'kind': 'router'},
                               'r3': {'kind': 'router'}, 'r4': {'kind': 'router'}},
                     'links': [['h1:e0', 'r1:e0'], ['r1:e1', 'r2:e0'], ['r1:e2', 'r3:e0'], ['r2:e1', 'r4:e0'],
                               ['r3:e1', 'r4:e1'], ['r4:e2', 'h2:e0']], 'pools': POOLS})
    assert walk(plan, 'h1', 'h2') == ['h1', 'r1', 'r2', 'r4', 'h2']
    assert walk(plan, 'h2', 'h1') == ['h2', 'r4', 'r2', 'r1', 'h1']


def test_a_ring_takes_the_shorter_way_round():
    names = ['r%d' % i for i in range(1, 6)]
    links = [['%s:a' % a, '%s:b' % b] for a, b in zip(names, names[1:] + names[:1], strict=True)]
    plan = plan_lab({'nodes': {n: {'kind': 'router'} for n in names}, 'links': links, 'pools': POOLS})
    r4_towards_r5 = plan['nodes']['r4']['lab_ports']['a'][0].split('/')[0]
    assert walk(plan, 'r1', 'r4', dest=r4_towards_r5) == ['r1', 'r5', 'r4']
    r3_towards_r2 = plan['nodes']['r3']['lab_ports']['b'][0].split('/')[0]
    assert walk(plan, 'r1', 'r3', dest=r3_towards_r2) == ['r1', 'r2', 'r3']


def test_pools_hand_out_point_to_point_subnets_in_link_order():
    plan = plan_lab(chain(1, pools={'ipv4': '10.1.0.0/29', 'ipv4_prefixlen': 31, 'ipv6': 'fd00::/64',
                                    'ipv6_prefixlen': 127}))
    assert plan['links'][0]['addresses'] == ['10.1.0.0/31', 'fd00::/127']
    assert plan['links'][0]['peer']['addresses'] == ['10.1.0.1/31', 'fd00::1/127']
    assert plan['links'][1]['addresses'] == ['10.1.0.2/31', 'fd00::2/127']
    thirty = plan_lab(chain(1))
    assert thirty['links'][1]['addresses'][0] == '10.90.0.5/30'


def test_given_addresses_win_over_the_pool():
    spec = chain(1)
    spec['links'][0] = {'endpoints': spec['links'][0], 'ipv4': ['192.0.2.2/24', '192.0.2.1/24']}
    plan = plan_lab(spec)
    assert plan['links'][0]['addresses'][0] == '192.0.2.2/24'
    assert ('default', '192.0.2.1') in routes_of(plan, 'h1')


def test_extra_prefixes_are_routed_towards_their_node_by_every_router():
    plan = plan_lab(chain(2, extra_prefixes={'count': 1000, 'towards': 'h2'}))
    r1 = [r for r in routes_of(plan, 'r1') if r[0].startswith('198.')]
    assert len(r1) == 1000 and len({gw for _dest, gw in r1}) == 1
    assert plan['route_count'] >= 2 * 1000


def test_the_inventory_lists_every_node_as_a_netns_host_grouped_by_kind():
    plan = plan_lab(chain(2, prefix='lab1-', inventory_vars={'ansible_netns_transport': 'ssh'}))
    children = plan['inventory']['all']['children']
    assert set(children['router']['hosts']) == {'r1', 'r2'} and set(children['host']['hosts']) == {'h1', 'h2'}
    assert children['router']['hosts']['r1']['ansible_netns'] == 'lab1-r1'
    assert children['router']['hosts']['r1']['router_interfaces'] == ['eth0', 'eth1']
    assert plan['inventory']['all']['vars']['ansible_connection'] == 'xdpkit.forwarding.netns'
    assert plan['inventory']['all']['vars']['ansible_netns_transport'] == 'ssh'
    assert sorted(plan['namespaces']) == ['lab1-h1', 'lab1-h2', 'lab1-r1', 'lab1-r2']
    assert {s['name'] for s in plan['sysctls'] if s['namespace'] == 'lab1-r1'} == {
        'net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding'}


def seed_fib(prefix='fib-'):
    return {'prefix': prefix, 'nodes': {'host': {'kind': 'router', 'lab_host': True}, 'uno': {}, 'dos': {}},
            'links': [{'endpoints': ['host:uno', 'uno:veth0'], 'ipv4': ['10.0.1.1/24', '10.0.1.2/24'],
                       'ipv6': ['fd00:1::1/64', 'fd00:1::2/64']},
                      {'endpoints': ['host:dos', 'dos:veth0'], 'ipv4': ['10.0.2.1/24', '10.0.2.2/24']}],
            'receivers': 'none'}


def test_the_lab_host_is_a_node_whose_ports_live_in_its_own_namespace():
    """The seed's FIB lab as data: the host's ports carry the prefix, as the namespaces do, and
    nothing of the host's is given a namespace or an inventory entry."""
    plan = plan_lab(seed_fib())
    assert plan['namespaces'] == ['fib-uno', 'fib-dos']
    assert [(link['name'], 'namespace' in link, link['peer']['name'], link['peer']['namespace'])
            for link in plan['links']] == [('fib-uno', False, 'veth0', 'fib-uno'),
                                           ('fib-dos', False, 'veth0', 'fib-dos')]
    assert plan['nodes']['host']['router_interfaces'] == ['fib-dos', 'fib-uno']
    assert plan['nodes']['host']['ansible_netns'] is None
    assert plan['nodes']['host']['lab_peers']['fib-uno'] == {
        'node': 'uno', 'namespace': 'fib-uno', 'interface': 'veth0'}
    assert plan['nodes']['dos']['lab_peers']['veth0'] == {'node': 'host', 'namespace': None, 'interface': 'fib-dos'}
    # Forwarding on in the lab host itself, the namespaces' default routes via its ports.
    assert {s['name'] for s in plan['sysctls'] if 'namespace' not in s} == {
        'net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding'}
    assert routes_of(plan, 'fib-uno') == {('default', '10.0.1.1'), ('default', 'fd00:1::1')}
    assert routes_of(plan, 'fib-dos') == {('default', '10.0.2.1')}
    # The namespaces are netns hosts of the inventory; the lab host is the play's own host.
    assert plan['inventory']['all']['children'] == {'host': {'hosts': {
        'uno': plan['nodes']['uno'], 'dos': plan['nodes']['dos']}}}
    # Probes: each namespace host to each address family the other has.
    assert [(p['namespace'], p['to']) for p in plan['probes']] == [
        ('fib-uno', '10.0.2.2'), ('fib-dos', '10.0.1.2'), ('fib-dos', 'fd00:1::2')]


def test_only_one_node_is_the_lab_host():
    spec = seed_fib()
    spec['nodes']['uno'] = {'lab_host': True}
    with pytest.raises(XdpkitError, match='only one node can be the lab host'):
        plan_lab(spec)


@pytest.mark.parametrize('change, message', [
    (lambda s: s['links'].append(['h1:eth9', 'nowhere:eth0']), "node 'nowhere', which is not in nodes"),
    (lambda s: s['links'].append(['h1:eth0', 'h2:eth5']), "port 'h1:eth0' is used by two links"),
    (lambda s: s['links'].append(['h1:eth7', 'h1:eth8']), 'joins node'),
    (lambda s: s['links'].append(['h1', 'h2:eth5']), "is not 'node:port'"),
    (lambda s: s['nodes'].update(r9={'kind': 'switch'}), "kind 'switch'"),
    (lambda s: s.update(pools={'ipv4': '10.0.0.0/30'}), 'has only 1 /30 subnets'),
    (lambda s: s.update(pools={'ipv4': '10.0.0.0/24', 'ipv4_prefixlen': 24}), 'must be one of /30 or /31'),
    (lambda s: s.update(pools={'ipv4': 'fd00::/64'}), 'cannot hold'),
    (lambda s: s['links'].__setitem__(0, {'endpoints': s['links'][0], 'ipv4': ['10.0.0.1/24', '10.9.0.2/24']}),
     'not in one subnet'),
    (lambda s: s['links'].__setitem__(0, {'endpoints': s['links'][0], 'ipv4': ['10.0.0.1', '10.0.0.2']}),
     'with a prefix length'),
    (lambda s: s.update(extra_prefixes={'count': 10, 'towards': 'mars'}), "'mars', which is not a node"),
    (lambda s: s.update(extra_prefixes={'count': 100000, 'pool': '198.18.0.0/24'}), 'do not fit'),
    (lambda s: s['links'].__setitem__(0, ['h1:' + 'x' * 20, 'r1:eth0']), 'characters long'),
])
def test_bad_topologies_fail_with_the_reason(change, message):
    spec = chain(2)
    change(spec)
    with pytest.raises(XdpkitError, match=None) as caught:
        plan_lab(spec)
    assert message in str(caught.value), str(caught.value)
