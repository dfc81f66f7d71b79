#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: sysctl
short_description: Set a net.* sysctl inside a network namespace
version_added: 0.1.0
description:
  - Sets a network sysctl in a given namespace. C(net.*) keys are per namespace, which is
    why M(ansible.posix.sysctl) (which works on the host and C(sysctl.conf)) cannot do this.
  - Only C(net.*) keys are accepted, so a lab role can never change host-wide settings.
  - O(sysctls) sets many keys, in any namespaces, in one call (one module start instead of one
    per key). Every key is checked before any is written; keys written before one the kernel refuses
    are put back.
  - The value found before the first change is remembered (under C(/run/xdpkit)); O(state=absent)
    restores it. The setting is not persisted across reboots; namespaces are not either.
requirements:
  - root privileges on the target
options:
  name:
    description:
      - The key, for example C(net.ipv4.conf.all.forwarding).
      - One of O(name) and O(sysctls) is required.
    type: str
    aliases: [key]
  value:
    description: The wanted value; required with O(name) and O(state=present).
    type: str
  sysctls:
    description:
      - Many keys at once, each C({name, value, namespace}); C(value) only with O(state=present),
        C(namespace) defaults to O(namespace).
    type: list
    elements: dict
  namespace:
    description: Namespace to set it in; omitted means the host namespace.
    type: str
  state:
    description:
      - V(present) sets the value.
      - V(absent) restores the value the key had before this module first changed it.
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
- name: Turn on IPv4 forwarding in namespace router
  xdpkit.forwarding.sysctl:
    namespace: router
    name: net.ipv4.conf.all.forwarding
    value: "1"

- name: Forwarding for both families in one call
  xdpkit.forwarding.sysctl:
    namespace: router
    sysctls:
      - {name: net.ipv4.conf.all.forwarding, value: "1"}
      - {name: net.ipv6.conf.all.forwarding, value: "1"}

- name: Put the host's IPv6 forwarding back as it was
  xdpkit.forwarding.sysctl:
    name: net.ipv6.conf.all.forwarding
    state: absent
'''

RETURN = r'''
name:
  description: The key.
  returned: with O(name)
  type: str
sysctls:
  description: With O(sysctls), every key with its value after and before the run.
  returned: with O(sysctls)
  type: list
  elements: dict
  sample: [{name: net.ipv4.conf.all.forwarding, namespace: router, value: "1", previous: "0"}]
namespace:
  description: The namespace, null for the host.
  returned: with O(name)
  type: str
value:
  description: The value after the run.
  returned: with O(name)
  type: str
  sample: "1"
previous:
  description: The value before the run.
  returned: with O(name)
  type: str
  sample: "0"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import run_manager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import SysctlManager, SysctlSetManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', aliases=['key']),
            value=dict(type='str'),
            sysctls=dict(type='list', elements='dict'),
            namespace=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        mutually_exclusive=[('name', 'sysctls'), ('value', 'sysctls')],
        required_one_of=[('name', 'sysctls')],
        supports_check_mode=True,
    )
    run_manager(module, SysctlSetManager if module.params['sysctls'] is not None else SysctlManager)


if __name__ == '__main__':
    main()
