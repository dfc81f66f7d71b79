# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 4, modules] The few lines every xdpkit module shares: import checks, running a manager, errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import MissingDependency, XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._host_lock import HostLock


def require_pyroute2(module):
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
        HAS_PYROUTE2,
        PYROUTE2_IMPORT_ERROR,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2 (Debian: python3-pyroute2)'),
                         exception=str(PYROUTE2_IMPORT_ERROR))


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
