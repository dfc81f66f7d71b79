#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: link_info
short_description: Describe the links of a network namespace and its forwarding counters
version_added: 0.1.0
description:
  - Returns each link's ifindex, MAC, MTU, state, kind, addresses, attached XDP program and
    packet counters, read over netlink inside the namespace.
  - Also returns how many datagrams the namespace's kernel forwarded itself (IPv4
    C(ForwDatagrams), IPv6 C(Ip6OutForwDatagrams)), which shows whether XDP or the kernel did
    the forwarding.
  - The scenario roles use it to discover ifindexes and MACs, so that nobody types them.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  namespace:
    description: Namespace to look into; omitted means the host.
    type: str
  names:
    description: Only these links; each must exist. Omitted means all links.
    type: list
    elements: str
  routes:
    description:
      - Also return the namespace's main routing table (RV(routes)), with who installed each route, e.g.
        the routes FRR's OSPF learned in a lab router (C(protocol=ospf)).
    type: bool
    default: false
extends_documentation_fragment:
  - xdpkit.forwarding.attributes.INFO_MODULE
  - xdpkit.forwarding.attributes.action_group
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: ifindex and MAC of veth0 in namespace uno
  xdpkit.forwarding.link_info:
    namespace: uno
    names: [veth0]
  register: uno_links

- name: Use them
  ansible.builtin.debug:
    msg: "{{ uno_links.links.veth0.ifindex }} {{ uno_links.links.veth0.mac }}"
'''

RETURN = r'''
links:
  description: Links by name.
  returned: success
  type: dict
  sample:
    veth0:
      ifindex: 2
      mac: "02:00:00:00:00:02"
      mtu: 1500
      state: up
      kind: veth
      addresses: [10.0.0.2/24]
      peer_ifindex: 41
      xdp: {prog_id: 57, name: xdp_pass, tag: 88096692fff28f5f, mode: native}
      stats: {rx_packets: 10, tx_packets: 12, rx_bytes: 980, tx_bytes: 1176, rx_dropped: 0, tx_dropped: 0}
forwarded:
  description: Datagrams forwarded by the namespace's kernel since it started.
  returned: success
  type: dict
  sample: {ipv4: 0, ipv6: 0}
namespace:
  description: The namespace, null for the host.
  returned: success
  type: str
routes:
  description:
    - With O(routes=true), every route of the main table, both families. C(nexthops) lists each next hop
      (C(gateway), C(device), and C(weight) for a multipath route or nexthop group); C(nexthop_object) says
      whether the route uses one of the kernel's nexthop objects (as FRR's zebra installs them).
  returned: with routes=true
  type: list
  elements: dict
  sample:
    - {dest: 10.86.0.10/31, family: ipv4, type: unicast, protocol: ospf, metric: 20, nexthop_object: true,
       nexthops: [{gateway: 10.86.0.3, device: eth1, weight: 1}, {gateway: 10.86.0.5, device: eth2, weight: 1}]}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._link_info import LinkInfoReader
from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            namespace=dict(type='str'),
            names=dict(type='list', elements='str'),
            routes=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, LinkInfoReader, changes=False)


if __name__ == '__main__':
    main()
