"""The lab module: a whole lab (namespaces, veth pairs, neighbours, sysctls, routes) in one
module run, checked against the kernel, with traffic through it; and what a failure half way
takes back."""

import os

from conftest import in_ns, run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns


def lab_args(names, **extra):
    """A router namespace R between namespaces A and B, routed by R's kernel."""
    r, a, b = names('r'), names('a'), names('b')
    args = {
        'namespaces': [r, a, b],
        'links': [
            {'name': 'pa', 'namespace': r, 'addresses': ['10.71.1.1/24', 'fd00:71:1::1/64'],
             'peer': {'name': 'veth0', 'namespace': a, 'addresses': ['10.71.1.2/24', 'fd00:71:1::2/64']}},
            {'name': 'pb', 'namespace': r, 'addresses': ['10.71.2.1/24', 'fd00:71:2::1/64'],
             'peer': {'name': 'veth0', 'namespace': b, 'addresses': ['10.71.2.2/24', 'fd00:71:2::2/64']}},
        ],
        'neighbours': [{'namespace': a, 'device': 'veth0', 'address': '10.71.1.99', 'mac': '02:00:00:00:71:99'},
                       # The MAC the kernel gives r's port pb when the lab makes it.
                       {'namespace': b, 'device': 'veth0', 'address': '10.71.2.98', 'mac_of': r + '/pb'}],
        'sysctls': [{'namespace': r, 'name': 'net.ipv4.conf.all.forwarding', 'value': '1'},
                    {'namespace': r, 'name': 'net.ipv6.conf.all.forwarding', 'value': '1'}],
        'routes': [{'namespace': a, 'dest': 'default', 'gateway': '10.71.1.1'},
                   {'namespace': a, 'dest': 'default', 'gateway': 'fd00:71:1::1'},
                   {'namespace': b, 'dest': 'default', 'gateway': '10.71.2.1'},
                   {'namespace': b, 'dest': 'default', 'gateway': 'fd00:71:2::1'}],
    }
    args.update(extra)
    return args


def ours(names):
    return sorted(ns for ns in list_netns() if ns.startswith(names.prefix))


def test_lab_check_build_rerun_traffic_and_remove(cleanup):
    names = cleanup
    args = lab_args(names)
    r, a, b = args['namespaces']

    checked = run_module('lab', args, check=True, diff=True)
    assert checked['changed'] and not checked.get('failed'), checked
    assert ours(names) == [], 'check mode created something'
    # The scenario roles plan with the interfaces check mode predicts.
    assert checked['interfaces'][r + '/pa']['ifindex'] == 0
    assert checked['interfaces'][a + '/veth0']['predicted']
    assert 'namespaces' in checked['diff']['after']

    made = run_module('lab', args, diff=True)
    assert made['changed'] and not made.get('failed'), made
    assert ours(names) == sorted([r, a, b])
    pa = made['interfaces'][r + '/pa']
    assert pa['ifindex'] > 0 and pa['addresses'] == ['10.71.1.1/24', 'fd00:71:1::1/64']
    assert made['routes_changed'] == 4
    assert {(s['namespace'], s['name'], s['value']) for s in made['sysctls']} == {
        (r, 'net.ipv4.conf.all.forwarding', '1'), (r, 'net.ipv6.conf.all.forwarding', '1')}
    # The MAC the module reports is the kernel's.
    with iproute(a) as ipr:
        assert made['interfaces'][a + '/veth0']['mac'] == get_link(ipr, 'veth0')['mac']
    assert '02:00:00:00:71:99' in in_ns(a, 'ip', 'neigh', 'show', 'dev', 'veth0').stdout
    pb_mac = made['interfaces'][r + '/pb']['mac']
    assert '10.71.2.98 lladdr %s PERMANENT' % pb_mac in in_ns(b, 'ip', 'neigh', 'show', 'dev', 'veth0').stdout

    # Real traffic through the router namespace's kernel, both families.
    assert in_ns(a, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.71.2.2', check=False).returncode == 0
    assert in_ns(a, 'ping', '-c', '2', '-i', '0.2', '-W', '2', 'fd00:71:2::2', check=False).returncode == 0

    again = run_module('lab', args)
    assert not again['changed'] and not again.get('failed'), again
    assert again['interfaces'][r + '/pa']['ifindex'] == pa['ifindex']
    assert not run_module('lab', args, check=True)['changed']

    # A drifted address is put back, with the default route and the neighbour entry the kernel
    # dropped with it, and only those are reported.
    in_ns(b, 'ip', 'addr', 'del', '10.71.2.2/24', 'dev', 'veth0')
    fixed = run_module('lab', args, diff=True)
    assert fixed['changed'] and sorted(fixed['diff']['after']) == ['links', 'neighbours', 'routes'], fixed['diff']
    assert fixed['routes_changed'] == 1 and len(fixed['diff']['after']['links']) == 1
    assert not run_module('lab', args)['changed']

    gone_check = run_module('lab', dict(args, state='absent'), check=True)
    assert gone_check['changed'] and ours(names) == sorted([r, a, b])
    gone = run_module('lab', dict(args, state='absent'))
    assert gone['changed'] and not gone.get('failed'), gone
    assert ours(names) == []
    assert not os.path.exists('/run/xdpkit/lock@' + r)
    assert not run_module('lab', dict(args, state='absent'))['changed']


def test_lab_failing_half_way_takes_back_what_it_made(cleanup):
    names = cleanup
    # The kernel refuses the last route (its gateway is on no connected network), after the
    # namespaces, the links and the sysctls were made.
    args = lab_args(names)
    args['routes'] = args['routes'] + [{'namespace': args['namespaces'][2], 'dest': '10.99.0.0/16',
                                        'gateway': '10.98.0.1'}]
    failed = run_module('lab', args)
    assert failed.get('failed'), failed
    assert '10.99.0.0/16' in failed['msg'] and 'not reachable' in failed['msg'], failed['msg']
    assert ours(names) == [], 'the namespaces it made must go again'


def test_lab_bad_input_fails_before_anything_is_made(cleanup):
    names = cleanup
    for bad, fragment in (
        ({'neighbours': [{'namespace': names('a'), 'device': 'veth0', 'address': '10.71.1.99', 'mac': 'nope'}]},
         'nope'),
        ({'routes': [{'namespace': names('a'), 'dest': '10.71.300.0/24', 'gateway': '10.71.1.1'}]}, '10.71.300.0'),
        ({'sysctls': [{'namespace': names('r'), 'name': 'net.ipv4.no_such_key', 'value': '1'}]}, 'no_such_key'),
    ):
        result = run_module('lab', lab_args(names, **bad))
        assert result.get('failed') and fragment in result['msg'], (bad, result)
        assert ours(names) == [], (bad, 'something was left')
