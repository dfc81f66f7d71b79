#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns
short_description: Manage a named network namespace
version_added: 0.1.0
description:
  - Creates or removes a named network namespace, the kind C(ip netns) lists, mounted under
    C(/run/netns/NAME).
  - Names are matched exactly; an existing C(mario2) is never taken for C(mario).
  - Removing a namespace destroys the virtual links inside it; veth peers in other
    namespaces go with them.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  name:
    description:
      - Name of the namespace, a plain file name under C(/run/netns).
      - Must not be empty, longer than 255 bytes, or contain C(/).
      - One of O(name) and O(names) is required.
    type: str
  names:
    description:
      - Many namespaces in one call (one module start instead of one per namespace), each
        named as O(name) is. Every name is checked first; namespaces this call made are removed
        again when a later one fails.
    type: list
    elements: str
  state:
    description: Whether the namespace should exist.
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
- name: Create the namespace uno
  xdpkit.forwarding.netns:
    name: uno

- name: Remove it again
  xdpkit.forwarding.netns:
    name: uno
    state: absent

- name: A lab's namespaces in one call
  xdpkit.forwarding.netns:
    names: [uno, dos, router]
'''

RETURN = r'''
namespace:
  description: The namespace, when it is wanted present (with O(name)).
  returned: success
  type: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: uno
    path:
      description: The mounted namespace file.
      type: str
      sample: /run/netns/uno
namespaces:
  description: With O(names), every namespace wanted present, each as RV(namespace).
  returned: with O(names)
  type: list
  elements: dict
  sample: [{name: uno, path: /run/netns/uno}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns_manager import NetnsManager, NetnsSetManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str'),
            names=dict(type='list', elements='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        mutually_exclusive=[('name', 'names')],
        required_one_of=[('name', 'names')],
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, NetnsSetManager if module.params['names'] is not None else NetnsManager)


if __name__ == '__main__':
    main()
