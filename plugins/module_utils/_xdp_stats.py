# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] Per-action packet and byte counters of the XDP program on an interface,
why it did not redirect the frames it handed to the kernel (per reason, _reasons), the share of
the forwarded frames XDP redirected (on the port, and in the namespace against the kernel's own
forwarded count), and, for a program that caches what it knows of its ports (the router),
whether that is still vouched for.

The counters live in the program's per-CPU `xdp_stats_map`, found through the attached
program's map ids, so no pin path needs to be known (and any xdpkit program is readable); the
port entry is found the same way (_lease).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _reasons
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_ifname,
    check_netns_name,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._link_info import forwarded_datagrams
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute, require_link
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import missing_netns_error, netns_exists
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program

ACTIONS = ('XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT')
STATS_MAP_NAME = 'xdp_stats_map'


def possible_cpus():
    """Per-CPU map values have one slot per possible CPU (not online CPU)."""
    with open('/sys/devices/system/cpu/possible') as handle:
        total = 0
        for part in handle.read().strip().split(','):
            low, _sep, high = part.partition('-')
            total += int(high or low) - int(low) + 1
    return total


def find_stats_map(prog_id):
    """fd of the program's xdp_stats_map, or None (not an xdpkit-style program)."""
    return sysbpf.program_map_fd(
        prog_id, lambda info: info['name'] == STATS_MAP_NAME and info['type'] == 'percpu_array')


def find_reasons_map(prog_id):
    """fd of the program's xdp_reasons_map, or None (a program that counts no reasons: xdp_pass,
    another tool's, or one loaded by an older collection)."""
    return sysbpf.program_map_fd(
        prog_id, lambda info: info['name'] == _reasons.REASONS_MAP_NAME and info['type'] == 'percpu_array')


