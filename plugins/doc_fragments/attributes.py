# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # Modules that converge one object to a wanted state.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    support: full
    description: Reports what would change without changing anything.
  diff_mode:
    support: full
    description: Shows the managed object before and after, from the same comparison that decides C(changed).
  idempotent:
    support: full
    description: A second run with the same arguments reports no change.
'''

    # Modules that only read.
    INFO_MODULE = r'''
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Never changes anything.
'''

    # Every module: a member of the collection's action group (meta/runtime.yml).
    ACTION_GROUP = r'''
attributes:
  action_group:
    support: full
    membership: [xdpkit.forwarding.xdpkit]
    description: >-
      C(module_defaults) for C(group/xdpkit.forwarding.xdpkit) set options of all the
      collection's modules at once.
'''
