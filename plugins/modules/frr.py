#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: frr
short_description: Manage FRR routing daemons inside network namespaces, one instance per namespace
version_added: 0.4.0
description:
  - Runs one FRR instance (zebra and the routing daemons, kept alive by watchfrr) inside each
    given network namespace, with the given C(frr.conf), and waits, bounded, until the routes
    it should learn are in each namespace's kernel routing table.
  - An instance is an FRR "pathspace" named after its namespace (O(instances[].name)), with its
    configuration in C(/etc/frr/NAME/) and its pid files, sockets and log C(frr.log) in
    C(/var/run/frr/NAME/). Reach it with C(ip netns exec NAME vtysh -N NAME).
  - Started with Debian's C(/usr/lib/frr/frrinit.sh start NAME) (C(watchfrr --netns));
    stopped by the pids in its pid files, never by process name, so the system's own FRR and
    other labs' instances are never touched. A pathspace that this module did not make is
    refused.
  - The configuration is checked with C(vtysh --dryrun) before anything starts. A changed
    configuration is applied to the running daemons with FRR's own C(frr-reload.py) (nothing
    restarts; a changed O(instances[].daemons) restarts that instance; a configuration FRR does
    not take leaves the old one in place, files included); an unchanged one with all its daemons
    running is left alone (changed=false, nothing restarted).
  - O(state=absent) stops the instances and removes their configuration and runtime
    directories.
requirements:
  - FRR 8 (Debian packages C(frr) and C(frr-pythontools)); the C(xdpkit.forwarding.prerequisites)
    role installs them with O(ignore:prerequisites_frr=true) without starting the system's FRR.
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  instances:
    description: The FRR instances.
    type: list
    elements: dict
    required: true
    suboptions:
      namespace:
        description: The network namespace the daemons run in. It must exist.
        type: str
        required: true
      name:
        description: The pathspace (C(vtysh -N NAME)); defaults to O(instances[].namespace).
        type: str
      config:
        description:
          - The integrated configuration (C(frr.conf)) as text. Required with O(state=present).
        type: str
      daemons:
        description: The daemons to run besides zebra (which always runs).
        type: list
        elements: str
        choices: [zebra, ospfd, ospf6d, staticd, bfdd, bgpd, ripd, ripngd, isisd]
        default: [zebra, ospfd, ospf6d]
  wait_for_routes:
    description:
      - Prefixes that must be in a namespace's main routing table (learned or connected) before the
        module returns. The run fails after O(timeout) naming each namespace and the prefixes it lacks.
    type: list
    elements: dict
    default: []
    suboptions:
      namespace:
        description: The namespace whose table is read.
        type: str
        required: true
      prefixes:
        description: The prefixes, both families (C(10.0.0.0/31), C(fd00::/64)).
        type: list
        elements: str
        required: true
      label:
        description: What to call this namespace in the failure message (e.g. the lab node's name).
        type: str
  timeout:
    description: Seconds to wait for O(wait_for_routes), at least 1.
    type: int
    default: 60
  state:
    description: Whether the instances run.
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
- name: OSPF in namespace r1, waiting for h2's subnet
  xdpkit.forwarding.frr:
    instances:
      - namespace: r1
        config: "{{ lookup('file', 'r1.conf') }}"
    wait_for_routes:
      - {namespace: r1, prefixes: [10.81.0.12/30, "fd00:81:0:3::/64"]}

- name: Stop it and remove its configuration
  xdpkit.forwarding.frr:
    instances: [{namespace: r1}]
    state: absent
'''

RETURN = r'''
instances:
  description: Every instance wanted present, after the run.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The pathspace (C(vtysh -N NAME)).
      type: str
    namespace:
      description: The network namespace its daemons run in.
      type: str
    daemons:
      description: The pid of each running daemon, watchfrr included.
      type: dict
      sample: {watchfrr: 4120, zebra: 4135, ospfd: 4140, ospf6d: 4143, staticd: 4146}
    config_path:
      description: Its C(frr.conf).
      type: str
      sample: /etc/frr/r1/frr.conf
    running:
      description: Whether all its daemons run (false only in check mode, before the first start).
      type: bool
removed:
  description: With O(state=absent), the instances that were stopped and removed.
  returned: with state=absent
  type: list
  elements: str
converged_in:
  description: Seconds until every prefix of O(wait_for_routes) was there (null in check mode).
  returned: with state=present
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._frr import (
    DEFAULT_DAEMONS,
    KNOWN_DAEMONS,
    FrrSetManager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import require_pyroute2, run_manager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            instances=dict(type='list', elements='dict', required=True, options=dict(
                namespace=dict(type='str', required=True),
                name=dict(type='str'),
                config=dict(type='str'),
                daemons=dict(type='list', elements='str', default=list(DEFAULT_DAEMONS),
                             choices=list(KNOWN_DAEMONS)),
            )),
            wait_for_routes=dict(type='list', elements='dict', default=[], options=dict(
                namespace=dict(type='str', required=True),
                prefixes=dict(type='list', elements='str', required=True),
                label=dict(type='str'),
            )),
            timeout=dict(type='int', default=60),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, FrrSetManager)


if __name__ == '__main__':
    main()
