#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: veth
short_description: Manage a veth pair whose ends may live in different network namespaces
version_added: 0.1.0
description:
  - Creates, converges or removes a veth pair. Both ends are created in one netlink request,
    each directly in its namespace, so a failure never leaves a veth in the wrong place.
  - Each end has its own addresses (IPv4 and IPv6, CIDR), MTU, MAC and admin state.
  - Removing one end removes both; O(state=absent) deletes the pair.
  - IPv6 addresses are added without duplicate address detection, so they are usable at once.
    IPv6 link-local addresses the kernel adds by itself are never reported or removed.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  name:
    description: Name of this end (at most 15 characters).
    type: str
    required: true
  namespace:
    description: Namespace of this end; omitted means the host namespace.
    type: str
  addresses:
    description:
      - Addresses of this end in CIDR notation, for example C(10.0.0.1/24) or C(fd00::1/64).
      - Omitted means addresses are not managed. See O(address_mode).
    type: list
    elements: str
  mtu:
    description: MTU of this end; omitted leaves it as it is (1500 for a new pair).
    type: int
  mac:
    description: MAC address of this end; omitted leaves the kernel's random one.
    type: str
  link_state:
    description: Administrative state of this end.
    type: str
    choices: [up, down]
    default: up
  gro:
    description:
      - Generic receive offload on this end; omitted leaves it as it is.
      - On a veth, GRO turns on NAPI, which lets the end receive frames that XDP redirects into
        its peer (kernel 5.13 and later), the alternative to an XDP program on it.
    type: bool
  tx_checksum:
    description:
      - TX checksumming (checksum offload) on this end; omitted leaves it as it is (a new veth has it on).
      - With it on, a veth hands its peer UDP and TCP segments whose checksum is left for offload; a
        frame that XDP redirects on the way loses that state and arrives with the checksum
        unfinished (the receiver counts a checksum error and drops it). Labs turn it off, as
        containerlab does; ICMP is always checksummed in software.
    type: bool
  peer:
    description: The other end of the pair.
    type: dict
    required: true
    suboptions:
      name:
        description: Name of the peer end (at most 15 characters).
        type: str
        required: true
      namespace:
        description: Namespace of the peer end; omitted means the host namespace.
        type: str
      addresses:
        description: Addresses of the peer end, as for O(addresses).
        type: list
        elements: str
      mtu:
        description: MTU of the peer end.
        type: int
      mac:
        description: MAC address of the peer end.
        type: str
      link_state:
        description: Administrative state of the peer end.
        type: str
        choices: [up, down]
        default: up
      gro:
        description: Generic receive offload on the peer end, as for O(gro).
        type: bool
      tx_checksum:
        description: TX checksumming on the peer end, as for O(tx_checksum).
        type: bool
  address_mode:
    description:
      - V(exact) converges each end to exactly the listed addresses, removing others.
      - V(append) only adds the listed addresses and keeps what else is there.
    type: str
    choices: [exact, append]
    default: exact
  state:
    description: Whether the pair should exist.
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
- name: Host end 'uno' joined to 'veth0' inside namespace uno
  xdpkit.forwarding.veth:
    name: uno
    addresses: [10.0.1.1/24, fd00:1::1/64]
    peer:
      name: veth0
      namespace: uno
      addresses: [10.0.1.2/24, fd00:1::2/64]

- name: Only add an address, keep the others
  xdpkit.forwarding.veth:
    name: uno
    addresses: [10.0.9.1/24]
    address_mode: append
    peer:
      name: veth0
      namespace: uno

- name: Remove the pair (both ends)
  xdpkit.forwarding.veth:
    name: uno
    peer:
      name: veth0
      namespace: uno
    state: absent
'''

RETURN = r'''
interface:
  description: This end as the kernel reports it after the run (null when absent).
  returned: success
  type: dict
  contains:
    name:
      description: Interface name.
      type: str
    namespace:
      description: Namespace, null for the host.
      type: str
    ifindex:
      description: Interface index inside its namespace.
      type: int
    mtu:
      description: MTU.
      type: int
    mac:
      description: MAC address, lower case.
      type: str
    link_state:
      description: up or down.
      type: str
    gro:
      description: Whether generic receive offload is on.
      type: bool
    tx_checksum:
      description: Whether TX checksumming (checksum offload) is on.
      type: bool
    addresses:
      description: Addresses in CIDR notation, without IPv6 link-local ones.
      type: list
      elements: str
peer:
  description: The peer end, with the same keys as RV(interface).
  returned: success
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager, veth_argument_spec


def main():
    argument_spec = veth_argument_spec()
    argument_spec.update(state=dict(type='str', default='present', choices=['present', 'absent']))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_pyroute2(module)
    run_manager(module, VethManager)


if __name__ == '__main__':
    main()
