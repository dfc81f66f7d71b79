# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] A program instance's port entry: what the kernel knows about the port
the instance is attached to that an XDP program cannot ask it (the port's MAC, its IPv4
rp_filter and accept_local), written by xdp_program when it attaches a program whose source
declares XDPKIT_PORT_ENTRY and kept current by the keeper; and the egress ports
(XDPKIT_EGRESS_PORTS), the DEVMAP_HASH of the ports a program is attached to.

The entry is key 0 of an array of one pinned in the instance's pin_dir: every instance serves
one port, so the program reads it with a constant key, which costs next to nothing.
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
    PORT_ENTRY,
    PORT_FORMAT,
    PORT_KEY,
    PORT_SIZE,
    decode,
    is_port_entry,
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


def read_entry(path):
    """The entry pinned at `path`, or None (no pin, or an entry nobody wrote or one cleared)."""
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return None
    try:
        return decode(sysbpf.map_lookup(fd, PORT_KEY, PORT_SIZE))
    finally:
        os.close(fd)


def write_entry(path, entry):
    fd = sysbpf.obj_get(path)
    try:
        sysbpf.map_update(fd, PORT_KEY, encode(entry))
    except OSError as exc:
        raise XdpkitError("writing the port entry %s failed: %s" % (path, exc))
    finally:
        os.close(fd)


def clear_entry(path):
    """An array's entry cannot be deleted: all zeros is the entry nobody wrote, which programs
    take for an unknown port and readers for none. False when there is no entry to clear."""
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return False
    try:
        sysbpf.map_update(fd, PORT_KEY, bytes(PORT_SIZE))
        return True
    finally:
        os.close(fd)


def unpin_other_layout(path):
    """A port entry pinned by a release whose entries had another layout: unpin it, so that the
    program loaded now gets an entry of today's layout (the program still attached keeps the old
    one until the same run replaces it). True when one was unpinned."""
    info = sysbpf.pinned_map_info(path)
    if info is None or info['value_size'] == PORT_SIZE:
        return False
    os.unlink(path)
    return True


# The hash from ifindex to struct xdpkit_port that releases before the per-instance entry shared
# between the instances of a maps directory (XDPKIT_PORT_TABLE(ports, 256)).
SHARED_TABLE = 'ports'


def unpin_shared_table(maps_dir):
    """Unpin an earlier release's shared port table from a maps directory the router is loaded in
    now: nothing of today reads or writes it (each instance has its own entry), and left there it
    would look like a live table to whoever reads the pins. Programs of that release still
    attached keep it until the same run replaces them. True when one was unpinned."""
    path = os.path.join(maps_dir, SHARED_TABLE)
    info = sysbpf.pinned_map_info(path)
    if info is None or info['type'] != 'hash' or info['key_size'] != 4 or info['name'] != SHARED_TABLE:
        return False
    os.unlink(path)
    return True


def port_entry_in(pin_dir):
    """Path of the port entry pinned in an instance's pin_dir (found by name and shape, for
    state=absent and the keeper, which have no source), or None."""
    path = os.path.join(pin_dir, PORT_ENTRY)
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return None
    try:
        return path if is_port_entry(sysbpf.map_info(fd)) else None
    except OSError:
        return None
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
