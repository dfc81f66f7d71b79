#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: lab
short_description: Manage a whole namespace lab in one call (namespaces, veth pairs, neighbours, sysctls, routes)
version_added: 0.2.0
description:
  - Converges every object of a lab in one module run, in the order a lab needs them
    (namespaces, veth pairs, permanent neighbours, sysctls, routes), with the same logic and
    results as M(xdpkit.forwarding.netns), M(xdpkit.forwarding.veth),
    M(xdpkit.forwarding.neighbour), M(xdpkit.forwarding.sysctl) and M(xdpkit.forwarding.route).
  - One run instead of one per object and link, so an idempotent re-run of a lab costs one
    module start. The C(xdpkit.forwarding.lab_topology) role's plan (the C(lab_plan) filter) is
    what it is usually given.
  - Every object is validated before anything changes. When the kernel refuses something half
    way, the run takes back what it made (the namespaces and veth pairs it created go, the
    sysctls it set are put back) and fails with the kernel's reason.
  - In check mode, objects inside namespaces or on links that the same run would create are
    reported as changes (RV(predicted) names them) with placeholder ifindex 0 and MAC
    C(00:00:00:00:00:00) for the new interfaces.
  - O(state=absent) undoes the lab in reverse order. Routes, neighbours and sysctls inside the
    lab's own namespaces go with them; those of the host are removed or put back one by one.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  namespaces:
    description: Network namespaces of the lab.
    type: list
    elements: str
    default: []
  links:
    description:
      - veth pairs, each with the options of M(xdpkit.forwarding.veth) except O(state).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of this end.
        type: str
        required: true
      namespace:
        description: Namespace of this end; omitted means the host.
        type: str
      addresses:
        description: Addresses of this end (CIDR); omitted means not managed.
        type: list
        elements: str
      mtu:
        description: MTU of this end.
        type: int
      mac:
        description: MAC address of this end.
        type: str
      link_state:
        description: Administrative state of this end.
        type: str
        choices: [up, down]
        default: up
      gro:
        description: Generic receive offload on this end (see M(xdpkit.forwarding.veth)).
        type: bool
      tx_checksum:
        description: TX checksumming on this end (see M(xdpkit.forwarding.veth)).
        type: bool
      peer:
        description: The other end, with the same options as this one.
        type: dict
        required: true
        suboptions:
          name:
            description: Name of the peer end.
            type: str
            required: true
          namespace:
            description: Namespace of the peer end.
            type: str
          addresses:
            description: Addresses of the peer end.
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
            description: Generic receive offload on the peer end.
            type: bool
          tx_checksum:
            description: TX checksumming on the peer end.
            type: bool
      address_mode:
        description: V(exact) or V(append), as for M(xdpkit.forwarding.veth).
        type: str
        choices: [exact, append]
        default: exact
  neighbours:
    description: Permanent neighbour entries, as for M(xdpkit.forwarding.neighbour).
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: IPv4 or IPv6 address.
        type: str
        required: true
      mac:
        description: Its MAC address. One of C(mac) and C(mac_of) is required.
        type: str
      mac_of:
        description:
          - The lab interface whose MAC it is, C(INTERFACE) for a host end or C(NAMESPACE/INTERFACE) (the keys of
            RV(interfaces)), for an end whose MAC the kernel chose when the lab made it.
        type: str
      device:
        description: Interface the entry is on.
        type: str
        required: true
      namespace:
        description: Namespace of the interface; omitted means the host.
        type: str
  sysctls:
    description:
      - Kernel parameters, each C(name), C(value) and optional C(namespace), as the
        O(xdpkit.forwarding.sysctl#module:sysctls) option of M(xdpkit.forwarding.sysctl).
        O(state=absent) puts back the values found before xdpkit set them.
    type: list
    elements: dict
    default: []
  routes:
    description:
      - Routes, each with the keys of an entry of the O(xdpkit.forwarding.route#module:routes) option of
        M(xdpkit.forwarding.route) (C(dest), C(gateway), C(device), C(family), C(metric), C(table), C(type))
        plus an optional C(namespace) (omitted means the host). One dump per namespace and family decides
        what changes.
    type: list
    elements: dict
    default: []
  record:
    description:
      - Absolute path of a JSON file kept beside the lab, for example what its last verification saw (the
        scenario roles write one). Its content is returned as RV(record); O(state=absent) removes it with the lab.
      - Reading and removing it is bookkeeping, never reported as a change.
    type: path
  state:
    description: Whether the lab should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - xdpkit.forwarding.attributes
  - xdpkit.forwarding.attributes.action_group
seealso:
  - module: xdpkit.forwarding.veth
  - module: xdpkit.forwarding.route
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: Two namespaces behind the host, one subnet each, routed by the host
  xdpkit.forwarding.lab:
    namespaces: [uno, dos]
    links:
      - {name: uno, addresses: [10.0.1.1/24], peer: {name: veth0, namespace: uno, addresses: [10.0.1.2/24]}}
      - {name: dos, addresses: [10.0.2.1/24], peer: {name: veth0, namespace: dos, addresses: [10.0.2.2/24]}}
    sysctls:
      - {name: net.ipv4.conf.all.forwarding, value: "1"}
    routes:
      - {namespace: uno, dest: default, gateway: 10.0.1.1}
      - {namespace: dos, dest: default, gateway: 10.0.2.1}
  register: lab

- name: The MAC of uno's end, for a program that needs it
  ansible.builtin.debug:
    msg: "{{ lab.interfaces['uno/veth0'].mac }}"

- name: Remove it all
  xdpkit.forwarding.lab:
    namespaces: [uno, dos]
    links:
      - {name: uno, peer: {name: veth0, namespace: uno}}
      - {name: dos, peer: {name: veth0, namespace: dos}}
    sysctls:
      - {name: net.ipv4.conf.all.forwarding}
    state: absent
'''

RETURN = r'''
namespaces:
  description: The lab's namespaces (empty when absent).
  returned: success
  type: list
  elements: str
interfaces:
  description:
    - Every veth end after the run, keyed C(name) for a host interface and C(namespace/name) for one in
      a namespace, with the keys of the M(xdpkit.forwarding.veth) module's RV(xdpkit.forwarding.veth#module:interface)
      (C(name), C(namespace), C(ifindex), C(mtu), C(mac), C(link_state), C(gro), C(addresses)).
    - In check mode an end that does not exist yet has ifindex 0, its wanted or a placeholder MAC and C(predicted=true).
  returned: success
  type: dict
  sample: {uno: {name: uno, namespace: null, ifindex: 7, mac: "5e:1c:0a:33:12:01"}, uno/veth0: {ifindex: 2}}
sysctls:
  description: The sysctls with their values before (C(previous)) and after (C(value)) the run.
  returned: success
  type: list
  elements: dict
routes_changed:
  description: How many routes were added, replaced or removed.
  returned: success
  type: int
record:
  description: The content of O(record) (null when it is not given, missing or not JSON).
  returned: with state=present
  type: raw
predicted:
  description:
    - The parts check mode reported as changes because an earlier part of the same run would make what they need.
  returned: success
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._lab import LabManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import veth_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            namespaces=dict(type='list', elements='str', default=[]),
            links=dict(type='list', elements='dict', default=[], options=veth_argument_spec()),
            neighbours=dict(type='list', elements='dict', default=[], options=dict(
                address=dict(type='str', required=True),
                mac=dict(type='str'),
                mac_of=dict(type='str'),
                device=dict(type='str', required=True),
                namespace=dict(type='str'),
            )),
            sysctls=dict(type='list', elements='dict', default=[]),
            routes=dict(type='list', elements='dict', default=[]),
            record=dict(type='path'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, LabManager)


if __name__ == '__main__':
    main()
