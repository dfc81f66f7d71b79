#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: xdp_stats
short_description: Read the XDP program and its per-action counters on an interface
version_added: 0.1.0
description:
  - Reports the XDP program attached to an interface (id, name, tag, mode) and its packet and byte
    counters per XDP action (aborted, drop, pass, tx, redirect), summed over CPUs.
  - With O(interval), reads twice and adds rates. Never changes anything.
  - The same view, refreshed every second, is C(tools/xdp_stats) in the collection.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  interface:
    description: Interface to look at.
    type: str
    required: true
  namespace:
    description: Namespace of the interface; omitted means the host.
    type: str
  interval:
    description: Seconds between two reads for rates.
    type: float
extends_documentation_fragment:
  - xdpkit.forwarding.attributes.INFO_MODULE
  - xdpkit.forwarding.attributes.action_group
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: Counters of the router on port uno
  xdpkit.forwarding.xdp_stats:
    interface: uno
  register: uno_stats

- name: Rates over two seconds
  xdpkit.forwarding.xdp_stats:
    interface: veth0
    namespace: dos
    interval: 2
'''

RETURN = r'''
program:
  description: The attached program, null when none is attached.
  returned: success
  type: dict
  contains:
    id:
      description: Program id.
      type: int
    name:
      description: Program name.
      type: str
    tag:
      description: Program tag.
      type: str
    mode:
      description: native or generic.
      type: str
stats:
  description: Counters per action, null when no program is attached.
  returned: success
  type: dict
  sample: {XDP_REDIRECT: {packets: 10, bytes: 980}, XDP_PASS: {packets: 2, bytes: 84}}
rates:
  description: Packets and bits per second per action over O(interval).
  returned: when interval is given
  type: dict
interface:
  description: The interface.
  returned: success
  type: str
namespace:
  description: The namespace, null for the host.
  returned: success
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import XdpStatsReader


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str', required=True),
            namespace=dict(type='str'),
            interval=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, XdpStatsReader, changes=False)


if __name__ == '__main__':
    main()
