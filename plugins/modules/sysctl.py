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
  - The value found before the first change is remembered (under C(/run/xdpkit)); O(state=absent)
    restores it. The setting is not persisted across reboots; namespaces are not either.
requirements:
  - root privileges on the target
options:
  name:
    description: The key, for example C(net.ipv4.conf.all.forwarding).
    type: str
    required: true
    aliases: [key]
  value:
    description: The wanted value; required with O(state=present).
    type: str
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
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: Turn on IPv4 forwarding in namespace router
  xdpkit.forwarding.sysctl:
    namespace: router
    name: net.ipv4.conf.all.forwarding
    value: "1"

- name: Put the host's IPv6 forwarding back as it was
  xdpkit.forwarding.sysctl:
    name: net.ipv6.conf.all.forwarding
    state: absent
'''

RETURN = r'''
name:
  description: The key.
  returned: success
  type: str
namespace:
  description: The namespace, null for the host.
  returned: success
  type: str
value:
  description: The value after the run.
  returned: success
  type: str
  sample: "1"
previous:
  description: The value before the run.
  returned: success
  type: str
  sample: "0"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import run_manager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import SysctlManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True, aliases=['key']),
            value=dict(type='str'),
            namespace=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        required_if=[('state', 'present', ['value'])],
        supports_check_mode=True,
    )
    run_manager(module, SysctlManager)


if __name__ == '__main__':
    main()