def _read_slots(map_fd, names, ncpus):
    """{name: {'packets', 'bytes'}} of a per-CPU array of (packets, bytes), summed over CPUs;
    slot i is names[i]."""
    ncpus = ncpus or possible_cpus()
    counters = {}
    for index, name in enumerate(names):
        raw = sysbpf.map_lookup(map_fd, struct.pack('=I', index), 16 * ncpus) or b''
        packets = bytes_ = 0
        for cpu in range(len(raw) // 16):
            p, b = struct.unpack_from('=QQ', raw, cpu * 16)
            packets += p
            bytes_ += b
        counters[name] = {'packets': packets, 'bytes': bytes_}
    return counters


def read_counters(map_fd, ncpus=None):
    """{action: {'packets', 'bytes'}} summed over CPUs."""
    return _read_slots(map_fd, ACTIONS, ncpus)


def read_reasons(map_fd, ncpus=None):
    """{reason: {'packets', 'bytes'}} summed over CPUs, every reason but 'redirected' (never counted)."""
    counters = _read_slots(map_fd, _reasons.REASON_NAMES, ncpus)
    counters.pop('redirected')
    return counters


def program_reasons(prog_id, ncpus=None):
    """The program's reason counters, or None when it keeps none."""
    fd = find_reasons_map(prog_id)
    if fd is None:
        return None
    try:
        return read_reasons(fd, ncpus)
    finally:
        os.close(fd)


def rates(first, second, seconds):
    return {name: {'pps': (second[name]['packets'] - first[name]['packets']) / seconds,
                   'bps': 8 * (second[name]['bytes'] - first[name]['bytes']) / seconds}
            for name in second}


def namespace_redirected(namespace, ncpus=None):
    """Frames every counting XDP program in the namespace redirected (their XDP_REDIRECT counts)."""
    total = 0
    with iproute(namespace) as ipr:
        prog_ids = {attached['prog_id'] for attached in
                    (attached_program(ipr, link['index']) for link in dump(ipr.get_links)) if attached}
    for prog_id in sorted(prog_ids):
        fd = find_stats_map(prog_id)
        if fd is None:
            continue
        try:
            total += read_counters(fd, ncpus)['XDP_REDIRECT']['packets']
        finally:
            os.close(fd)
    return total


def acceleration(namespace, redirected, reasons, ncpus=None):
    """The share of forwarded frames XDP redirected: on the port (its redirects over those plus
    what it handed to the kernel to forward, _reasons.port_share()) and in the namespace (every
    program's redirects over those plus the kernel's own forwarded datagrams, its SNMP counters)."""
    namespace_xdp = namespace_redirected(namespace, ncpus)
    kernel = forwarded_datagrams(namespace)
    kernel_total = kernel['ipv4'] + kernel['ipv6']
    return {'port': _reasons.port_share(redirected, reasons) if reasons is not None else None,
            'namespace': _reasons.share(namespace_xdp, kernel_total),
            'namespace_redirected': namespace_xdp, 'kernel_forwarded': kernel_total}


def read_port(stats_fd, reasons_fd, namespace, ncpus=None):
    """What one read of a port compares with the next: its counters, its reasons (None without the
    map: reasons_fd None), its redirects and the namespace's acceleration counts (acceleration())."""
    stats = read_counters(stats_fd, ncpus)
    reasons = read_reasons(reasons_fd, ncpus) if reasons_fd is not None else None
    redirected = stats['XDP_REDIRECT']['packets']
    return {'stats': stats, 'reasons': reasons, 'redirected': redirected,
            'acceleration': acceleration(namespace, redirected, reasons, ncpus)}


def acceleration_over(first, second):
    """The shares over an interval, from two acceleration() reads and the port's redirects and
    reasons before and after (two read_port() results)."""
    reasons = _reasons.difference(second['reasons'], first['reasons']) if second['reasons'] is not None else None
    redirected = second['redirected'] - first['redirected']
    return {'port': _reasons.port_share(redirected, reasons) if reasons is not None else None,
            'namespace': _reasons.share(
                second['acceleration']['namespace_redirected'] - first['acceleration']['namespace_redirected'],
                second['acceleration']['kernel_forwarded'] - first['acceleration']['kernel_forwarded'])}


def interface_program(namespace, interface):
    """The attached program's description, or None."""
    with iproute(namespace) as ipr:
        link = require_link(ipr, interface, namespace)
        attached = attached_program(ipr, link['ifindex'])
    if not attached:
        return None
    info = sysbpf.program_info(attached['prog_id'])
    info['mode'] = attached['mode']
    return info


class XdpStatsReader:
    """The xdp_stats module: never changes anything."""

    def __init__(self, params, check_mode=False):
        self.interface = check_ifname(params['interface'])
        self.namespace = params.get('namespace') or None
        if self.namespace:
            check_netns_name(self.namespace)
        self.interval = params.get('interval')
        if self.interval is not None and not 0 < self.interval <= 3600:
            raise XdpkitError('interval must be between 0 and 3600 seconds, not %s' % self.interval)

    def run(self):
        if self.namespace and not netns_exists(self.namespace):
            raise missing_netns_error(self.namespace)
        program = interface_program(self.namespace, self.interface)
        result = {'changed': False, 'interface': self.interface, 'namespace': self.namespace,
                  'program': program, 'stats': None, 'reasons': None, 'leading_reasons': [],
                  'acceleration': None, 'port': None, 'keeper': _lease.keeper_state()}
        if program is None:
            return result
        result['port'] = _lease.port_state(program['id'])
        if result['port'] is not None and not result['port']['vouched']:
            result['warnings'] = [_lease.not_vouched_warning(
                "port '%s' in %s" % (self.interface, describe_ns(self.namespace)), result['port'], result['keeper'])]
        fd = find_stats_map(program['id'])
        if fd is None:
            raise XdpkitError("the XDP program on '%s' in %s (%s, id %d) has no %s map: it is not an xdpkit "
                              "program and its counters cannot be read" % (
                                  self.interface, describe_ns(self.namespace), program['name'], program['id'],
                                  STATS_MAP_NAME))
        # Found once: a second read compares the same maps.
        reasons_fd = find_reasons_map(program['id'])
        try:
            ncpus = possible_cpus()
            first = read_port(fd, reasons_fd, self.namespace, ncpus)
            if self.interval:
                start = time.monotonic()
                time.sleep(self.interval)
                second = read_port(fd, reasons_fd, self.namespace, ncpus)
                seconds = time.monotonic() - start
                result['rates'] = rates(first['stats'], second['stats'], seconds)
                if second['reasons'] is not None:
                    result['reason_rates'] = rates(first['reasons'], second['reasons'], seconds)
                result['acceleration_over_interval'] = acceleration_over(first, second)
                first = second
        finally:
            os.close(fd)
            if reasons_fd is not None:
                os.close(reasons_fd)
        result.update(stats=first['stats'], reasons=first['reasons'], acceleration=first['acceleration'],
                      leading_reasons=_reasons.leading_described(first['reasons']))
        return result
