# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few lines every xdpkit module shares: import checks, running a manager, errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError


def require_pyroute2(module):
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
        HAS_PYROUTE2,
        PYROUTE2_IMPORT_ERROR,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2 (Debian: python3-pyroute2)'),
                         exception=str(PYROUTE2_IMPORT_ERROR))


def run_manager(module, manager_class):
    """Hand the module's parameters to a manager and exit with its result."""
    try:
        result = manager_class(module.params, check_mode=module.check_mode).run()
    except XdpkitError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # a bug or an unexpected kernel answer: keep the trace
        module.fail_json(msg='%s: %s' % (type(exc).__name__, exc), exception=traceback.format_exc())
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)
