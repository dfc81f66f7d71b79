from conftest import run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl, write_sysctl

KEY = 'net.ipv4.conf.all.forwarding'
# A new namespace inherits the host's IPv4 conf/* values (forwarding, rp_filter): a router or
# container host has forwarding at 1. The tests write the start values they assume.
OTHER = {'0': '1', '1': '0'}


def test_sysctl_is_set_per_namespace_and_restored(cleanup):
    ns = cleanup('ns')
    run_module('netns', {'name': ns})
    # The namespace starts where the host is and the module writes the other value, so a write
    # that reached the host instead shows whichever value the host has.
    start = read_sysctl(None, KEY)
    wanted = OTHER[start]
    write_sysctl(ns, KEY, start)

    checked = run_module('sysctl', {'namespace': ns, 'name': KEY, 'value': wanted}, check=True, diff=True)
    assert checked['changed'] and checked['diff']['after'] == {'value': wanted}
    assert read_sysctl(ns, KEY) == start

    assert run_module('sysctl', {'namespace': ns, 'name': KEY, 'value': wanted})['changed']
    assert read_sysctl(ns, KEY) == wanted
    assert read_sysctl(None, KEY) == start, 'the host must not change'
    assert not run_module('sysctl', {'namespace': ns, 'name': KEY, 'value': wanted})['changed']

    restored = run_module('sysctl', {'namespace': ns, 'name': KEY, 'state': 'absent'})
    assert restored['changed'] and restored['value'] == start
    assert read_sysctl(ns, KEY) == start
    assert not run_module('sysctl', {'namespace': ns, 'name': KEY, 'state': 'absent'})['changed']


def test_sysctl_ipv6_forwarding_in_a_namespace(cleanup):
    ns = cleanup('ns')
    run_module('netns', {'name': ns})
    assert run_module('sysctl', {'namespace': ns, 'name': 'net.ipv6.conf.all.forwarding', 'value': '1'})['changed']
    assert read_sysctl(ns, 'net.ipv6.conf.all.forwarding') == '1'


def test_sysctl_bad_input_fails_with_the_reason(cleanup):
    ns = cleanup('ns')
    run_module('netns', {'name': ns})
    cases = [
        ({'namespace': ns, 'name': 'net.ipv4.no_such_key', 'value': '1'}, "unknown sysctl key 'net.ipv4.no_such_key'"),
        ({'namespace': ns, 'name': 'kernel.hostname', 'value': 'x'}, 'not allowed'),
        ({'namespace': ns, 'name': 'net.ipv4.conf.all.forwarding', 'value': 'yes'}, 'refused value'),
        ({'namespace': cleanup('gone'), 'name': KEY, 'value': '1'}, 'does not exist'),
        ({'namespace': ns, 'name': KEY}, 'value'),
    ]
    for args, fragment in cases:
        result = run_module('sysctl', args)
        assert result.get('failed'), (args, result)
        assert fragment in result['msg'], result['msg']


def test_sysctls_in_several_namespaces_in_one_call_and_nothing_half_set_on_a_refusal(cleanup):
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns

    a, b = cleanup('a'), cleanup('b')
    create_netns(a)
    create_netns(b)
    for namespace in (a, b):
        for key in ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding', 'net.ipv4.conf.all.rp_filter'):
            write_sysctl(namespace, key, '0')
    entries = [{'name': 'net.ipv4.conf.all.forwarding', 'value': '1', 'namespace': a},
               {'name': 'net.ipv6.conf.all.forwarding', 'value': '1', 'namespace': a},
               {'name': 'net.ipv4.conf.all.forwarding', 'value': '1', 'namespace': b}]
    first = run_module('sysctl', {'sysctls': entries}, diff=True)
    assert first['changed'], first
    assert [read_sysctl(e['namespace'], e['name']) for e in entries] == ['1', '1', '1']
    assert first['diff']['after'] == {'%s:%s' % (e['namespace'], e['name']): '1' for e in entries}
    assert not run_module('sysctl', {'sysctls': entries})['changed']

    # The kernel refuses the last value: the keys written before it are put back.
    refused = run_module('sysctl', {'sysctls': [
        {'name': 'net.ipv4.conf.all.rp_filter', 'value': '2', 'namespace': b},
        {'name': 'net.ipv4.conf.all.forwarding', 'value': 'not-a-number', 'namespace': b}]})
    assert refused.get('failed') and 'refused' in refused['msg'], refused
    assert read_sysctl(b, 'net.ipv4.conf.all.rp_filter') == '0', 'the first key was put back'

    # An unknown key fails before anything is written.
    unknown = run_module('sysctl', {'sysctls': [
        {'name': 'net.ipv4.conf.all.rp_filter', 'value': '1', 'namespace': a},
        {'name': 'net.ipv4.conf.nosuchlink.forwarding', 'value': '1', 'namespace': a}]})
    assert unknown.get('failed') and 'unknown sysctl key' in unknown['msg'], unknown
    assert read_sysctl(a, 'net.ipv4.conf.all.rp_filter') == '0'

    gone = run_module('sysctl', {'sysctls': entries, 'state': 'absent'})
    assert gone['changed'] and [read_sysctl(e['namespace'], e['name']) for e in entries] == ['0', '0', '0']
