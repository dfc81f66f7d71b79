# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] A whole lab in one call: namespaces, veth pairs, neighbours, sysctls and routes.

The lab_topology role used to make one module call per kind of object and per link; each
call costs a module start (about half a second of CPU here), which was most of what an
idempotent re-run of site.yml cost. This composes the same managers in one process, in the
order a lab needs them, under one host lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import MissingDependency, XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._neighbour import NeighbourManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import remove_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns_manager import NetnsSetManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteSetManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import SysctlSetManager, write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

PLACEHOLDER_MAC = '00:00:00:00:00:00'
# A valid stand-in for a mac_of neighbour's MAC while its entry is checked, before the lab's links
# (and so the MAC) exist; replaced before the entry is written.
STAND_IN_MAC = '02:00:00:00:00:01'


def interface_key(view):
    """`name` for a host interface, `namespace/name` in a namespace (neither may hold a /)."""
    return '%s/%s' % (view['namespace'], view['name']) if view['namespace'] else view['name']


def _predicted_end(end):
    # Check mode on a lab whose namespaces do not exist yet: what the scenario roles need to
    # plan with (the same placeholders as link_info's prediction).
    return {'name': end['name'], 'namespace': end['namespace'], 'ifindex': 0, 'mtu': end['mtu'] or 1500,
            'mac': end['mac'] or PLACEHOLDER_MAC, 'link_state': end['link_state'] or 'up', 'gro': bool(end['gro']),
            'tx_checksum': True if end['tx_checksum'] is None else end['tx_checksum'],
            'addresses': sorted(str(a) for a in end['addresses'] or ()), 'predicted': True}


def _route_sets(params, check_mode):
    """One RouteSetManager per namespace, in the order the namespaces first appear."""
    by_namespace = {}
    for entry in params.get('routes') or []:
        entry = dict(entry)
        namespace = entry.pop('namespace', None) or None
        by_namespace.setdefault(namespace, []).append({k: v for k, v in entry.items() if v is not None})
    return [RouteSetManager({'namespace': ns, 'routes': routes, 'state': params['state']}, check_mode)
            for ns, routes in by_namespace.items()]


