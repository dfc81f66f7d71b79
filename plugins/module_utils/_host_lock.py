# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] The lock file under /run/xdpkit that keeps xdpkit's changes on a host
(or in one namespace, run through the netns connection) one at a time, and its removal with
the namespace it was for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import current_netns_name

LOCK_FILE = '/run/xdpkit/lock'


def lock_file():
    """The host's lock, or one of its own for a namespace the module was run in (the netns
    connection): routers in namespaces of one lab host converge in parallel."""
    name = current_netns_name()
    return LOCK_FILE if name is None else '%s@%s' % (LOCK_FILE, name)


LOCK_TIMEOUT = 300


class HostLock:
    """One xdpkit change at a time per host: two playbooks converging the same scenario
    interleave their tasks, never the inside of one (a veth created twice, a program
    replaced while the other run fills its maps)."""

    def __init__(self, module_name, timeout=LOCK_TIMEOUT):
        self.module_name = module_name
        self.path = lock_file()
        self.timeout = timeout
        self.handle = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, 'a+')
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    self.handle.seek(0)
                    holder = self.handle.read().strip() or 'unknown'
                    self.handle.close()
                    raise XdpkitError(
                        "another xdpkit run holds %s (%s) and did not let go within %d s; wait for it to "
                        "finish, or stop it if it hangs" % (self.path, holder, self.timeout))
                time.sleep(0.05)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write('pid %d, module %s' % (os.getpid(), self.module_name))
        self.handle.flush()
        return self

    def __exit__(self, *exc_info):
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def remove_netns_lock(name):
    """The lock of modules run inside the namespace (the netns connection) goes with it: a lab
    torn down leaves no /run/xdpkit/lock@NAME behind."""
    try:
        os.unlink('%s@%s' % (LOCK_FILE, name))
    except FileNotFoundError:
        pass
