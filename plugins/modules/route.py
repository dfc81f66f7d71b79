#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: route
short_description: Manage an IPv4 or IPv6 route inside a network namespace
version_added: 0.1.0
description:
  - Adds, replaces or removes one route in a namespace (default the host), or with
    O(routes) many routes of one namespace in one call (a lab's computed routes, a
    FIB-scale table of thousands).
  - A route is identified by its table, destination and metric; gateway, device and type
    are converged with a netlink replace, so there is never a moment without the route.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  dest:
    description: Destination prefix in CIDR notation, or V(default). Required unless O(routes) is given.
    type: str
  routes:
    description:
      - Many routes instead of one, each a dict with the keys C(dest), C(gateway), C(device),
        C(family), C(metric), C(table), C(type) as for the single route. Routes of the
        namespace that are not listed are left alone.
    type: list
    elements: dict
    version_added: 0.2.0
  gateway:
    description: Next hop address; must lie in a network connected to the namespace.
    type: str
  device:
    description: Outgoing interface inside the namespace.
    type: str
  family:
    description: Address family; only needed for V(default) routes without a gateway.
    type: str
    choices: [ipv4, ipv6]
  metric:
    description: Route metric; omitted means the kernel's default (0 for IPv4, 1024 for IPv6).
    type: int
  table:
    description: Routing table number; omitted means the main table (254).
    type: int
  type:
    description: Route type. V(blackhole), V(unreachable) and V(prohibit) take no gateway or device.
    type: str
    choices: [unicast, blackhole, unreachable, prohibit]
    default: unicast
  namespace:
    description: Namespace holding the route; omitted means the host namespace.
    type: str
  state:
    description: Whether the route should exist.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports what would change; an unreachable gateway is only found in a real run.
  diff_mode:
    support: full
    description: Shows the route before and after.
  idempotent:
    support: full
    description: A second run with the same arguments reports no change.
extends_documentation_fragment:
  - xdpkit.forwarding.attributes.action_group
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: Default route in namespace uno via the host
  xdpkit.forwarding.route:
    namespace: uno
    dest: default
    gateway: 10.0.1.1

- name: IPv6 default route
  xdpkit.forwarding.route:
    namespace: uno
    dest: default
    gateway: fd00:1::1

- name: Many routes in one call
  xdpkit.forwarding.route:
    namespace: r1
    routes:
      - {dest: 10.90.0.8/30, gateway: 10.90.0.2}
      - {dest: "fd00:90:0:2::/64", gateway: "fd00:90:0:1::2"}

- name: Drop a prefix on the host
  xdpkit.forwarding.route:
    dest: 198.51.100.0/24
    type: blackhole
'''

RETURN = r'''
routes_changed:
  description: With O(routes), how many routes were (or in check mode would be) added, replaced or removed.
  returned: when O(routes) is given
  type: int
  sample: 1000
route:
  description: The route after the run (null when absent).
  returned: when O(dest) is given
  type: dict
  contains:
    dest:
      description: Destination prefix.
      type: str
      sample: 0.0.0.0/0
    family:
      description: ipv4 or ipv6.
      type: str
    gateway:
      description: Next hop, or null.
      type: str
    device:
      description: Outgoing interface, or null.
      type: str
    metric:
      description: Metric.
      type: int
    table:
      description: Table number.
      type: int
    type:
      description: Route type.
      type: str
    namespace:
      description: Namespace, null for the host.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager, RouteSetManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='str'),
            routes=dict(type='list', elements='dict'),
            gateway=dict(type='str'),
            device=dict(type='str'),
            family=dict(type='str', choices=['ipv4', 'ipv6']),
            metric=dict(type='int'),
            table=dict(type='int'),
            type=dict(type='str', default='unicast', choices=['unicast', 'blackhole', 'unreachable', 'prohibit']),
            namespace=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        mutually_exclusive=[('dest', 'routes'), ('routes', 'gateway'), ('routes', 'device'), ('routes', 'family'),
                            ('routes', 'metric'), ('routes', 'table')],
        required_one_of=[('dest', 'routes')],
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, RouteSetManager if module.params['routes'] is not None else RouteManager)


if __name__ == '__main__':
    main()
