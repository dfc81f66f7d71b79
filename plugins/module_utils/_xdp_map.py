# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] Entries of pinned maps: port maps (DEVMAP / DEVMAP_HASH, interface -> interface) and MAC
tables (MAC -> MAC), shown and compared as text, written as bytes (_map_entries turns one into the
other): the xdp_map module's managers, and the one xdp_program's map_entries uses."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _traffic_control
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_netns_name,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._map_entries import (
    MacCodec,
    PortCodec,
    check_entry_text,
    entry_kind,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    get_link,
    get_link_by_index,
    iproute,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    in_netns,
    missing_netns_error,
    netns_exists,
)

PORT_MAP_TYPES = ('devmap', 'devmap_hash')


def entries_argument_spec(value_required=False):
    """The `entries` option of a map: for xdp_map (a value is not needed to delete) and for
    xdp_program's map_entries (always set, so always a value)."""
    return dict(type='list', elements='dict', default=[], options=dict(
        key=dict(type='raw', required=True, no_log=False),
        value=dict(type='raw', required=value_required),
    ))


def plan_entries(before, wanted, state, exclusive):
    """The map's entries after the run, from text views (pure)."""
    if state == 'absent':
        return {k: v for k, v in before.items() if k not in wanted}
    after = {} if exclusive else dict(before)
    after.update(wanted)
    return after


