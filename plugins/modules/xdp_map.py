#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: xdp_map
short_description: Set or delete entries in a pinned XDP map
version_added: 0.1.0
description:
  - Writes entries into a map pinned on bpffs by M(xdpkit.forwarding.xdp_program).
  - Port maps (C(devmap), C(devmap_hash)) take interface names (or ifindex numbers) as keys and
    values; names are resolved in O(namespace), the namespace the programs run in.
  - MAC tables (a C(hash) of 6-byte keys and values) take MAC addresses.
  - All entries are validated, and the map's capacity checked, before anything is written.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  path:
    description: Path of the pinned map, for example C(/sys/fs/bpf/xdpkit/fib/tx_ports).
    type: str
    required: true
  namespace:
    description: Namespace in which interface names are resolved; omitted means the host.
    type: str
  entries:
    description: Entries to set (or with O(state=absent), to delete; their values are ignored).
    type: list
    elements: dict
    default: []
    suboptions:
      key:
        description: Interface name, ifindex or MAC address.
        type: raw
        required: true
      value:
        description: Interface name, ifindex or MAC address.
        type: raw
  exclusive:
    description: With O(state=present), remove the entries that are not listed.
    type: bool
    default: false
  state:
    description: V(present) sets the entries, V(absent) deletes them.
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
- name: The FIB router may send out of both host ports
  xdpkit.forwarding.xdp_map:
    path: /sys/fs/bpf/xdpkit/fib/tx_ports
    entries:
      - {key: uno, value: uno}
      - {key: dos, value: dos}
    exclusive: true

- name: Frames from this MAC get that destination MAC
  xdpkit.forwarding.xdp_map:
    path: /sys/fs/bpf/xdpkit/map/mac_table
    entries:
      - key: "02:00:00:00:00:01"
        value: "02:00:00:00:00:02"
'''

RETURN = r'''
entries:
  description: All entries of the map after the run, key to value, as text.
  returned: success
  type: dict
  sample: {uno: uno, dos: dos}
map:
  description: The map; null in a check-mode run when the map is not pinned yet (its program not attached).
  returned: success
  type: dict
  contains:
    path:
      description: Pin path.
      type: str
    type:
      description: Map type.
      type: str
      sample: devmap_hash
    max_entries:
      description: Capacity.
      type: int
    id:
      description: Kernel map id.
      type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_map import XdpMapManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='str', required=True),
            namespace=dict(type='str'),
            entries=dict(type='list', elements='dict', default=[], options=dict(
                key=dict(type='raw', required=True, no_log=False),
                value=dict(type='raw'),
            )),
            exclusive=dict(type='bool', default=False),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, XdpMapManager)


if __name__ == '__main__':
    main()
