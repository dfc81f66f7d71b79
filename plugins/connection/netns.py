# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
name: netns
short_description: Run tasks inside a named network namespace on the controller
version_added: 0.2.0
description:
  - Runs every task of a host inside a named network namespace (C(/run/netns/NAME)) of the
    controller, so that a namespace of a lab is an inventory host like any router of a fleet.
    Modules then need no C(namespace) argument, and fact gathering shows the namespace's own
    interfaces and addresses.
  - Commands run as C(ip netns exec) runs them, without iproute2 - C(nsenter) into the network
    namespace, then C(unshare) a private mount namespace with a sysfs of the network
    namespace's own - and with the host's bpffs (C(/sys/fs/bpf)) bound back, so that pinned
    maps outlive the task. Files are copied on the controller's filesystem, which the
    namespace shares.
  - Namespaces of a lab on another host are not reachable with this plugin yet; run the
    playbook on that host (the lab's own controller) instead.
author:
  - xdpkit developers (@xdpkit)
requirements:
  - C(nsenter) and C(unshare) from util-linux, root privileges
options:
  netns:
    description: The network namespace to run in; defaults to the inventory hostname.
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_netns
extends_documentation_fragment:
  - connection_pipelining
notes:
  - The namespace must exist before the first task runs in it; create it from the controller
    (the C(lab_topology) role does) or from a host whose connection is local.
'''

EXAMPLES = r'''
# inventory.yml: every namespace of a lab is a host
# all:
#   children:
#     router:
#       hosts:
#         r1: {}
#         r2: {ansible_netns: lab-r2}
#   vars:
#     ansible_connection: xdpkit.forwarding.netns
#     ansible_python_interpreter: /usr/bin/python3
'''

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import netns_command, netns_exists


class Connection(LocalConnection):
    """The local connection, with every command run inside the host's namespace."""

    transport = 'xdpkit.forwarding.netns'
    has_pipelining = True

    def _connect(self):
        super()._connect()
        name = self.get_option('netns')
        if not netns_exists(name):
            raise AnsibleConnectionFailure(
                "network namespace '%s' does not exist on the controller (/run/netns/%s); create it first, or "
                "set ansible_netns to the namespace this host stands for" % (name, name))
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        try:
            wrapped = netns_command(self.get_option('netns'), cmd)
        except XdpkitError as exc:
            raise AnsibleConnectionFailure(str(exc))
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