class XdpMapManager:
    def __init__(self, params, check_mode=False):
        self.check_mode = check_mode
        self.path = params['path']
        self.state = params['state']
        self.exclusive = params.get('exclusive', False)
        self.namespace = params.get('namespace') or None
        if self.namespace:
            check_netns_name(self.namespace)
        self.entries = params.get('entries') or []
        self.traffic_control = params.get('traffic_control') or 'refuse'
        self._traffic_control_checked = False

    def value_ports(self, ipr):
        """(name, ifindex, ('egress',)) of the existing interfaces the entries send to: a port map's
        values. MAC values (a MAC table's) and interfaces that do not exist are not ports here."""
        ports, seen = [], set()
        for entry in self.entries if self.state == 'present' else []:
            value = entry.get('value')
            kind = entry_kind(value) if value is not None else None
            if kind == 'ifindex':
                link = get_link_by_index(ipr, int(value))
            elif kind == 'interface':
                link = get_link(ipr, str(value))
            else:
                continue
            if link and link['ifindex'] not in seen:
                seen.add(link['ifindex'])
                ports.append((link['name'], link['ifindex'], ('egress',)))
        return ports

    def check_traffic_control(self, ipr):
        """Refuse to point a port map at a port whose egress traffic control the redirect would skip
        (a frame redirected through a DEVMAP goes to the driver, past qdisc, tc egress and tcx), as
        xdp_program refuses for the ports it attaches to. Once per run."""
        if self.traffic_control != 'refuse' or self._traffic_control_checked:
            return
        objects = _traffic_control.bypassed_objects(self.namespace, self.value_ports(ipr))
        if objects:
            raise _traffic_control.map_refusal(self.namespace, os.path.basename(self.path), objects)
        self._traffic_control_checked = True

    def open_map(self):
        if not self.path.startswith('/sys/fs/bpf/') or '/../' in self.path:
            raise XdpkitError("map path %r is not under /sys/fs/bpf" % self.path)
        try:
            fd = sysbpf.obj_get(self.path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise XdpkitError("no pinned map at %s: attach the program that declares it first "
                                  "(xdpkit.forwarding.xdp_program) or check maps_dir" % self.path)
            raise XdpkitError("cannot open pinned map %s: %s" % (self.path, exc.strerror))
        info = sysbpf.map_info(fd)
        return fd, info

    def would_be_created(self):
        # In check mode the program that pins the map has not really been attached yet (a fresh
        # host): predict instead of failing, so that --check tells the whole run's story.
        return not os.path.exists(self.path)

    def predicted(self):
        after = {} if self.state == 'absent' else {str(e['key']): str(e.get('value')) for e in self.entries}
        return {
            'changed': bool(after),
            'entries': after,
            'map': None,
            'diff': {'before': {}, 'after': after},
            'warnings': ['%s is not pinned yet; a real run needs the program that declares it attached first '
                         '(in this check-mode run, the entries are shown as given)' % self.path] if after else [],
        }

    def check_entries(self, ipr):
        for number, entry in enumerate(self.entries, 1):
            what = '%s entry %d' % (os.path.basename(self.path), number)
            check_entry_text(entry['key'], ipr, self.namespace, what + ' key')
            if self.state == 'present':
                if entry.get('value') is None:
                    raise XdpkitError('%s: a value is needed with state=present' % what)
                check_entry_text(entry['value'], ipr, self.namespace, what + ' value')
        self.check_traffic_control(ipr)

    def _codecs(self, info, ipr):
        if info['type'] in PORT_MAP_TYPES and info['key_size'] == 4 and info['value_size'] == 4:
            codec = PortCodec(ipr, self.namespace)
            return codec, codec
        if info['type'] == 'hash' and info['key_size'] == 6 and info['value_size'] == 6:
            return MacCodec, MacCodec
        raise XdpkitError(
            "map %s is a %s with %d-byte keys and %d-byte values; xdp_map handles port maps (devmap, "
            "devmap_hash: interface -> interface) and MAC tables (hash: MAC -> MAC)" % (
                self.path, info['type'], info['key_size'], info['value_size']))

    def _read(self, fd, info, key_codec, value_codec):
        view, raw = {}, {}
        for key in sysbpf.map_keys(fd, info['key_size']):
            value = sysbpf.map_lookup(fd, key, info['value_size'])
            if value is None:  # an empty DEVMAP slot
                continue
            text = key_codec.decode(key)
            view[text] = value_codec.decode(value)
            raw[text] = key
        return view, raw

    def run(self):
        if self.namespace and not netns_exists(self.namespace):
            raise missing_netns_error(self.namespace)
        if self.check_mode and self.would_be_created():
            with in_netns(self.namespace):
                with iproute(None) as ipr:
                    self.check_traffic_control(ipr)
            return self.predicted()
        fd, info = self.open_map()
        try:
            # Inside the namespace: DEVMAP values are ifindexes of the updating thread's namespace.
            with in_netns(self.namespace):
                with iproute(None) as ipr:
                    return self.write(self.plan(fd, info, ipr))
        finally:
            os.close(fd)

    def plan(self, fd, info, ipr):
        """Validate every entry and work out the map after the run; nothing is written yet."""
        key_codec, value_codec = self._codecs(info, ipr)
        before, raw_keys = self._read(fd, info, key_codec, value_codec)
        wanted = {}
        wanted_raw = {}
        for number, entry in enumerate(self.entries, 1):
            what = '%s entry %d' % (os.path.basename(self.path), number)
            key_raw = key_codec.encode(entry['key'], what + ' key')
            key_text = key_codec.decode(key_raw)
            if self.state == 'present':
                if entry.get('value') is None:
                    raise XdpkitError('%s: a value is needed with state=present' % what)
                value_raw = value_codec.encode(entry['value'], what + ' value')
                wanted[key_text] = value_codec.decode(value_raw)
                wanted_raw[key_text] = (key_raw, value_raw)
            else:
                wanted[key_text] = None
                wanted_raw[key_text] = (key_raw, None)
        self.check_traffic_control(ipr)
        after = plan_entries(before, wanted, self.state, self.exclusive)
        if len(after) > info['max_entries']:
            raise XdpkitError("map %s is full: it holds at most %d entries and the run needs %d; enlarge it in "
                              "the program or drop entries (exclusive: true replaces the whole set)" % (
                                  self.path, info['max_entries'], len(after)))
        return {'fd': fd, 'info': info, 'before': before, 'after': after, 'raw_keys': raw_keys,
                'wanted_raw': wanted_raw}

    def write(self, plan):
        fd, info, before, after = plan['fd'], plan['info'], plan['before'], plan['after']
        changed = before != after
        if changed and not self.check_mode:
            for key_text in before:
                if key_text not in after:
                    sysbpf.map_delete(fd, plan['raw_keys'][key_text])
            for key_text, value_text in after.items():
                if before.get(key_text) != value_text:
                    key_raw, value_raw = plan['wanted_raw'][key_text]
                    try:
                        sysbpf.map_update(fd, key_raw, value_raw)
                    except OSError as exc:
                        if exc.errno == errno.E2BIG:
                            raise XdpkitError("map %s is full (max_entries %d)" % (self.path, info['max_entries']))
                        raise XdpkitError("writing %s -> %s into %s failed: %s" % (
                            key_text, value_text, self.path, exc.strerror))
        return {
            'changed': changed,
            'entries': after,
            'map': {'path': self.path, 'type': info['type'], 'max_entries': info['max_entries'], 'id': info['id']},
            'diff': {'before': before, 'after': after},
        }


class XdpMapSetManager:
    """Several maps in one call (a scenario's port map and MAC table): one module start. Every
    map is opened and every entry validated, capacities included, before any map is written."""

    def __init__(self, params, check_mode=False):
        self.check_mode = check_mode
        self.namespace = params.get('namespace') or None
        paths = [m['path'] for m in params['maps']]
        twice = sorted({p for p in paths if paths.count(p) > 1})
        if twice:
            raise XdpkitError('maps: %s given twice' % ', '.join(twice))
        if not paths:
            raise XdpkitError('maps: the list is empty; give at least one map')
        self.managers = [XdpMapManager(dict(m, namespace=self.namespace, state=params['state'],
                                            traffic_control=params.get('traffic_control')), check_mode)
                         for m in params['maps']]

    def check_before_changes(self):
        """For the program that declares these maps, before it changes anything: every entry checked
        for what it can be, and every map already pinned planned in full (its type, its capacity)."""
        if self.namespace and not netns_exists(self.namespace):
            raise missing_netns_error(self.namespace)
        with in_netns(self.namespace):
            with iproute(None) as ipr:
                for manager in self.managers:
                    manager.check_entries(ipr)
                    if manager.would_be_created():
                        continue
                    fd, info = manager.open_map()
                    try:
                        manager.plan(fd, info, ipr)
                    finally:
                        os.close(fd)

    def run(self):
        if self.namespace and not netns_exists(self.namespace):
            raise missing_netns_error(self.namespace)
        opened, results = [], {}
        try:
            for index, manager in enumerate(self.managers):
                if self.check_mode and manager.would_be_created():
                    with in_netns(self.namespace):
                        with iproute(None) as ipr:
                            manager.check_traffic_control(ipr)
                    results[index] = manager.predicted()
                else:
                    opened.append((index, manager) + manager.open_map())
            with in_netns(self.namespace):
                with iproute(None) as ipr:
                    plans = [(index, manager, manager.plan(fd, info, ipr)) for index, manager, fd, info in opened]
                    for index, manager, plan in plans:
                        results[index] = manager.write(plan)
        finally:
            for _index, _manager, fd, _info in opened:
                os.close(fd)
        ordered = [results[index] for index in range(len(self.managers))]
        return {
            'changed': any(r['changed'] for r in ordered),
            'maps': [{'path': m.path, 'changed': r['changed'], 'entries': r['entries'], 'map': r['map']}
                     for m, r in zip(self.managers, ordered)],
            'warnings': [w for r in ordered for w in r.get('warnings', [])],
            'diff': {'before': {m.path: r['diff']['before'] for m, r in zip(self.managers, ordered) if r['changed']},
                     'after': {m.path: r['diff']['after'] for m, r in zip(self.managers, ordered) if r['changed']}},
        }
