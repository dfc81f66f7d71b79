# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] Static (permanent) neighbour entries: ARP for IPv4, NDP for IPv6."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_ifname,
    check_netns_name,
    normalize_mac,
    parse_ip,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute, require_link
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import missing_netns_error, netns_exists

NUD_PERMANENT = 0x80
NUD_NAMES = {0x01: 'incomplete', 0x02: 'reachable', 0x04: 'stale', 0x08: 'delay', 0x10: 'probe', 0x20: 'failed',
             0x40: 'noarp', 0x80: 'permanent'}


class NeighbourManager:
    def __init__(self, params, check_mode=False):
        self.check_mode = check_mode
        self.state = params['state']
        self.namespace = params.get('namespace') or None
        if self.namespace:
            check_netns_name(self.namespace)
        self.address = parse_ip(params['address'])
        self.device = check_ifname(params['device'])
        self.mac = normalize_mac(params['mac']) if params.get('mac') else None
        if self.state == 'present' and not self.mac:
            raise XdpkitError("neighbour %s: state=present needs a mac" % self.address)

    def _find(self, ipr, ifindex):
        family = socket.AF_INET if self.address.version == 4 else socket.AF_INET6
        for msg in dump(ipr.get_neighbours, family=family, ifindex=ifindex):
            if msg.get_attr('NDA_DST') and parse_ip(msg.get_attr('NDA_DST')) == self.address:
                return {'address': str(self.address), 'device': self.device, 'namespace': self.namespace,
                        'mac': (msg.get_attr('NDA_LLADDR') or '').lower() or None,
                        'state': NUD_NAMES.get(msg['state'], str(msg['state']))}
        return None

    def run(self):
        if self.namespace and not netns_exists(self.namespace):
            if self.state == 'absent':
                return {'changed': False, 'neighbour': None, 'diff': {'before': None, 'after': None}}
            raise missing_netns_error(self.namespace)
        with iproute(self.namespace) as ipr:
            ifindex = require_link(ipr, self.device, self.namespace)['ifindex']
            before = self._find(ipr, ifindex)
            if self.state == 'absent':
                changed = before is not None
                if changed and not self.check_mode:
                    ipr.neigh('del', dst=str(self.address), ifindex=ifindex)
                return {'changed': changed, 'neighbour': None, 'diff': {'before': before, 'after': None}}
            after = {'address': str(self.address), 'device': self.device, 'namespace': self.namespace,
                     'mac': self.mac, 'state': 'permanent'}
            changed = before != after
            if changed and not self.check_mode:
                ipr.neigh('replace', dst=str(self.address), lladdr=self.mac, ifindex=ifindex, state=NUD_PERMANENT)
            return {'changed': changed, 'neighbour': after, 'diff': {'before': before, 'after': after}}
