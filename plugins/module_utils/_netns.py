# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 1, kernel interfaces] Named network namespaces (as `ip netns` sees them) and entering them.

Entering is done with setns(2) on the calling thread only, for the length of a `with`
block. A netlink socket opened inside the block stays bound to that namespace after the
block ends, which is how every other helper talks to a namespace without forking.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import errno
import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    XdpkitError,
    check_netns_name,
    libc,
)

NETNS_RUN_DIR = '/run/netns'
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def list_netns():
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if not n.startswith('.'))
    except FileNotFoundError:
        return []


def netns_path(name):
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name):
    """True when /run/netns/NAME is a mounted namespace file (exact name match)."""
    return name in list_netns() and _is_netns_mount(netns_path(name))


def _is_netns_mount(path):
    # An `ip netns add` that died half-way leaves an empty plain file behind; setns on it
    # fails with EINVAL, so treat it as missing and let create() repair it. A mounted
    # namespace file lives on nsfs, not on the tmpfs of /run/netns.
    try:
        return os.stat(path).st_dev != os.stat(NETNS_RUN_DIR).st_dev
    except OSError:
        return False


def netns_inode(name):
    """Identity of a namespace, so that a deleted and re-created namespace is a new one."""
    if not name:
        return os.stat('/proc/thread-self/ns/net').st_ino
    return os.stat(netns_path(name)).st_ino


def current_netns_name():
    """The name under /run/netns of the namespace this process runs in, or None when it has
    none (the namespace Ansible was started in: "the host"). Modules run through the netns
    connection plugin are in a named namespace without being told its name; pins and locks
    keyed by this never mix two namespaces whose interfaces have the same names."""
    here = os.stat('/proc/thread-self/ns/net').st_ino
    for name in list_netns():
        try:
            if os.stat(netns_path(name)).st_ino == here:
                return name
        except OSError:
            continue
    return None


# Run inside the namespace as `ip netns exec` does, but keep bpffs: a private mount namespace
# with a sysfs of the network namespace's own (so /sys/class/net and fact gathering show its
# interfaces), and the bpffs mounted on /sys/fs/bpf moved back over it (pins must outlive the
# command).
_ENTER_SCRIPT = ('bpffs=$(mktemp -d) && mount --bind /sys/fs/bpf "$bpffs" && umount -l /sys && '
                 'mount -t sysfs -o ro xdpkit-netns /sys && mount --move "$bpffs" /sys/fs/bpf && rmdir "$bpffs" && '
                 'exec "$0" -c "$1"')


def netns_command(name, command, shell='/bin/sh', missing_exit=None):
    """A shell command line that runs `command` (a shell command line) in namespace `name`.
    With `missing_exit`, a missing namespace ends it with that code and says so on stderr
    (over SSH, 255 makes Ansible report the host unreachable, as it should)."""
    import shlex

    check_netns_name(name)
    path = shlex.quote(netns_path(name))
    enter = 'nsenter --net=%s -- unshare --mount --propagation slave -- %s -c %s %s %s' % (
        path, shlex.quote(shell), shlex.quote(_ENTER_SCRIPT), shlex.quote(shell), shlex.quote(command))
    if missing_exit is None:
        return enter
    message = ("network namespace '%s' does not exist on the lab host (%s); create it first, or set "
               "ansible_netns to the namespace this host stands for" % (name, netns_path(name)))
    return "[ -e %s ] || { printf '%%s\\n' %s >&2; exit %d; }; %s" % (
        path, shlex.quote(message), missing_exit, enter)


def missing_netns_error(name):
    existing = ', '.join(list_netns()) or 'none'
    return MissingDependency(
        "network namespace '%s' does not exist (existing: %s); create it first with "
        "xdpkit.forwarding.netns" % (name, existing))


@contextlib.contextmanager
def in_netns(name):
    """Run the block with this thread in namespace `name` (None or '' = stay where we are)."""
    if not name:
        yield
        return
    check_netns_name(name)
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise missing_netns_error(name)
    try:
        original = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                _setns(target)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise XdpkitError(
                        "'%s' is not a mounted network namespace (left over from an interrupted "
                        "'ip netns add'?); run xdpkit.forwarding.netns with state=present to repair it" %
                        netns_path(name))
                raise
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)
    finally:
        os.close(target)


def create_netns(name):
    """Create the named namespace; pyroute2 does the unshare + bind mount like iproute2."""
    from pyroute2 import netns as pr_netns  # guarded by the caller's import check

    path = netns_path(name)
    if os.path.exists(path) and not _is_netns_mount(path):
        os.unlink(path)
    pr_netns.create(name)


def remove_netns(name):
    from pyroute2 import netns as pr_netns

    pr_netns.remove(name)
