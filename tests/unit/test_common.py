import ipaddress

import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    normalize_mac,
    parse_interface_address,
    parse_network,
    validate_ifname,
    validate_netns_name,
)


@pytest.mark.parametrize('name, fragment', [
    ('', 'empty'),
    ('a' * 256, 'limit is 255'),
    ('a/b', "contains '/'"),
    ('..', 'not allowed'),
    ('-x', "starts with '-'"),
])
def test_bad_namespace_names_are_explained(name, fragment):
    assert fragment in validate_netns_name(name)


def test_plain_namespace_name_is_accepted():
    assert validate_netns_name('uno') is None


@pytest.mark.parametrize('name, fragment', [
    ('', 'empty'),
    ('a' * 16, 'at most 15'),
    ('a/b', "'/'"),
    ('a b', 'whitespace'),
])
def test_bad_interface_names_are_explained(name, fragment):
    assert fragment in validate_ifname(name)


def test_fifteen_character_interface_name_is_accepted():
    assert validate_ifname('a' * 15) is None


@pytest.mark.parametrize('given, expected', [
    ('02:00:00:00:00:0A', '02:00:00:00:00:0a'),
    ('02-00-00-00-00-0a', '02:00:00:00:00:0a'),
    ('0200.0000.000a'.replace('.', ''), '02:00:00:00:00:0a'),
])
def test_macs_are_normalised_to_lower_case_colons(given, expected):
    assert normalize_mac(given) == expected


@pytest.mark.parametrize('bad', ['02:00:00:00:00', '02:00:00:00:00:0g', '02:00-00:00:00:00', 'x', 42])
def test_malformed_macs_are_refused(bad):
    with pytest.raises(XdpkitError, match='malformed MAC'):
        normalize_mac(bad)


def test_addresses_need_a_prefix_length():
    with pytest.raises(XdpkitError, match='CIDR'):
        parse_interface_address('10.0.0.1')


def test_malformed_address_is_refused():
    with pytest.raises(XdpkitError, match='malformed address'):
        parse_interface_address('10.0.0.300/24')


def test_ipv6_interface_address_parses():
    assert parse_interface_address('FD00::1/64') == ipaddress.ip_interface('fd00::1/64')


def test_default_destination_depends_on_family():
    assert str(parse_network('default', 'ipv6')) == '::/0'
    with pytest.raises(XdpkitError, match='family'):
        parse_network('default', None)


def test_destination_with_host_bits_is_refused():
    with pytest.raises(XdpkitError, match='malformed route destination'):
        parse_network('10.0.0.1/24', 'ipv4')
