# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] The port table: what the kernel knows about an ingress port that an XDP program cannot
ask it (the port's MAC, its IPv4 rp_filter and accept_local), written by xdp_program for
every port it attaches a program to whose source declares XDPKIT_PORT_TABLE and kept current
by the keeper; and the egress ports (XDPKIT_EGRESS_PORTS), the DEVMAP_HASH of the ports a
program is attached to.

The values are the kernel's effective ones (IN_DEV_MAXCONF / IN_DEV_ORCONF), so that the
program's source validation decides as fib_validate_source() would. Each entry carries a lease,
`vouched_until` (CLOCK_MONOTONIC ns, bpf_ktime_get_ns()'s clock): whoever wrote the entry read
the kernel's values then and vouches for them until that time; the program trusts the entry
no longer than that. The entry gives the same time in jiffies too (`vouched_until_jiffies`), for
routers that read the jiffies lease clock (_lease_clock).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _compile, _lease_clock
# The entry layout lives with the lease reader, which the read-only modules use too.
from ansible_collections.xdpkit.forwarding.plugins.module_utils._lease import (
    PORT_FORMAT,
    PORT_SIZE,
    decode,
    is_port_table,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, describe_ns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns

FACTS = ('mac', 'rp_filter', 'accept_local')
# How long an entry is trusted after its values were read. The keeper confirms every entry
# several times within it, so only a keeper that is gone lets it run out.
LEASE_SECONDS = 1.5


def lease_until(seconds=LEASE_SECONDS):
    # time.monotonic_ns() is CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() reads.
    return time.monotonic_ns() + int(seconds * 1e9)


def lease_end_in_jiffies(until_ns):
    """A lease's end (CLOCK_MONOTONIC ns) on the jiffies clock of this kernel's routers (0 where
    they read another clock)."""
    return _lease_clock.lease_end_in_jiffies(until_ns, _compile.jiffies_hz())


def facts(entry):
    """An entry without its lease: what is compared with the kernel."""
    return None if entry is None else {key: entry[key] for key in FACTS}


def _conf(interface, key):
    # Interface names may hold '.', which a dotted sysctl key cannot: read the path itself.
    with open('/proc/sys/net/ipv4/conf/%s/%s' % (interface, key)) as handle:
        return int(handle.read().split()[0])


def effective_rules(rp_all, rp_dev, local_all, local_dev, has_ipv4_address):
    """rp_filter and accept_local as the kernel applies them to the port.

    rp_filter is the larger of conf/all and conf/DEV; loose mode on a port without IPv4
    addresses fails every source not routed back through the port (fib_validate_source's
    no_addr case), which is strict mode.
    """
    rp_filter = max(rp_all, rp_dev)
    if rp_filter == 2 and not has_ipv4_address:
        rp_filter = 1
    return {'rp_filter': min(rp_filter, 2), 'accept_local': int(bool(local_all or local_dev))}


def wanted_port(namespace, link, ipv4_addressed):
    """The entry the port `link` (a _netlink link dict) should have, read from the kernel."""
    with in_netns(namespace):
        try:
            values = [_conf('all', 'rp_filter'), _conf(link['name'], 'rp_filter'),
                      _conf('all', 'accept_local'), _conf(link['name'], 'accept_local')]
        except OSError as exc:
            raise XdpkitError("reading the IPv4 settings of '%s' in %s failed: %s" % (
                link['name'], describe_ns(namespace), exc))
    entry = effective_rules(*values, has_ipv4_address=ipv4_addressed)
    entry['mac'] = link['mac']
    return entry


def encode(entry):
    until = entry.get('vouched_until', 0)
    return struct.pack(PORT_FORMAT, bytes.fromhex(entry['mac'].replace(':', '')), entry['rp_filter'],
                       entry['accept_local'], until, lease_end_in_jiffies(until))


def _key(ifindex):
    return struct.pack('=I', ifindex)


def read_port(path, ifindex):
    """The entry of `ifindex` in the pinned table at `path`, or None (no table, no entry)."""
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return None
    try:
        raw = sysbpf.map_lookup(fd, _key(ifindex), PORT_SIZE)
    finally:
        os.close(fd)
    return decode(raw) if raw is not None else None


def unpin_other_layout(path):
    """A port table pinned by a release whose entries had another layout: unpin it, so that the
    program loaded now gets a table of today's layout (programs still running on the old one
    keep it until they are replaced, which the same run does for every port of the router).
    True when one was unpinned."""
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return False
    try:
        value_size = sysbpf.map_info(fd)['value_size']
    finally:
        os.close(fd)
    if value_size == PORT_SIZE:
        return False
    os.unlink(path)
    return True


def read_entries(path):
    """[(ifindex, entry)] of a pinned table ([] when it is gone)."""
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return []
    try:
        entries = []
        for key in sysbpf.map_keys(fd, 4):
            raw = sysbpf.map_lookup(fd, key, PORT_SIZE)
            if raw is not None:
                entries.append((struct.unpack('=I', key)[0], decode(raw)))
        return entries
    finally:
        os.close(fd)


def write_port(path, ifindex, entry):
    fd = sysbpf.obj_get(path)
    try:
        sysbpf.map_update(fd, _key(ifindex), encode(entry))
    except OSError as exc:
        raise XdpkitError("writing port %d into %s failed: %s; the table holds one entry per port, remove "
                          "programs that are gone (state=absent) or raise its size" % (ifindex, path, exc))
    finally:
        os.close(fd)


def port_tables_in(directory):
    """Paths of the port tables pinned in a maps directory (found by their shape: a hash map
    from a 4-byte ifindex to a struct xdpkit_port), for state=absent, which has no source."""
    tables = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return tables
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = sysbpf.obj_get(path)
        except OSError:
            continue
        try:
            info = sysbpf.map_info(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
        if is_port_table(info):
            tables.append(path)
    return tables


def delete_port(path, ifindex):
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return False
    try:
        return sysbpf.map_delete(fd, _key(ifindex))
    finally:
        os.close(fd)


# -- egress ports (XDPKIT_EGRESS_PORTS): a DEVMAP_HASH of the ports a program is attached to ----
def _egress_value(ifindex):
    return struct.pack('=I', ifindex)


def has_egress_port(path, ifindex):
    fd = sysbpf.obj_get(path)
    try:
        return sysbpf.map_lookup(fd, _key(ifindex), 4) == _egress_value(ifindex)
    finally:
        os.close(fd)


def add_egress_port(path, ifindex, namespace):
    fd = sysbpf.obj_get(path)
    try:
        # The kernel resolves a DEVMAP value in the writing thread's namespace: the port's.
        with in_netns(namespace):
            sysbpf.map_update(fd, _key(ifindex), _egress_value(ifindex))
    except OSError as exc:
        raise XdpkitError("adding port %d to %s failed: %s; it holds one entry per port the program is attached to, "
                          "detach it where it is no longer needed (state=absent)" % (ifindex, path, exc))
    finally:
        os.close(fd)


def remove_egress_port(directory, ifindex):
    """On detach, which has no source to name the maps: the port's own entry (ifindex ->
    ifindex) in every DEVMAP_HASH of the maps directory. Entries from one port to another (the
    map scenario's ingress -> egress pairs, which xdp_map manages) are left alone."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        try:
            fd = sysbpf.obj_get(os.path.join(directory, name))
        except OSError:
            continue
        try:
            info = sysbpf.map_info(fd)
            if info['type'] == 'devmap_hash' and info['key_size'] == 4 and info['value_size'] == 4 and \
                    sysbpf.map_lookup(fd, _key(ifindex), 4) == _egress_value(ifindex):
                sysbpf.map_delete(fd, _key(ifindex))
        except OSError:
            continue
        finally:
            os.close(fd)
