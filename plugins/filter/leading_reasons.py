# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _reasons


def _totals(value, what):
    if isinstance(value, dict):
        return _reasons.total([value])
    if isinstance(value, (list, tuple)):
        # xdp_stats results (a loop's .results) or reason dicts
        return _reasons.total([item.get('reasons') if isinstance(item, dict) and 'reasons' in item else item
                               for item in value])
    raise AnsibleFilterError('leading_reasons: %s must be xdp_stats results or reason counters, not %s' % (
        what, type(value).__name__))


def leading_reasons(after, before=None, count=3):
    try:
        count = int(count)
    except (TypeError, ValueError):
        raise AnsibleFilterError('leading_reasons: count must be a number, not %r' % (count,))
    risen = _reasons.difference(_totals(after, 'the input'), _totals(before or [], 'before'))
    return _reasons.leading_described(risen, count)


class FilterModule:
    def filters(self):
        return {'leading_reasons': leading_reasons}
