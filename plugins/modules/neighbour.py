#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: neighbour
short_description: Manage a permanent neighbour (ARP / NDP) entry in a namespace
version_added: 0.1.0
description:
  - Sets or removes a permanent neighbour entry, IPv4 or IPv6, on a device in a namespace.
  - Useful where address resolution cannot work, such as one-way XDP forwarding, and for
    benchmarks whose sink never answers ARP (bpf_fib_lookup needs a resolved neighbour).
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  address:
    description: The neighbour's IPv4 or IPv6 address.
    type: str
    required: true
  mac:
    description: Its MAC address; required with O(state=present).
    type: str
  device:
    description: Device the neighbour is reached on.
    type: str
    required: true
  namespace:
    description: Namespace of the device; omitted means the host.
    type: str
  state:
    description: Whether the permanent entry should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - xdpkit.forwarding.attributes
  - xdpkit.forwarding.attributes.action_group
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: dos reaches 10.0.0.2 at uno's MAC without ARP
  xdpkit.forwarding.neighbour:
    namespace: dos
    device: veth0
    address: 10.0.0.2
    mac: "02:00:00:00:00:02"
'''

RETURN = r'''
neighbour:
  description: The entry after the run (null when absent).
  returned: success
  type: dict
  contains:
    address:
      description: IP address.
      type: str
    mac:
      description: MAC address.
      type: str
    device:
      description: Device.
      type: str
    namespace:
      description: Namespace, null for the host.
      type: str
    state:
      description: Neighbour state (permanent).
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._neighbour import NeighbourManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type='str', required=True),
            mac=dict(type='str'),
            device=dict(type='str', required=True),
            namespace=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        required_if=[('state', 'present', ['mac'])],
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, NeighbourManager)


if __name__ == '__main__':
    main()
