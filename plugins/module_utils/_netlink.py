# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 1, kernel interfaces] Netlink (pyroute2) access to links and addresses in any namespace.

Every read returns plain dicts and ipaddress objects so that the comparisons in the
managers are pure functions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import importlib.machinery
import importlib.util
import ipaddress
import socket
import sys
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns


def _defer_pyroute2_init():
    """Import pyroute2's package without running its __init__ until a top-level name is asked for.

    pyroute2's __init__ scans every installed distribution's entry points and imports all of its
    APIs (ndb, ipdb, nftables, ...): about a third of a module start here, paid on every task,
    while the modules only need IPRoute and the netlink messages. The package's own __init__ still
    runs, once, the first time anything reads an attribute the package does not have yet
    (`from pyroute2 import IPRoute` anywhere, by us or by pyroute2 itself), so nothing changes for
    code that uses the package as usual.
    """
    if 'pyroute2' in sys.modules:
        return
    spec = importlib.util.find_spec('pyroute2')
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)

    def finish_init(name):
        # `from pyroute2 import config` asks for a submodule: the import system loads it.
        if importlib.machinery.PathFinder.find_spec('pyroute2.' + name, package.__path__) is not None:
            raise AttributeError(name)
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = finish_init
    sys.modules['pyroute2'] = package


try:
    _defer_pyroute2_init()
    try:
        from pyroute2.iproute.linux import IPRoute
    except ImportError:  # another pyroute2 layout: the package's own export
        from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised by the sanity import test
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = _exc
    IPRoute = None

    class NetlinkError(Exception):
        code = 0

    class NetlinkDumpInterrupted(Exception):
        pass

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_SCOPE_LINK = 253


@contextlib.contextmanager
def iproute(netns=None):
    """An IPRoute socket bound to `netns` (None = the caller's namespace)."""
    with in_netns(netns):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def dump(request, *args, **kwargs):
    """A netlink dump as a list, asked again when the kernel says it was interrupted (links,
    addresses or routes changed during it, e.g. a namespace being torn down beside us)."""
    for _attempt in range(4):
        try:
            return list(request(*args, **kwargs))
        except NetlinkDumpInterrupted:
            time.sleep(0.05)
    return list(request(*args, **kwargs))


def _link_kind(msg):
    info = msg.get_attr('IFLA_LINKINFO')
    return info.get_attr('IFLA_INFO_KIND') if info else None


def link_to_dict(msg):
    return {
        'ifindex': msg['index'],
        'name': msg.get_attr('IFLA_IFNAME'),
        'kind': _link_kind(msg),
        'mtu': msg.get_attr('IFLA_MTU'),
        'mac': (msg.get_attr('IFLA_ADDRESS') or '').lower(),
        'state': 'up' if msg['flags'] & IFF_UP else 'down',
        # For a veth, IFLA_LINK is the peer's ifindex (in the peer's namespace).
        'link': msg.get_attr('IFLA_LINK'),
    }


def get_link(ipr, name):
    """The link called exactly `name` in ipr's namespace, as a dict, or None."""
    try:
        msgs = ipr.link('get', ifname=name)
    except NetlinkError as exc:
        if exc.code == 19:  # ENODEV
            return None
        raise
    return link_to_dict(msgs[0]) if msgs else None


def get_link_by_index(ipr, ifindex):
    try:
        msgs = ipr.link('get', index=ifindex)
    except NetlinkError as exc:
        if exc.code == 19:
            return None
        raise
    return link_to_dict(msgs[0]) if msgs else None


def link_names(ipr):
    return sorted(m.get_attr('IFLA_IFNAME') for m in dump(ipr.get_links))


def require_link(ipr, name, netns):
    link = get_link(ipr, name)
    if link is None:
        raise MissingDependency("interface '%s' does not exist in %s (existing: %s)" % (
            name, describe_ns(netns), ', '.join(link_names(ipr))))
    return link


def get_addresses(ipr, ifindex):
    """Addresses on a link as a set of ipaddress interfaces.

    IPv6 link-local addresses are left out: the kernel assigns them itself, so an
    'exact' address list must neither fight nor report them.
    """
    found = set()
    for msg in dump(ipr.get_addr, index=ifindex):
        if msg['scope'] == RT_SCOPE_LINK and msg['family'] == socket.AF_INET6:
            continue
        addr = msg.get_attr('IFA_ADDRESS') or msg.get_attr('IFA_LOCAL')
        found.add(ipaddress.ip_interface('%s/%d' % (addr, msg['prefixlen'])))
    return found


def add_address(ipr, ifindex, iface):
    kwargs = dict(index=ifindex, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    if iface.version == 6:
        # Skip duplicate address detection: a lab address is ours by construction, and DAD
        # would hold the address tentative (unusable) for a second or two after each run.
        kwargs['flags'] = IFA_F_NODAD
        kwargs['family'] = socket.AF_INET6
    else:
        kwargs['family'] = socket.AF_INET
        if iface.network.prefixlen < 31:
            kwargs['broadcast'] = str(iface.network.broadcast_address)
    ipr.addr('add', **kwargs)


def del_address(ipr, ifindex, iface):
    ipr.addr('del', index=ifindex, address=str(iface.ip), prefixlen=iface.network.prefixlen,
             family=socket.AF_INET if iface.version == 4 else socket.AF_INET6)


# -- GRO and TX checksumming through the ethtool ioctl ------------------------------------------------------------
# pyroute2 0.7 has no ethtool-netlink; the legacy ioctl is small and works in any kernel.
SIOCETHTOOL = 0x8946
ETHTOOL_GGRO = 0x2B
ETHTOOL_SGRO = 0x2C
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17


def _ethtool_value(namespace, ifname, cmd, data=0):
    import ctypes
    import fcntl
    import struct as _struct

    value = ctypes.create_string_buffer(_struct.pack('=II', cmd, data), 8)
    ifreq = _struct.pack('16sP16x', ifname.encode(), ctypes.addressof(value))
    with in_netns(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    finally:
        sock.close()
    return _struct.unpack('=II', value.raw)[1]


def get_gro(namespace, ifname):
    return bool(_ethtool_value(namespace, ifname, ETHTOOL_GGRO))


def set_gro(namespace, ifname, enabled):
    _ethtool_value(namespace, ifname, ETHTOOL_SGRO, 1 if enabled else 0)


def get_tx_checksum(namespace, ifname):
    return bool(_ethtool_value(namespace, ifname, ETHTOOL_GTXCSUM))


def set_tx_checksum(namespace, ifname, enabled):
    _ethtool_value(namespace, ifname, ETHTOOL_STXCSUM, 1 if enabled else 0)
