# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
name: netns
short_description: Run tasks inside a named network namespace, on the controller or on a lab host over SSH
version_added: 0.2.0
description:
  - Runs every task of a host inside a named network namespace (C(/run/netns/NAME)), so that a
    namespace of a lab is an inventory host like any router of a fleet. Modules then need no
    C(namespace) argument, and fact gathering shows the namespace's own interfaces and addresses.
  - "Two transports, one mechanism: with O(netns_transport=local) (the default) the namespace
    is on the controller; with O(netns_transport=ssh) it is on a lab host that Ansible's own
    C(ansible.builtin.ssh) connection reaches (O(host), O(port), O(remote_user), O(private_key_file)
    and the C(ssh_*_args) options are passed to it; everything else of the SSH connection comes
    from its configuration, e.g. C(ansible.cfg) or C(~/.ssh/config))."
  - Either way every command runs as C(ip netns exec) runs it, without iproute2 - C(nsenter)
    into the network namespace, then C(unshare) a private mount namespace with a sysfs of the
    network namespace's own - and with the host's bpffs (C(/sys/fs/bpf)) bound back, so that
    pinned maps outlive the task. Files are copied to the (lab) host's filesystem, which the
    namespace shares.
author:
  - xdpkit developers (@xdpkit)
requirements:
  - C(nsenter) and C(unshare) from util-linux, root privileges on the host that holds the namespaces
options:
  netns:
    description: The network namespace to run in; defaults to the inventory hostname.
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_netns
  netns_transport:
    description:
      - V(local) - the namespace is on the controller.
      - V(ssh) - the namespace is on the host reached over SSH at O(host).
    type: str
    choices: [local, ssh]
    default: local
    vars:
      - name: ansible_netns_transport
  host:
    description: With O(netns_transport=ssh), the lab host that holds the namespace.
    type: str
    vars:
      - name: ansible_host
      - name: ansible_ssh_host
  port:
    description: With O(netns_transport=ssh), the lab host's SSH port.
    type: int
    vars:
      - name: ansible_port
      - name: ansible_ssh_port
  remote_user:
    description:
      - With O(netns_transport=ssh), the user to log in as. Entering a namespace needs root, so
        this is C(root) (become is not applied around C(nsenter)).
    type: str
    vars:
      - name: ansible_user
      - name: ansible_ssh_user
  private_key_file:
    description: With O(netns_transport=ssh), the SSH private key.
    type: path
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
  ssh_args:
    description: With O(netns_transport=ssh), replaces the SSH connection's default arguments.
    type: str
    vars:
      - name: ansible_ssh_args
  ssh_common_args:
    description: With O(netns_transport=ssh), arguments added to every C(ssh), C(sftp) and C(scp) call.
    type: str
    vars:
      - name: ansible_ssh_common_args
  ssh_extra_args:
    description: With O(netns_transport=ssh), arguments added to every C(ssh) call.
    type: str
    vars:
      - name: ansible_ssh_extra_args
extends_documentation_fragment:
  - connection_pipelining
notes:
  - The namespace must exist before the first task runs in it; create it from a host whose
    connection is local or ssh (the C(lab_topology) role does). A missing one makes the host
    unreachable, with the reason.
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
#
# the same lab on a lab host reached over SSH
#   vars:
#     ansible_connection: xdpkit.forwarding.netns
#     ansible_netns_transport: ssh
#     ansible_host: labhost.example.net
#     ansible_user: root
#     ansible_python_interpreter: /usr/bin/python3
'''

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.plugins.loader import connection_loader

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import netns_command, netns_exists

# The options handed to ansible.builtin.ssh when the namespace is on a lab host.
SSH_OPTIONS = ('host', 'port', 'remote_user', 'private_key_file', 'ssh_args', 'ssh_common_args', 'ssh_extra_args')
# ansible.builtin.ssh reports exit code 255 as "could not connect": the host is unreachable.
SSH_UNREACHABLE = 255


class Connection(LocalConnection):
    """The local connection, or Ansible's ssh connection to a lab host, with every command run
    inside the host's namespace."""

    transport = 'xdpkit.forwarding.netns'
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ssh = None

    def _over_ssh(self):
        return self.get_option('netns_transport') == 'ssh'

    def _ssh_connection(self):
        if self._ssh is None:
            self._ssh = connection_loader.get('ansible.builtin.ssh', self._play_context, shell=self._shell)
            direct = {name: self.get_option(name) for name in SSH_OPTIONS if self.get_option(name) is not None}
            self._ssh.set_options(direct=direct)
        return self._ssh

    def _connect(self):
        if self._over_ssh():
            if not self.get_option('host'):
                raise AnsibleConnectionFailure('netns over ssh needs the lab host: set ansible_host')
            self._ssh_connection()._connect()
            self._connected = True
            return self
        super()._connect()
        name = self.get_option('netns')
        if not netns_exists(name):
            raise AnsibleConnectionFailure(
                "network namespace '%s' does not exist on the controller (/run/netns/%s); create it first, or "
                "set ansible_netns to the namespace this host stands for" % (name, name))
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        over_ssh = self._over_ssh()
        try:
            wrapped = netns_command(self.get_option('netns'), cmd, missing_exit=SSH_UNREACHABLE if over_ssh else None)
        except XdpkitError as exc:
            raise AnsibleConnectionFailure(str(exc))
        if over_ssh:
            self._connect()
            return self._ssh.exec_command(wrapped, in_data=in_data, sudoable=sudoable)
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)

    def put_file(self, in_path, out_path):
        if self._over_ssh():
            self._connect()
            return self._ssh.put_file(in_path, out_path)
        return super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        if self._over_ssh():
            self._connect()
            return self._ssh.fetch_file(in_path, out_path)
        return super().fetch_file(in_path, out_path)

    def reset(self):
        if self._ssh is not None:
            self._ssh.reset()
        return super().reset()

    def close(self):
        if self._ssh is not None:
            self._ssh.close()
        return super().close()
