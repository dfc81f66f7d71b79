import subprocess

from conftest import in_ns, run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_addresses, get_link, iproute


def read_end(name, ns=None):
    with iproute(ns) as ipr:
        link = get_link(ipr, name)
        if link:
            link['addresses'] = sorted(str(a) for a in get_addresses(ipr, link['ifindex']))
        return link


def pair(names, **extra):
    args = {
        'name': names('h'),
        'addresses': ['10.77.0.1/24', 'fd77::1/64'],
        'peer': {'name': 'veth0', 'namespace': names('ns'), 'addresses': ['10.77.0.2/24', 'fd77::2/64']},
    }
    args.update(extra)
    return args


def test_veth_create_rerun_change_and_remove(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    args = pair(names, mtu=1400, mac='02:77:00:00:00:01')

    checked = run_module('veth', args, check=True)
    assert checked['changed'] and read_end(names('h')) is None

    created = run_module('veth', args, diff=True)
    assert created['changed'], created
    host = read_end(names('h'))
    inside = read_end('veth0', names('ns'))
    assert host['kind'] == 'veth' and host['mtu'] == 1400 and host['mac'] == '02:77:00:00:00:01'
    assert host['addresses'] == ['10.77.0.1/24', 'fd77::1/64']
    assert inside['addresses'] == ['10.77.0.2/24', 'fd77::2/64'] and inside['state'] == 'up'
    assert created['interface']['ifindex'] == host['ifindex']
    assert created['diff']['before']['interface'] is None

    assert not run_module('veth', args)['changed']

    # The pair really passes traffic, IPv6 included (no DAD delay).
    subprocess.run(['ping', '-c', '1', '-W', '2', '10.77.0.2'], check=True, capture_output=True)
    in_ns(names('ns'), 'ping', '-c', '1', '-W', '2', 'fd77::1')

    args['addresses'] = ['10.77.1.1/24']
    changed = run_module('veth', args, diff=True)
    assert changed['changed']
    assert changed['diff']['before']['interface']['addresses'] == ['10.77.0.1/24', 'fd77::1/64']
    assert changed['diff']['after']['interface']['addresses'] == ['10.77.1.1/24']
    assert read_end(names('h'))['addresses'] == ['10.77.1.1/24']

    appended = run_module('veth', dict(args, addresses=['10.77.2.1/24'], address_mode='append'))
    assert appended['changed']
    assert read_end(names('h'))['addresses'] == ['10.77.1.1/24', '10.77.2.1/24']

    args['state'] = 'absent'
    assert run_module('veth', args, check=True)['changed'] and read_end(names('h')) is not None
    assert run_module('veth', args)['changed']
    assert read_end(names('h')) is None and read_end('veth0', names('ns')) is None
    assert not run_module('veth', args)['changed']


def test_veth_removing_from_the_peer_side_removes_both(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    run_module('veth', pair(names))
    swapped = {'name': 'veth0', 'namespace': names('ns'), 'peer': {'name': names('h')}, 'state': 'absent'}
    assert run_module('veth', swapped)['changed']
    assert read_end(names('h')) is None


def test_veth_between_two_namespaces(cleanup):
    names = cleanup
    for ns in (names('a'), names('b')):
        run_module('netns', {'name': ns})
    args = {'name': 'left', 'namespace': names('a'), 'addresses': ['10.78.0.1/30'],
            'peer': {'name': 'right', 'namespace': names('b'), 'addresses': ['10.78.0.2/30']}}
    assert run_module('veth', args)['changed']
    assert not run_module('veth', args)['changed']
    in_ns(names('a'), 'ping', '-c', '1', '-W', '2', '10.78.0.2')


def test_veth_check_mode_changes_nothing_on_an_existing_pair(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    run_module('veth', pair(names))
    before = read_end(names('h'))
    result = run_module('veth', pair(names, mtu=1300, addresses=['10.77.5.1/24']), check=True, diff=True)
    assert result['changed'] and result['diff']['after']['interface']['mtu'] == 1300
    assert read_end(names('h')) == before


def test_veth_bad_input_fails_and_leaves_nothing(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    cases = [
        (pair(names, name='x' * 16), 'at most 15'),
        (pair(names, mac='02:00:00:00:00'), 'malformed MAC'),
        (pair(names, mac='01:00:5e:00:00:01'), 'multicast'),
        (pair(names, addresses=['10.0.0.1']), 'CIDR'),
        (pair(names, addresses=['10.0.0.300/24']), 'malformed address'),
        (dict(pair(names), peer={'name': 'veth0', 'namespace': names('gone')}),
         "namespace '%s' does not exist" % names('gone')),
        (dict(pair(names), peer={'name': 'veth0', 'namespace': 'a/b'}), "contains '/'"),
    ]
    for args, fragment in cases:
        result = run_module('veth', args)
        assert result.get('failed'), (args, result)
        assert fragment in result['msg'], result['msg']
        assert read_end(names('h')) is None


def test_veth_refuses_a_name_taken_by_another_kind_of_link(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    with iproute() as ipr:
        ipr.link('add', ifname=names('h'), kind='bridge')
    result = run_module('veth', pair(names))
    assert result.get('failed')
    assert "'%s' already exists in the host namespace and is a bridge device" % names('h') in result['msg']
    assert read_end('veth0', names('ns')) is None, 'no half-made pair'


def test_veth_refuses_a_peer_name_already_taken(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    with iproute(names('ns')) as ipr:
        ipr.link('add', ifname='veth0', kind='bridge')
    result = run_module('veth', pair(names))
    assert result.get('failed') and 'veth0' in result['msg'] and 'bridge' in result['msg']
    assert read_end(names('h')) is None


def test_veth_failure_after_creation_removes_the_new_pair(cleanup):
    names = cleanup
    run_module('netns', {'name': names('ns')})
    # IPv6 off in the peer's namespace: the pair is created, then adding the peer's IPv6
    # address fails inside the kernel, after the create.
    run_module('sysctl', {'namespace': names('ns'), 'name': 'net.ipv6.conf.default.disable_ipv6', 'value': '1'})
    result = run_module('veth', pair(names))
    assert result.get('failed'), result
    assert 'adding address fd77::2/64' in result['msg']
    assert read_end(names('h')) is None and read_end('veth0', names('ns')) is None


def test_veth_gro_on_the_peer_converges(cleanup):
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_gro
    names = cleanup
    run_module('netns', {'name': names('ns')})
    args = pair(names)
    args['peer'] = dict(args['peer'], gro=True)
    assert run_module('veth', args)['changed']
    assert get_gro(names('ns'), 'veth0') is True
    assert not run_module('veth', args)['changed']
    args['peer']['gro'] = False
    result = run_module('veth', args, diff=True)
    assert result['changed'] and result['diff']['before']['peer']['gro'] is True
    assert get_gro(names('ns'), 'veth0') is False
