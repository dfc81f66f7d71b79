# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] Validation and errors shared by every xdpkit module.

Pure Python, no Ansible and no pyroute2: the unit tests import this directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import ipaddress
import re

# IFNAMSIZ is 16 including the terminating NUL.
IFNAME_MAX = 15
# /run/netns/NAME is a file name: NAME_MAX bytes.
NETNS_NAME_MAX = 255

_MAC_RE = re.compile(r'^[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$')


_LIBC = []


def libc():
    """The C library, loaded once for the whole library (bpf(2), mount, setns, statfs)."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True))
    return _LIBC[0]


class XdpkitError(Exception):
    """An error whose message is shown to the user as the module's `msg`."""


class MissingDependency(XdpkitError):
    """Something an earlier task makes (a namespace, an interface) is not there. For real that
    is an error; in check mode the earlier task only predicted it, so the module predicts too."""


def validate_netns_name(name):
    """Return None when `name` is a usable namespace name, else the reason."""
    if name is None or name == '':
        return 'namespace name is empty'
    if len(name.encode('utf-8')) > NETNS_NAME_MAX:
        return 'namespace name is %d bytes long; the limit is %d' % (len(name.encode('utf-8')), NETNS_NAME_MAX)
    if '/' in name or '\0' in name:
        return "namespace name '%s' contains '/' or NUL; it must be a plain file name under /run/netns" % name
    if name in ('.', '..'):
        return "namespace name '%s' is not allowed" % name
    if name.startswith('-'):
        return "namespace name '%s' starts with '-'" % name
    return None


def check_netns_name(name):
    reason = validate_netns_name(name)
    if reason:
        raise XdpkitError(reason)
    return name


def validate_ifname(name):
    """Return None when `name` is a usable interface name, else the reason."""
    if not name:
        return 'interface name is empty'
    if len(name.encode('utf-8')) > IFNAME_MAX:
        return "interface name '%s' is %d characters long; Linux allows at most %d" % (
            name, len(name.encode('utf-8')), IFNAME_MAX)
    if '/' in name or ':' in name or any(c.isspace() for c in name):
        return "interface name '%s' contains '/', ':' or whitespace" % name
    if name in ('.', '..'):
        return "interface name '%s' is not allowed" % name
    return None


def check_ifname(name):
    reason = validate_ifname(name)
    if reason:
        raise XdpkitError(reason)
    return name


def normalize_mac(mac):
    """Return `mac` as lower-case colon-separated hex, or raise XdpkitError."""
    if not isinstance(mac, str) or not _MAC_RE.match(mac.strip()):
        raise XdpkitError("malformed MAC address '%s': expected six hex octets such as 02:00:00:00:00:01" % (mac,))
    digits = re.sub(r'[^0-9a-fA-F]', '', mac).lower()
    if int(digits[:2], 16) & 1:
        raise XdpkitError("MAC address '%s' is a multicast address; an interface needs a unicast one "
                          "(first octet even, e.g. 02:...)" % mac)
    if digits == '0' * 12:
        raise XdpkitError("MAC address '%s' is all zeros; give a unicast address such as 02:00:00:00:00:01" % mac)
    return ':'.join(digits[i:i + 2] for i in range(0, 12, 2))


def parse_interface_address(text):
    """Parse '10.0.0.1/24' or '2001:db8::1/64' into an ipaddress interface object.

    A bare address without a prefix length is refused: the prefix decides the connected
    route, and guessing /32 or /128 silently breaks forwarding labs.
    """
    if not isinstance(text, str) or '/' not in text:
        raise XdpkitError("malformed address '%s': expected CIDR notation such as 10.0.0.1/24 or fd00::1/64" % (text,))
    try:
        return ipaddress.ip_interface(text.strip())
    except ValueError as exc:
        raise XdpkitError("malformed address '%s': %s" % (text, exc))


def parse_ip(text, what='address'):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise XdpkitError("malformed %s '%s': expected an IPv4 or IPv6 address" % (what, text))


def parse_network(text, family=None):
    """Parse a route destination: 'default' or a CIDR prefix (host bits must be zero)."""
    if text == 'default':
        if family is None:
            raise XdpkitError("destination 'default' needs the address family: give a gateway or family: ipv4|ipv6")
        return ipaddress.ip_network('0.0.0.0/0' if family == 'ipv4' else '::/0')
    try:
        return ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as exc:
        raise XdpkitError("malformed route destination '%s': %s" % (text, exc))


def family_of(ip_obj):
    return 'ipv4' if ip_obj.version == 4 else 'ipv6'


def describe_ns(ns):
    return "namespace '%s'" % ns if ns else 'the host namespace'
