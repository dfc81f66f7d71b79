# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] The FRR configuration of one lab router, as text: OSPFv2 and OSPFv3 on its
router-to-router ports as point-to-point links with lab timers, its host-facing ports passive
(their subnets advertised, no adjacency asked of a host), its loopback addresses set by zebra
and advertised. Pure: the lab planner calls it, the frr module writes what it returns.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# An interface's part in OSPF: 'p2p' forms an adjacency, 'passive' only advertises the subnet.
INTERFACE_MODES = ('p2p', 'passive')
# SPF runs at once after a change, then holds back 50 ms, at most 500 ms: FRR's defaults
# (200 ms first) would put most of a lab failover's loss in a timer.
SPF_THROTTLE = '0 50 500'


def _interface_lines(interface, hello, dead):
    lines = ['interface %s' % interface['name'], ' ip ospf area %s' % interface['area']]
    six = [' ipv6 ospf6 area %s' % interface['area']]
    if interface['mode'] == 'passive':
        lines.append(' ip ospf passive')
        six.append(' ipv6 ospf6 passive')
    else:
        lines += [' ip ospf network point-to-point',
                  ' ip ospf hello-interval %d' % hello,
                  ' ip ospf dead-interval %d' % dead]
        six += [' ipv6 ospf6 network point-to-point',
                ' ipv6 ospf6 hello-interval %d' % hello,
                ' ipv6 ospf6 dead-interval %d' % dead]
    if interface.get('cost'):
        lines.append(' ip ospf cost %d' % interface['cost'])
        six.append(' ipv6 ospf6 cost %d' % interface['cost'])
    return lines + six + ['exit', '!']


def render_ospf_router(router):
    """frr.conf of one router. `router`: node, namespace, router_id, loopback (addresses with
    prefix), interfaces [{name, mode, cost, area}], hello, dead (seconds)."""
    lines = [
        '! xdpkit.forwarding lab router %s (network namespace %s). Generated from the lab\'s' % (
            router['node'], router['namespace']),
        '! topology data: the lab role rewrites it, and FRR reloads it when it changes.',
        'frr defaults traditional',
        'hostname %s' % router['node'],
        'log file /var/run/frr/%s/frr.log informational' % router['namespace'],
        'service integrated-vtysh-config',
        '!',
    ]
    if router['loopback']:
        lines.append('interface lo')
        for address in router['loopback']:
            lines.append(' %s address %s' % ('ipv6' if ':' in address else 'ip', address))
        lines += [' ip ospf area %s' % router['area'], ' ipv6 ospf6 area %s' % router['area'], 'exit', '!']
    for interface in sorted(router['interfaces'], key=lambda i: i['name']):
        lines += _interface_lines(dict(interface, area=router['area']), router['hello'], router['dead'])
    lines += [
        'router ospf',
        ' ospf router-id %s' % router['router_id'],
        ' timers throttle spf %s' % SPF_THROTTLE,
        'exit',
        '!',
        'router ospf6',
        ' ospf6 router-id %s' % router['router_id'],
        ' timers throttle spf %s' % SPF_THROTTLE,
        'exit',
        '!',
    ]
    return '\n'.join(lines) + '\n'
