# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] A pinned map's entries as the text a user writes and the bytes the
kernel keeps: ports (interface names or ifindexes, resolved in one namespace) and MAC addresses,
and what an entry's text can be checked for before the map that will hold it exists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    XdpkitError,
    describe_ns,
    normalize_mac,
    validate_ifname,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    get_link,
    get_link_by_index,
    link_names,
)


class PortCodec:
    """Interface names <-> ifindex bytes, resolved in one namespace."""

    kind = 'port'

    def __init__(self, ipr, namespace):
        self.ipr = ipr
        self.namespace = namespace

    def encode(self, text, what):
        if isinstance(text, int) or (isinstance(text, str) and text.isdigit()):
            return struct.pack('=I', int(text))
        link = get_link(self.ipr, str(text)) if validate_ifname(str(text)) is None else None
        if link is None:
            raise MissingDependency("%s: interface '%s' does not exist in %s (existing: %s)" % (
                what, text, describe_ns(self.namespace), ', '.join(link_names(self.ipr))))
        return struct.pack('=I', link['ifindex'])

    def decode(self, raw):
        ifindex = struct.unpack('=I', raw[:4])[0]
        link = get_link_by_index(self.ipr, ifindex)
        return link['name'] if link else str(ifindex)


class MacCodec:
    kind = 'mac'

    @staticmethod
    def encode(text, what):
        try:
            return bytes.fromhex(normalize_mac(text).replace(':', ''))
        except XdpkitError as exc:
            raise XdpkitError('%s: %s' % (what, exc))

    @staticmethod
    def decode(raw):
        return ':'.join('%02x' % b for b in raw[:6])


def entry_kind(value):
    """What an entry's key or value names: 'ifindex', 'mac', 'interface' (a valid interface name),
    or None for none of them."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return 'ifindex'
    try:
        normalize_mac(str(value))
        return 'mac'
    except XdpkitError:
        pass
    return 'interface' if validate_ifname(str(value)) is None else None


def check_entry_text(value, ipr, namespace, what):
    """What an entry can be checked for before its map exists (the program that declares it is
    not loaded yet): an ifindex, an interface in the namespace, or a MAC address."""
    kind = entry_kind(value)
    text = str(value)
    if kind is None:
        raise XdpkitError("%s: %r is neither an interface name nor a MAC address" % (what, text))
    if kind == 'interface' and get_link(ipr, text) is None:
        # Missing, not malformed: check mode may not have made it (an earlier task of the run would).
        raise MissingDependency("%s: %r is neither an interface in %s (existing: %s) nor a MAC address" % (
            what, text, describe_ns(namespace), ', '.join(link_names(ipr))))
