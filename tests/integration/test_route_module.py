from conftest import run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute


def routes(ns, family):
    with iproute(ns) as ipr:
        found = []
        for msg in ipr.get_routes(family=family, table=254):
            found.append((msg.get_attr('RTA_DST'), msg['dst_len'], msg.get_attr('RTA_GATEWAY'),
                          msg.get_attr('RTA_PRIORITY'), msg['type']))
        return found


def lab(names):
    run_module('netns', {'name': names('ns')})
    run_module('veth', {'name': names('h'), 'addresses': ['10.79.0.1/24', 'fd79::1/64'],
                        'peer': {'name': 'veth0', 'namespace': names('ns'),
                                 'addresses': ['10.79.0.2/24', 'fd79::2/64']}})
    return names('ns')


def test_default_routes_ipv4_and_ipv6_converge(cleanup):
    ns = lab(cleanup)
    v4 = {'namespace': ns, 'dest': 'default', 'gateway': '10.79.0.1'}
    v6 = {'namespace': ns, 'dest': 'default', 'gateway': 'fd79::1'}

    assert run_module('route', v4, check=True)['changed']
    assert not [r for r in routes(ns, 2) if r[0] is None]

    added = run_module('route', v4, diff=True)
    assert added['changed'] and added['route']['device'] == 'veth0' and added['diff']['before'] is None
    assert (None, 0, '10.79.0.1', None, 1) in routes(ns, 2)
    assert not run_module('route', v4)['changed']

    assert run_module('route', v6)['changed']
    assert [r for r in routes(ns, 10) if r[0] is None and r[2] == 'fd79::1']
    assert not run_module('route', v6)['changed']

    removed = run_module('route', dict(v4, state='absent'))
    assert removed['changed'] and not [r for r in routes(ns, 2) if r[0] is None]
    assert not run_module('route', dict(v4, state='absent'))['changed']


def test_route_gateway_change_is_replaced_in_place(cleanup):
    ns = lab(cleanup)
    spec = {'namespace': ns, 'dest': '10.80.0.0/16', 'gateway': '10.79.0.1'}
    run_module('route', spec)
    changed = run_module('route', dict(spec, gateway='10.79.0.9'), diff=True)
    assert changed['changed']
    assert changed['diff']['before']['gateway'] == '10.79.0.1'
    assert changed['diff']['after']['gateway'] == '10.79.0.9'
    assert [r[2] for r in routes(ns, 2) if r[0] == '10.80.0.0'] == ['10.79.0.9']


def test_route_by_device_and_blackhole(cleanup):
    ns = lab(cleanup)
    assert run_module('route', {'namespace': ns, 'dest': '10.81.0.0/24', 'device': 'veth0'})['changed']
    assert run_module('route', {'namespace': ns, 'dest': '10.82.0.0/24', 'type': 'blackhole'})['changed']
    assert not run_module('route', {'namespace': ns, 'dest': '10.82.0.0/24', 'type': 'blackhole'})['changed']
    assert ('10.82.0.0', 24, None, None, 6) in routes(ns, 2)


def test_route_bad_input_fails_with_the_reason(cleanup):
    ns = lab(cleanup)
    cases = [
        ({'namespace': ns, 'dest': 'default', 'gateway': '192.0.2.1'}, 'not reachable'),
        ({'namespace': ns, 'dest': '10.83.0.0/24', 'device': 'nope0'}, "device 'nope0' does not exist"),
        ({'namespace': cleanup('gone'), 'dest': 'default', 'gateway': '10.79.0.1'}, 'does not exist'),
        ({'namespace': ns, 'dest': '10.83.0.1/24', 'device': 'veth0'}, 'malformed route destination'),
        ({'namespace': ns, 'dest': 'default', 'gateway': 'fd79::1', 'family': 'ipv4'}, 'is ipv6'),
    ]
    for args, fragment in cases:
        result = run_module('route', args)
        assert result.get('failed'), (args, result)
        assert fragment in result['msg'], result['msg']
    assert not [r for r in routes(ns, 2) if r[0] is None]


def test_many_routes_in_one_call_converge_and_leave_others_alone(cleanup):
    ns = lab(cleanup)
    other = {'namespace': ns, 'dest': '192.0.2.0/24', 'gateway': '10.79.0.1'}
    assert run_module('route', other)['changed']
    table = [{'dest': '198.18.%d.0/24' % i, 'gateway': '10.79.0.1'} for i in range(200)]
    table.append({'dest': 'fd80::/64', 'gateway': 'fd79::1'})
    args = {'namespace': ns, 'routes': table}

    predicted = run_module('route', args, check=True)
    assert predicted['changed'] and predicted['routes_changed'] == 201
    assert not [r for r in routes(ns, 2) if r[0] and r[0].startswith('198.18.')]

    added = run_module('route', args)
    assert added['routes_changed'] == 201
    assert len([r for r in routes(ns, 2) if r[0] and r[0].startswith('198.18.')]) == 200
    assert [r for r in routes(ns, 10) if r[0] == 'fd80::']
    again = run_module('route', args)
    assert not again['changed'] and again['routes_changed'] == 0

    table[0]['gateway'] = '10.79.0.3'
    moved = run_module('route', args, diff=True)
    assert moved['routes_changed'] == 1 and moved['diff']['after'][0]['gateway'] == '10.79.0.3'

    removed = run_module('route', dict(args, state='absent'))
    assert removed['routes_changed'] == 201
    assert not [r for r in routes(ns, 2) if r[0] and r[0].startswith('198.18.')]
    assert ('192.0.2.0', 24, '10.79.0.1', None, 1) in routes(ns, 2), 'a route not listed stays'


def test_a_bad_entry_in_many_routes_fails_and_adds_none(cleanup):
    ns = lab(cleanup)
    result = run_module('route', {'namespace': ns, 'routes': [
        {'dest': '198.18.0.0/24', 'gateway': '10.79.0.1'}, {'dest': '198.18.1.0/24', 'gw': '10.79.0.1'}]})
    assert result['failed'] and "unknown keys gw" in result['msg'], result
    assert not [r for r in routes(ns, 2) if r[0] and r[0].startswith('198.18.')]
