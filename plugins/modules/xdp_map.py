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
    description:
      - Path of the pinned map, for example C(/sys/fs/bpf/xdpkit/fib/tx_ports).
      - One of O(path) and O(maps) is required.
    type: str
  maps:
    description:
      - Several maps in one run (a scenario's port map and MAC table), each with C(path), C(entries) and
        C(exclusive) as for one map, all in O(namespace) with the same O(state).
      - Every map is opened and every entry validated (capacity included) before any map is written.
      - The result is RV(maps).
    type: list
    elements: dict
    suboptions:
      path:
        description: Path of the pinned map.
        type: str
        required: true
      entries:
        description: Entries, as O(entries).
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
        description: As O(exclusive).
        type: bool
        default: false
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
  traffic_control:
    description:
      - What to do when a port map entry sends frames to a port with traffic control they would skip (a frame
        redirected through a C(devmap) goes straight to the egress driver, past the port's qdisc, tc egress
        filters and tcx programs), as O(xdpkit.forwarding.xdp_program#module:traffic_control) does for the ports
        a program runs on.
      - V(refuse) fails before anything is written and names the tc filters, tcx programs and configured qdiscs
        found on the ports the entries send to.
      - V(bypass) writes the entries anyway; redirected traffic then leaves those ports unshaped and unfiltered.
    type: str
    choices: [refuse, bypass]
    default: refuse
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

- name: The map scenario's two tables in one run
  xdpkit.forwarding.xdp_map:
    maps:
      - path: /sys/fs/bpf/xdpkit/map/tx_ports
        entries: [{key: uno, value: dos}, {key: dos, value: uno}]
        exclusive: true
      - path: /sys/fs/bpf/xdpkit/map/mac_table
        entries: [{key: "02:00:00:00:00:01", value: "02:00:00:00:00:02"}]
        exclusive: true
'''

RETURN = r'''
entries:
  description: All entries of the map after the run, key to value, as text.
  returned: success, with O(path)
  type: dict
  sample: {uno: uno, dos: dos}
map:
  description: The map; null in a check-mode run when the map is not pinned yet (its program not attached).
  returned: success, with O(path)
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
maps:
  description:
    - With O(maps), one entry per map in the given order, each with C(path), C(changed), RV(entries) and RV(map).
  returned: success, with O(maps)
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_map import (
    XdpMapManager,
    XdpMapSetManager,
    entries_argument_spec,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='str'),
            maps=dict(type='list', elements='dict', options=dict(
                path=dict(type='str', required=True),
                entries=entries_argument_spec(),
                exclusive=dict(type='bool', default=False),
            )),
            namespace=dict(type='str'),
            entries=entries_argument_spec(),
            exclusive=dict(type='bool', default=False),
            traffic_control=dict(type='str', default='refuse', choices=['refuse', 'bypass']),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        mutually_exclusive=[('path', 'maps')],
        required_one_of=[('path', 'maps')],
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, XdpMapSetManager if module.params['maps'] is not None else XdpMapManager)


if __name__ == '__main__':
    main()
