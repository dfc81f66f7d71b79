import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import (
    routes_differ,
    same_identity,
    wanted_route,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import (
    check_key,
    key_path,
    normalize_value,
)


def route(**kw):
    base = {'dest': 'default', 'gateway': None, 'device': None, 'family': None, 'metric': None,
            'table': None, 'type': 'unicast', 'namespace': 'uno', 'state': 'present'}
    base.update(kw)
    return base


def test_default_route_takes_its_family_from_the_gateway():
    wanted = wanted_route(route(gateway='fd00:1::1'))
    assert (wanted['dest'], wanted['family'], wanted['metric']) == ('::/0', 'ipv6', 1024)


def test_ipv4_route_gets_metric_zero_and_main_table():
    wanted = wanted_route(route(dest='10.0.2.0/24', device='veth0'))
    assert (wanted['family'], wanted['metric'], wanted['table']) == ('ipv4', 0, 254)


@pytest.mark.parametrize('kw, fragment', [
    ({'gateway': 'fd00::1', 'family': 'ipv4'}, 'gateway fd00::1 is ipv6'),
    ({'dest': '10.0.0.0/24'}, 'needs a gateway, a device'),
    ({'dest': '10.0.0.0/24', 'type': 'blackhole', 'gateway': '10.0.0.1'}, 'takes neither'),
    ({'gateway': '10.0.0.300'}, 'malformed gateway'),
    ({'dest': 'nonsense', 'device': 'x'}, 'malformed route destination'),
    ({'dest': '10.0.0.0/24', 'device': 'a' * 16}, 'at most 15'),
])
def test_bad_routes_are_refused(kw, fragment):
    with pytest.raises(XdpkitError, match=fragment):
        wanted_route(route(**kw))


def test_route_identity_ignores_gateway():
    a = wanted_route(route(gateway='10.0.0.1'))
    b = wanted_route(route(gateway='10.0.0.9'))
    assert same_identity(a, b) and routes_differ(a, b)


def test_route_without_device_does_not_compare_the_kernels_choice():
    wanted = wanted_route(route(gateway='10.0.0.1'))
    current = dict(wanted, device='veth0')
    assert not routes_differ(current, wanted)


@pytest.mark.parametrize('key', [
    'kernel.hostname', 'net', 'net..x', 'net.ipv4/../../x', 'vm.swappiness', 'net.ipv4.ip forward',
])
def test_keys_outside_net_are_refused(key):
    with pytest.raises(XdpkitError, match='not allowed'):
        check_key(key)


def test_key_maps_to_proc_path():
    assert key_path(check_key('net.ipv4.conf.all.forwarding')) == '/proc/sys/net/ipv4/conf/all/forwarding'


def test_multi_value_sysctls_compare_word_by_word():
    assert normalize_value('4096\t131072  6291456\n') == normalize_value('4096 131072 6291456')
