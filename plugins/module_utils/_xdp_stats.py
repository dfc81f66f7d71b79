# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] Per-action packet and byte counters of the XDP program on an interface,
and, for a program that caches what it knows of its ports (the router), whether that is still
vouched for.

The counters live in the program's per-CPU `xdp_stats_map`, found through the attached
program's map ids, so no pin path needs to be known (and any xdpkit program is readable); the
port table is found the same way (_lease).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_ifname,
    check_netns_name,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute, require_link
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


def read_counters(map_fd, ncpus=None):
    """{action: {'packets', 'bytes'}} summed over CPUs."""
    ncpus = ncpus or possible_cpus()
    counters = {}
    for index, action in enumerate(ACTIONS):
        raw = sysbpf.map_lookup(map_fd, struct.pack('=I', index), 16 * ncpus) or b''
        packets = bytes_ = 0
        for cpu in range(len(raw) // 16):
            p, b = struct.unpack_from('=QQ', raw, cpu * 16)
            packets += p
            bytes_ += b
        counters[action] = {'packets': packets, 'bytes': bytes_}
    return counters


def rates(first, second, seconds):
    return {action: {'pps': (second[action]['packets'] - first[action]['packets']) / seconds,
                     'bps': 8 * (second[action]['bytes'] - first[action]['bytes']) / seconds}
            for action in ACTIONS}


def interface_program(namespace, interface):
    """The attached program's description, or None."""
    return attached_on(namespace, interface)[1]


def attached_on(namespace, interface):
    """(ifindex, the attached program's description or None)."""
    with iproute(namespace) as ipr:
        link = require_link(ipr, interface, namespace)
        attached = attached_program(ipr, link['ifindex'])
    if not attached:
        return link['ifindex'], None
    info = sysbpf.program_info(attached['prog_id'])
    info['mode'] = attached['mode']
    return link['ifindex'], info


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
        ifindex, program = attached_on(self.namespace, self.interface)
        result = {'changed': False, 'interface': self.interface, 'namespace': self.namespace,
                  'program': program, 'stats': None, 'port': None, 'keeper': _lease.keeper_state()}
        if program is None:
            return result
        result['port'] = _lease.port_state(program['id'], ifindex)
        if result['port'] is not None and not result['port']['vouched']:
            result['warnings'] = [_lease.not_vouched_warning(
                "port '%s' in %s" % (self.interface, describe_ns(self.namespace)), result['port'], result['keeper'])]
        fd = find_stats_map(program['id'])
        if fd is None:
            raise XdpkitError("the XDP program on '%s' in %s (%s, id %d) has no %s map: it is not an xdpkit "
                              "program and its counters cannot be read" % (
                                  self.interface, describe_ns(self.namespace), program['name'], program['id'],
                                  STATS_MAP_NAME))
        try:
            ncpus = possible_cpus()
            first = read_counters(fd, ncpus)
            result['stats'] = first
            if self.interval:
                start = time.monotonic()
                time.sleep(self.interval)
                second = read_counters(fd, ncpus)
                result['stats'] = second
                result['rates'] = rates(first, second, time.monotonic() - start)
        finally:
            os.close(fd)
        return result
