import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import (
    address_changes,
    converged_view,
    wanted_end,
)


def spec(**kw):
    base = {'name': 'uno', 'namespace': None, 'addresses': None, 'mtu': None, 'mac': None, 'link_state': 'up'}
    base.update(kw)
    return base


def view(**kw):
    base = {'name': 'uno', 'namespace': None, 'ifindex': 7, 'mtu': 1500, 'mac': '02:00:00:00:00:01',
            'link_state': 'up', 'addresses': ['10.0.0.1/24']}
    base.update(kw)
    return base


def test_exact_mode_drops_unlisted_addresses():
    after = converged_view(view(), wanted_end(spec(addresses=['10.0.9.1/24'])), 'exact')
    assert after['addresses'] == ['10.0.9.1/24']


def test_append_mode_keeps_existing_addresses():
    after = converged_view(view(), wanted_end(spec(addresses=['10.0.9.1/24'])), 'append')
    assert after['addresses'] == ['10.0.0.1/24', '10.0.9.1/24']


def test_unmanaged_addresses_stay_as_they_are():
    after = converged_view(view(), wanted_end(spec()), 'exact')
    assert after == view()


def test_same_address_written_differently_is_no_change():
    before = view(addresses=['fd00::1/64'])
    after = converged_view(before, wanted_end(spec(addresses=['FD00:0::1/64'])), 'exact')
    assert address_changes(before, after) == ([], [])


def test_address_changes_lists_adds_and_removals():
    before = view(addresses=['10.0.0.1/24', 'fd00::1/64'])
    after = view(addresses=['10.0.0.1/24', '10.0.1.1/24'])
    added, removed = address_changes(before, after)
    assert [str(a) for a in added] == ['10.0.1.1/24']
    assert [str(a) for a in removed] == ['fd00::1/64']


def test_new_end_starts_from_kernel_defaults():
    after = converged_view(None, wanted_end(spec(mac='02:AA:00:00:00:01', addresses=['10.0.0.1/24'])), 'exact')
    assert after['mac'] == '02:aa:00:00:00:01'
    assert after['mtu'] == 1500
    assert after['link_state'] == 'up'


@pytest.mark.parametrize('kw, fragment', [
    ({'name': 'a' * 16}, 'at most 15'),
    ({'mtu': 10}, 'outside 68..65535'),
    ({'mac': 'zz'}, 'malformed MAC'),
    ({'addresses': ['10.0.0.1']}, 'CIDR'),
    ({'namespace': 'a/b'}, "contains '/'"),
])
def test_bad_end_parameters_are_refused(kw, fragment):
    with pytest.raises(XdpkitError, match=fragment):
        wanted_end(spec(**kw))