class LabManager:
    """Every object is validated (names, addresses, MACs, routes) before anything changes.
    A run that fails half-way takes back what it made: the namespaces and veth pairs it
    created go, the sysctls it set are put back."""

    def __init__(self, params, check_mode=False):
        self.state = params['state']
        self.check_mode = check_mode
        self.namespaces = NetnsSetManager({'names': params.get('namespaces') or [], 'state': self.state}, check_mode)
        self.links = [VethManager(dict(link, state=self.state), check_mode) for link in params.get('links') or []]
        ends = {interface_key(end) for m in self.links for end in (m.local, m.peer)}
        self.neighbours = []
        for entry in params.get('neighbours') or []:
            entry = dict(entry, state=self.state)
            mac_of = entry.pop('mac_of', None)
            if bool(mac_of) == bool(entry.get('mac')):
                raise XdpkitError("neighbour %s: give mac or mac_of (the lab interface whose MAC it is), one of them"
                                  % entry.get('address'))
            if mac_of and mac_of not in ends:
                raise XdpkitError("neighbour %s: mac_of '%s' is not an end of the lab's links (%s); name one as "
                                  "INTERFACE for the host or NAMESPACE/INTERFACE" % (
                                      entry.get('address'), mac_of, ', '.join(sorted(ends))))
            # Its MAC is known once the links are made: the manager checks everything else now.
            manager = NeighbourManager(dict(entry, mac=entry.get('mac') or STAND_IN_MAC), check_mode)
            self.neighbours.append((manager, mac_of))
        self.sysctls = SysctlSetManager({'sysctls': params.get('sysctls') or [], 'state': self.state}, check_mode)
        self.route_sets = _route_sets(params, check_mode)
        self.record = params.get('record') or None
        if self.record and not os.path.isabs(self.record):
            raise XdpkitError("record: '%s' is not an absolute path; give the file's full path on the host, e.g. "
                              "/run/xdpkit/verified-lab.json" % self.record)
        self.warnings = []
        self.predicted = []

    # -- running the parts -------------------------------------------------------------------
    def _run_part(self, what, manager):
        """A part's result; in check mode a part whose namespace or link an earlier part would
        have made is predicted as a change instead of failing."""
        try:
            return manager.run()
        except MissingDependency as exc:
            if not self.check_mode:
                raise
            self.predicted.append(what)
            self.warnings.append('check mode: %s; %s is reported as a change' % (exc, what))
            return {'changed': True, 'predicted': True, 'diff': {'before': None, 'after': None}}

    def run(self):
        if self.state == 'absent':
            result = self._remove()
            if self.record and not self.check_mode:
                # Bookkeeping that goes with the lab, not a change of it.
                try:
                    os.unlink(self.record)
                except FileNotFoundError:
                    pass
            return result
        result = self._make()
        result['record'] = self._read_record()
        return result

    def _read_record(self):
        # What the scenario roles keep beside the lab (their last verification): read here, so
        # a run that changes nothing needs no module start of its own to find it.
        if not self.record:
            return None
        try:
            with open(self.record) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            self.warnings.append('record %s is not JSON (%s); it is ignored' % (self.record, exc))
            return None

    def _make(self):
        done = {'namespaces': None, 'links': [], 'sysctls': None}
        try:
            result = {'namespaces': self._run_part('namespaces', self.namespaces)}
            done['namespaces'] = result['namespaces']
            result['links'] = []
            for manager in self.links:
                link = self._run_part('veth %s' % manager.local['name'], manager)
                if link.get('predicted'):
                    link.update(interface=_predicted_end(manager.local), peer=_predicted_end(manager.peer))
                elif self.check_mode and link['changed'] and link['diff']['before']['interface'] is None:
                    # A pair check mode did not make: no ifindex or kernel-chosen MAC yet.
                    for key, end in (('interface', manager.local), ('peer', manager.peer)):
                        link[key] = dict(link[key], ifindex=0, mac=end['mac'] or PLACEHOLDER_MAC, predicted=True)
                result['links'].append(link)
                done['links'].append((manager, link))
            made = {}
            for link in result['links']:
                for end in (link['interface'], link['peer']):
                    made[interface_key(end)] = end
            result['neighbours'] = []
            for manager, mac_of in self.neighbours:
                if mac_of:
                    manager.mac = made[mac_of]['mac']
                result['neighbours'].append(self._run_part('neighbour %s' % manager.address, manager))
            result['sysctls'] = self._run_part('sysctls', self.sysctls) if self.sysctls.managers else None
            done['sysctls'] = result['sysctls']
            result['routes'] = [self._run_part('routes of %s' % (m.namespace or 'the host'), m)
                                for m in self.route_sets]
        except Exception:
            if not self.check_mode:
                self._take_back(done)
            raise
        return self._result(result)

    def _take_back(self, done):
        made_namespaces = set()
        if done['namespaces']:
            made_namespaces = {ns['name'] for ns in done['namespaces']['diff']['after']} - \
                {ns['name'] for ns in done['namespaces']['diff']['before']}
        sysctls = done['sysctls']
        if sysctls and sysctls['changed']:
            for entry in sysctls['sysctls']:
                if entry['value'] != entry['previous'] and entry['namespace'] not in made_namespaces:
                    write_sysctl(entry['namespace'], entry['name'], entry['previous'])
        for manager, link in reversed(done['links']):
            if link['changed'] and link['diff']['before']['interface'] is None:
                manager._delete_pair()
        for name in made_namespaces:
            remove_netns(name)

    def _remove(self):
        # Reverse order of making. Routes, neighbours and sysctls inside a namespace of the lab
        # go with it; the host's are undone one by one.
        lab_namespaces = {m.name for m in self.namespaces.managers}
        result = {
            'sysctls': self.sysctls.run() if self.sysctls.managers else None,
            'routes': [m.run() for m in self.route_sets if m.namespace is None or m.namespace not in lab_namespaces],
            'neighbours': [self._remove_neighbour(m) for m, _mac_of in self.neighbours
                           if m.namespace is None or m.namespace not in lab_namespaces],
            'links': [m.run() for m in self.links],
        }
        result['namespaces'] = self.namespaces.run()
        return self._result(result)

    @staticmethod
    def _remove_neighbour(manager):
        try:
            return manager.run()
        except MissingDependency:
            # Its link is gone already, and the entry with it.
            return {'changed': False, 'neighbour': None, 'diff': {'before': None, 'after': None}}

    # -- the result --------------------------------------------------------------------------
    def _result(self, parts):
        changed = parts['namespaces']['changed'] or any(
            p['changed'] for p in parts['links'] + parts['neighbours'] + parts['routes']) or bool(
            parts['sysctls'] and parts['sysctls']['changed'])
        interfaces = {}
        for link in parts['links']:
            for end in (link.get('interface'), link.get('peer')):
                if end:
                    interfaces[interface_key(end)] = end
        diff_of = {
            'namespaces': [parts['namespaces']],
            'links': parts['links'],
            'neighbours': parts['neighbours'],
            'sysctls': [parts['sysctls']] if parts['sysctls'] else [],
            'routes': parts['routes'],
        }
        before, after = {}, {}
        for kind, results in diff_of.items():
            changes = [r['diff'] for r in results if r['changed'] and not r.get('predicted')]
            if changes:
                before[kind] = [d['before'] for d in changes]
                after[kind] = [d['after'] for d in changes]
        return {
            'changed': changed,
            'namespaces': [ns['name'] for ns in parts['namespaces'].get('namespaces') or []]
            if self.state == 'present' else [],
            'interfaces': interfaces if self.state == 'present' else {},
            'sysctls': (parts['sysctls'] or {}).get('sysctls') or [],
            'routes_changed': sum(r.get('routes_changed', 0) for r in parts['routes']),
            'predicted': self.predicted,
            'warnings': self.warnings,
            'diff': {'before': before, 'after': after},
        }
