# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] The before and after of what a manager compared.

In the spirit of community.docker's DifferenceTracker: a manager records each comparison it
makes once, with the values it shows, and both `changed` and the diff are read from that
record, so they can never disagree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class DifferenceTracker:
    """Named comparisons: (name, before, after, changed), in the order they were made."""

    def __init__(self):
        self._items = []

    def add(self, name, before, after, changed=None):
        """Record one comparison and return whether it changes something. `changed` is
        before != after unless the decision covers more than the values shown (e.g. pins left
        behind by a program that is gone): then the caller gives it."""
        changed = before != after if changed is None else bool(changed)
        self._items.append((name, before, after, changed))
        return changed

    def add_result(self, name, result):
        """A manager's result ({'changed': ..., 'diff': {'before': ..., 'after': ...}}) as one item."""
        return self.add(name, result['diff']['before'], result['diff']['after'], result['changed'])

    @property
    def changed(self):
        return any(changed for _name, _before, _after, changed in self._items)

    def diff(self):
        """{'before': {name: before}, 'after': {name: after}} of every comparison."""
        return {'before': dict((name, before) for name, before, _after, _changed in self._items),
                'after': dict((name, after) for name, _before, after, _changed in self._items)}

    def diff_of(self, name):
        """{'before': before, 'after': after} of the one comparison called `name`."""
        for item_name, before, after, _changed in self._items:
            if item_name == name:
                return {'before': before, 'after': after}
        raise KeyError(name)

    def changes(self):
        """{'before': [...], 'after': [...]}: the values of the comparisons that change
        something, in order (a set manager's diff of the objects it changed)."""
        changed = [item for item in self._items if item[3]]
        return {'before': [before for _name, before, _after, _c in changed],
                'after': [after for _name, _before, after, _c in changed]}
