# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] One program on many interfaces in one xdp_program call (a router's
ports), with xdp_pass on the receivers, `exclusive` taking the program off ports no longer
listed, `map_entries` filling the maps the programs share, and the rollback of a fresh attach
whose maps cannot take those entries. Each interface is an XdpProgramManager (_xdp_program).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _keeper, _ownership, _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    XdpkitError,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_map import XdpMapSetManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_program import Found, XdpProgramManager


def _interface_item(item, namespace):
    if isinstance(item, str):
        return {'interface': item, 'namespace': namespace}
    # Other keys are left alone, so that entries of a lab plan (lab_peers: node, namespace,
    # interface) can be passed as they are.
    if not isinstance(item, dict) or not item.get('interface'):
        raise XdpkitError("interfaces: every entry is an interface name or {interface: NAME, namespace: NS}; got %r" %
                          (item,))
    return {'interface': item['interface'], 'namespace': item.get('namespace') or namespace}


RECEIVER_PROGRAM = 'xdp_pass.c'


def _map_entries_manager(params, managers, namespace, check_mode):
    """The maps of map_entries, in the maps_dir every interface's program shares."""
    dirs = sorted({manager.maps_dir for manager in managers})
    if len(dirs) > 1:
        raise XdpkitError('map_entries: the interfaces keep their maps in different directories (%s); give '
                          'maps_dir, the directory their programs share' % ', '.join(dirs))
    maps = []
    for item in params['map_entries']:
        name = item.get('name') or ''
        if not name or '/' in name or name in ('.', '..'):
            raise XdpkitError("map_entries: %r is not the name of a map pinned in maps_dir (%s); give the map's "
                              "name as the program declares it, e.g. tx_ports" % (name, dirs[0]))
        maps.append({'path': os.path.join(dirs[0], name), 'entries': item.get('entries') or [],
                     'exclusive': bool(item.get('exclusive'))})
    return XdpMapSetManager({'namespace': namespace, 'state': 'present', 'maps': maps,
                             'traffic_control': params.get('traffic_control')}, check_mode)


