# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few lines every xdpkit module shares: import checks, running a manager, errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import MissingDependency, XdpkitError


def require_pyroute2(module):
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
        HAS_PYROUTE2,
        PYROUTE2_IMPORT_ERROR,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2 (Debian: python3-pyroute2)'),
                         exception=str(PYROUTE2_IMPORT_ERROR))


LOCK_FILE = '/run/xdpkit/lock'


def lock_file():
    """The host's lock, or one of its own for a namespace the module was run in (the netns
    connection): routers in namespaces of one lab host converge in parallel."""
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import current_netns_name
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


def run_manager(module, manager_class, changes=True):
    """Hand the module's parameters to a manager and exit with its result.

    Modules that change things (changes=True) run under the host lock, check mode included,
    so that what they report is what the next run will find.
    """
    try:
        if changes:
            with HostLock(manager_class.__name__):
                result = manager_class(module.params, check_mode=module.check_mode).run()
        else:
            result = manager_class(module.params, check_mode=module.check_mode).run()
    except MissingDependency as exc:
        if not module.check_mode:
            module.fail_json(msg=str(exc))
        # Check mode did not make what an earlier task would have: predict the change from
        # the arguments alone (they were validated before anything was looked up).
        module.warn('check mode: %s; assuming an earlier task of this run creates it' % exc)
        module.exit_json(changed=changes, predicted=True)
    except XdpkitError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # a bug or an unexpected kernel answer: keep the trace
        module.fail_json(msg='%s: %s' % (type(exc).__name__, exc), exception=traceback.format_exc())
    if not module._diff:
        result.pop('diff', None)
    for warning in result.pop('warnings', None) or []:
        module.warn(warning)
    module.exit_json(**result)
