from conftest import run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl

KEY = 'net.ipv4.conf.all.forwarding'


def test_sysctl_is_set_per_namespace_and_restored(cleanup):
    ns = cleanup('ns')
    run_module('netns', {'name': ns})
    host_before = read_sysctl(None, KEY)
    assert read_sysctl(ns, KEY) == '0'

    checked = run_module('sysctl', {'namespace': ns, 'name': KEY, 'value': '1'}, check=True, diff=True)
    assert checked['changed'] and checked['diff']['after'] == {'value': '1'}
    assert read_sysctl(ns, KEY) == '0'

    assert run_module('sysctl', {'namespace': ns, 'name': KEY, 'value': '1'})['changed']
    assert read_sysctl(ns, KEY) == '1'
    assert read_sysctl(None, KEY) == host_before, 'the host must not change'
    assert not run_module('sysctl', {'namespace': ns, 'name': KEY, 'value': '1'})['changed']

    restored = run_module('sysctl', {'namespace': ns, 'name': KEY, 'state': 'absent'})
    assert restored['changed'] and restored['value'] == '0'
    assert read_sysctl(ns, KEY) == '0'
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