class XdpProgramSetManager:
    """One program on many interfaces in one call (a router's ports), and xdp_pass on the
    veth ends that receive what it redirects: one module start, one read of the sources, one
    compile per program. Every interface is inspected (namespace, link, another tool's
    program, netfilter, traffic control) before any is changed, so bad input fails with nothing changed; then
    each converges in order, each whole."""

    def __init__(self, params, check_mode=False):
        self.check_mode = check_mode
        self.single = params.get('interfaces') is None
        if not self.single and params.get('pin_dir'):
            raise XdpkitError('interfaces: pin_dir is per interface; leave it out (each interface gets its own '
                              'default pin dir) or use one call per interface')
        namespace = params.get('namespace') or None
        items = [{'interface': params['interface'], 'namespace': namespace}] if self.single else \
            [_interface_item(item, namespace) for item in params['interfaces']]
        if not items:
            raise XdpkitError('interfaces: the list is empty; give at least one interface')
        receivers = [_interface_item(item, namespace) for item in params.get('receivers') or []]
        if receivers and params['state'] == 'present' and not params.get('receiver_source_files'):
            raise XdpkitError('receivers: the xdp_pass source did not come with the call; run the module through its '
                              'action plugin (as a task), which reads it on the controller')
        keys = [(i['namespace'], i['interface']) for i in items + receivers]
        twice = sorted({'%s in %s' % (k[1], describe_ns(k[0])) for k in keys if keys.count(k) > 1})
        if twice:
            raise XdpkitError('interfaces and receivers: %s given twice' % ', '.join(twice))
        self.managers = [XdpProgramManager(dict(params, **item), check_mode) for item in items]
        self.params = params
        self.exclusive = bool(params.get('exclusive')) and params['state'] == 'present'
        self.keeper_policy = params.get('keeper') or 'start'
        if self.exclusive and self.single:
            raise XdpkitError('exclusive: give the ports as interfaces (the list the program should run on, '
                              'and on no other port of its maps_dir)')
        receiver_params = dict(params, pin_dir=None, maps_dir=None, defines={}, function=None,
                               source_files=params.get('receiver_source_files'),
                               source_main=RECEIVER_PROGRAM if params['state'] == 'present' else None)
        self.receivers = [XdpProgramManager(dict(receiver_params, **item), check_mode) for item in receivers]
        self.map_entries = None
        if params.get('map_entries') and params['state'] == 'present':
            self.map_entries = _map_entries_manager(params, self.managers, namespace, check_mode)

    def _unlisted(self):
        """For `exclusive`: managers that take the program off the ports it was attached to with this
        maps_dir (found by their default pin dirs, NAMESPACE@INTERFACE, in that namespace) that are no
        longer listed. Instances attached with a pin_dir of their own are not found, so left alone."""
        dirs = {manager.maps_dir for manager in self.managers}
        namespaces = {manager.namespace for manager in self.managers}
        if len(dirs) > 1 or len(namespaces) > 1:
            raise XdpkitError('exclusive: the interfaces must share one namespace and one maps_dir (the ports of '
                              'one router); got %s' % ', '.join(sorted(
                                  '%s in %s' % (m.interface, describe_ns(m.namespace)) for m in self.managers)))
        maps_dir, namespace = dirs.pop(), namespaces.pop()
        listed = {manager.pin_dir for manager in self.managers}
        unlisted = []
        for pin_dir in _ownership.instances_using_maps_dir(maps_dir, None):
            interface = os.path.basename(pin_dir).partition('@')[2]
            if pin_dir in listed or not interface or \
                    _bpf_pins.default_pin_dir(namespace, interface) != pin_dir:
                continue
            unlisted.append(XdpProgramManager(dict(
                self.params, state='absent', interface=interface, namespace=namespace, pin_dir=pin_dir,
                maps_dir=maps_dir, force=False, leave_foreign=True), self.check_mode))
        return unlisted

    def _inspect_all(self, managers):
        found, warnings = [], []
        for manager in managers:
            try:
                found.append(manager.inspect())
            except MissingDependency as exc:
                if not self.check_mode:
                    raise
                # Check mode did not make the namespace or link an earlier task would have.
                warnings.append('check mode: %s; assuming an earlier task of this run creates it' % exc)
                found.append(Found(Found.PREDICTED))
        return found, warnings

    def _check_map_entries(self):
        try:
            self.map_entries.check_before_changes()
        except MissingDependency as exc:
            if not self.check_mode:
                raise
            return ['check mode: %s; assuming an earlier task of this run creates it' % exc]
        return []

    def _fill_maps(self, converged):
        """Fill map_entries; `converged` is (manager, result) of every program and receiver."""
        try:
            return self.map_entries.run()
        except XdpkitError as exc:
            # Checked before any change, so this is a map the program has just created (its type or
            # size): take back what this run attached where nothing was attached before.
            taken_back = []
            for manager, result in converged:
                if not self.check_mode and result['changed'] and result['diff']['before'] is None:
                    XdpProgramManager(dict(manager.params, state='absent'), self.check_mode).run()
                    taken_back.append(manager.interface)
            if taken_back:
                raise type(exc)('%s (the programs this run attached are detached again: %s)' % (
                    exc, ', '.join(taken_back)))
            raise

    def run(self):
        groups = {'programs': self.managers, 'receivers': self.receivers,
                  'removed': self._unlisted() if self.exclusive else []}
        order = ('programs', 'receivers', 'removed')
        found, warnings = self._inspect_all([m for group in order for m in groups[group]])
        if self.map_entries:
            warnings += self._check_map_entries()
        # Every manager was inspected before any runs; now each converges, in the same order.
        found = iter(found)
        converged = {group: [(manager, manager.run(next(found))) for manager in groups[group]] for group in order}
        filled = self._fill_maps(converged['programs'] + converged['receivers']) if self.map_entries else None
        diffs = {}
        for group in order:
            diffs[group] = DifferenceTracker()
            for manager, result in converged[group]:
                diffs[group].add_result('%s in %s' % (manager.interface, describe_ns(manager.namespace)), result)
        programs = [result for _manager, result in converged['programs']]
        removed = [(manager, result) for manager, result in converged['removed'] if result['changed']]
        result = dict(programs[0]) if self.single else {
            'programs': [_without_diff(r) for r in programs],
            # A port taken off shows in the diff as a program before and none after.
            'diff': {'before': diffs['programs'].changes()['before'] +
                     [before for before in diffs['removed'].changes()['before'] if before],
                     'after': diffs['programs'].changes()['after']},
        }
        if self.exclusive:
            result['removed'] = [{'interface': m.interface, 'namespace': m.namespace, 'pin_dir': m.pin_dir,
                                  'program': r['diff']['before']} for m, r in removed]
        if self.receivers or filled:
            before, after = {'programs': result['diff']['before']}, {'programs': result['diff']['after']}
            if self.receivers:
                result['receivers'] = [_without_diff(r) for _m, r in converged['receivers']]
                before['receivers'] = diffs['receivers'].changes()['before']
                after['receivers'] = diffs['receivers'].changes()['after']
            if filled:
                result['map_entries'] = filled['maps']
                before['map_entries'], after['map_entries'] = filled['diff']['before'], filled['diff']['after']
                warnings += filled['warnings']
            result['diff'] = {'before': before, 'after': after}
        results = [r for group in order for _m, r in converged[group]]
        keeper = self._keeper(any(m.needs_keeper for m in self.managers), warnings)
        if keeper:
            result['keeper'] = keeper
        result.update(changed=any(diffs[group].changed for group in order) or bool(filled and filled['changed'])
                      or bool(keeper and keeper['started']),
                      compiled=any(r['compiled'] for r in results),
                      compile_seconds=sum(r['compile_seconds'] for r in results), warnings=warnings)
        return result

    def _keeper(self, needed, warnings):
        """The keeper renews the port entries the router trusts: make sure one runs (keeper=start),
        or say that none does (keeper=external, a service manager's to run)."""
        if not needed:
            return None
        current = _keeper.running()
        today = _keeper.keeper_version()
        if current and current.get('version') == today:
            return {'pid': current['pid'], 'version': today, 'started': False}
        if self.keeper_policy == 'external':
            warnings.append(
                'no keeper of this version runs on this host%s: the router hands every frame to the kernel %.1f s '
                'after this run, until xdpkit-keeper runs (it keeps the port entries current and vouches for them)'
                % (' (version %s does)' % current['version'] if current else '', _ports.LEASE_SECONDS))
            return {'pid': current['pid'] if current else None, 'version': current and current['version'],
                    'started': False}
        if self.check_mode:
            return {'pid': None, 'version': today, 'started': True}
        return {'pid': _keeper.ensure() or _keeper.running()['pid'], 'version': today, 'started': True}


def _without_diff(result):
    return {k: v for k, v in result.items() if k != 'diff'}
