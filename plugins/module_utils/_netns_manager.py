# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The netns module's managers, one named namespace or many, present or
absent. A namespace removed takes with it the pins kept under its name and its lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_pins import remove_namespace_pins
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, check_netns_name
from ansible_collections.xdpkit.forwarding.plugins.module_utils._host_lock import remove_netns_lock
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    create_netns,
    netns_exists,
    netns_path,
    remove_netns,
)


class NetnsManager:
    """The `netns` module's logic: one named namespace, present or absent."""

    def __init__(self, params, check_mode=False):
        self.name = check_netns_name(params['name'])
        self.state = params['state']
        self.check_mode = check_mode

    def run(self):
        exists = netns_exists(self.name)
        wanted = self.state == 'present'
        changed = exists != wanted
        if changed and not self.check_mode:
            if wanted:
                create_netns(self.name)
            else:
                remove_netns(self.name)
                remove_namespace_pins(self.name)
                remove_netns_lock(self.name)
        view = {'name': self.name, 'path': netns_path(self.name)}
        return {
            'changed': changed,
            'namespace': view if wanted else None,
            'diff': {'before': view if exists else None, 'after': view if wanted else None},
        }


class NetnsSetManager:
    """Many namespaces in one call (a lab's): one module start instead of one per namespace.
    Every name is checked before any namespace is made; the ones this call made go again when
    a later one fails."""

    def __init__(self, params, check_mode=False):
        names = params['names']
        self.managers = [NetnsManager({'name': name, 'state': params['state']}, check_mode) for name in names]
        if len(set(names)) != len(names):
            raise XdpkitError('names: %s given twice' % ', '.join(sorted({n for n in names if names.count(n) > 1})))
        self.state = params['state']
        self.check_mode = check_mode

    def run(self):
        results = []
        try:
            for manager in self.managers:
                results.append(manager.run())
        except Exception:
            if self.state == 'present' and not self.check_mode:
                for manager, result in zip(self.managers, results):
                    if result['changed']:
                        remove_netns(manager.name)
            raise
        return {
            'changed': any(r['changed'] for r in results),
            'namespaces': [r['namespace'] for r in results if r['namespace']],
            'diff': {'before': [r['diff']['before'] for r in results if r['diff']['before']],
                     'after': [r['diff']['after'] for r in results if r['diff']['after']]},
        }
