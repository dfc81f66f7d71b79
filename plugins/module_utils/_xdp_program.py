# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XDP programs on interfaces: what is attached, attaching, detaching, and the
xdp_program module's manager."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_source
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ownership
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _traffic_control
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_sys import program_info
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    XdpkitError,
    check_ifname,
    check_netns_name,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._compile import load_xdp_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netfilter import bypassed_chains, refusal
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    get_addresses,
    get_link,
    get_link_by_index,
    iproute,
    require_link,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    in_netns,
    missing_netns_error,
    netns_exists,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_map import XdpMapSetManager

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
MODE_FLAGS = {'native': XDP_FLAGS_DRV_MODE, 'generic': XDP_FLAGS_SKB_MODE}
# IFLA_XDP_ATTACHED, as a number or as pyroute2's names for the numbers
ATTACHED_MODES = {1: 'native', 2: 'generic', 3: 'offload', 4: 'multi',
                  'xdp': 'native', 'xdpgeneric': 'generic', 'xdpoffload': 'offload', 'xdpmulti': 'multi'}


def attached_program(ipr, ifindex):
    """{'prog_id', 'mode'} of the XDP program on a link, or None.

    With programs in two modes at once ('multi'), the native one is reported.
    """
    msg = ipr.link('get', index=ifindex)[0]
    xdp = msg.get_attr('IFLA_XDP')
    if not xdp:
        return None
    attached = xdp.get_attr('IFLA_XDP_ATTACHED') or 0
    if not attached:
        return None
    mode = ATTACHED_MODES.get(attached, str(attached))
    prog_id = xdp.get_attr('IFLA_XDP_PROG_ID')
    if mode == 'multi':
        prog_id = xdp.get_attr('IFLA_XDP_DRV_PROG_ID') or xdp.get_attr('IFLA_XDP_SKB_PROG_ID')
        mode = 'native' if xdp.get_attr('IFLA_XDP_DRV_PROG_ID') else 'generic'
    return {'prog_id': prog_id, 'mode': mode}


def foreign_program_error(view, action):
    return XdpkitError(
        "'%s' in %s runs XDP program id %s (name %s, tag %s, %s mode), which xdpkit did not attach: another "
        "tool's program, a libxdp dispatcher or one from 'ip link set ... xdp'. Refusing to %s it. Remove it "
        "with the tool that attached it, or set force: true to %s it anyway" % (
            view['interface'], describe_ns(view['namespace']), view['prog_id'], view['name'], view['tag'],
            view['mode'], action, action))


def _bcc_xdp():
    from bcc import BPF
    return BPF


def attach(namespace, interface, prog_fd, mode):
    """Attach in `mode`; an existing program in that mode is replaced atomically by the kernel."""
    bpf_cls = _bcc_xdp()
    with in_netns(namespace):
        try:
            bpf_cls.attach_xdp(interface.encode(), bpf_cls.Function(None, b'', prog_fd), MODE_FLAGS[mode])
        except Exception as exc:
            hint = ''
            if 'out of range' in str(exc):
                # veth refuses native XDP while its peer's MTU exceeds what fits in one page.
                hint = ("; for a veth this means the peer's MTU is too large for native XDP (keep it under "
                        "about 3500 bytes) or use mode: generic")
            raise XdpkitError("attaching the XDP program to '%s' in %s (%s mode) failed: %s%s" % (
                interface, describe_ns(namespace), mode, exc, hint))


def detach(namespace, interface, mode):
    bpf_cls = _bcc_xdp()
    with in_netns(namespace):
        bpf_cls.remove_xdp(interface.encode(), MODE_FLAGS.get(mode, 0))


class XdpProgramManager:
    """Compile (only when needed), load, attach and pin one program on one interface."""

    def __init__(self, params, check_mode=False):
        self.check_mode = check_mode
        self.state = params['state']
        self.interface = check_ifname(params['interface'])
        self.namespace = params.get('namespace') or None
        if self.namespace:
            check_netns_name(self.namespace)
        self.mode = params.get('mode') or 'native'
        self.pin_dir = _bpf_pins.check_pin_dir(
            params.get('pin_dir') or _bpf_pins.default_pin_dir(self.namespace, self.interface), 'pin_dir')
        self.maps_dir = _bpf_pins.check_pin_dir(params.get('maps_dir') or self.pin_dir, 'maps_dir')
        self.source_files = params.get('source_files') or {}
        self.source_main = params.get('source_main')
        self.function = params.get('function') or (
            os.path.splitext(self.source_main)[0] if self.source_main else None)
        self.defines = params.get('defines') or {}
        self.force = bool(params.get('force'))
        self.netfilter = params.get('netfilter') or 'refuse'
        self.traffic_control = params.get('traffic_control') or 'refuse'
        # Set for a port that `exclusive` takes the program off: a program another tool has put
        # there since is left attached, only our pins and port entries go.
        self.leave_foreign = bool(params.get('leave_foreign'))
        if self.state == 'present' and not self.source_main:
            raise XdpkitError("xdp_program on '%s': give program (a name from the collection's bpf/) or src" %
                              self.interface)

    # -- views ---------------------------------------------------------------------------
    def _view(self, attached, meta_ok, port=None):
        if not attached:
            return None
        info = program_info(attached['prog_id'])
        return {
            'interface': self.interface,
            'namespace': self.namespace,
            'prog_id': info['id'],
            'name': info['name'],
            'tag': info['tag'],
            'mode': attached['mode'],
            'managed': meta_ok,
            'port': port,
        }

    def _pins(self):
        pins = {'pin_dir': self.pin_dir, 'maps_dir': self.maps_dir, 'maps': {}}
        for directory in (self.pin_dir, self.maps_dir):
            for name in _bpf_pins.pinned_files(directory):
                path = os.path.join(directory, name)
                if not os.path.isdir(path) and name != _ownership.META_MAP:
                    pins['maps'][name] = path
        return pins

    # -- the run -------------------------------------------------------------------------
    def inspect(self):
        """Read what is there and raise on whatever would make the run fail (a missing
        namespace or link, another tool's program, netfilter rules or traffic control the program would skip),
        before anything changes. None when a namespace that is gone leaves nothing to read."""
        if self.namespace and not netns_exists(self.namespace):
            if self.state == 'absent':
                return None
            raise missing_netns_error(self.namespace)
        with iproute(self.namespace) as ipr:
            link = require_link(ipr, self.interface, self.namespace) if self.state == 'present' \
                else get_link(ipr, self.interface)
            attached = attached_program(ipr, link['ifindex']) if link else None
            ipv4_addressed = bool(link) and any(a.version == 4 for a in get_addresses(ipr, link['ifindex']))
        meta = _ownership.read_meta(self.pin_dir)
        ours = bool(attached and ((meta and meta['prog_id'] == attached['prog_id']) or
                                  _ownership.is_owned(attached['prog_id'])))
        before = self._view(attached, ours, self._current_port(link))
        if attached and not ours and not self.force:
            if not self.leave_foreign:
                raise foreign_program_error(before, 'replace' if self.state == 'present' else 'detach')
            attached = before = None
        found = {'link': link, 'attached': attached, 'ipv4_addressed': ipv4_addressed, 'meta': meta,
                 'ours': ours, 'before': before, 'text': None}
        if self.state == 'present':
            found['text'] = _bpf_source.flatten_sources(self.source_main, self.source_files)
            forwards = _bpf_source.forwards_frames(found['text'])
            if forwards and self.netfilter == 'refuse':
                chains = bypassed_chains(self.namespace)
                if chains:
                    raise refusal(self.namespace, self.interface, self.function, chains)
            if forwards and self.traffic_control == 'refuse':
                objects = _traffic_control.bypassed_objects(self.namespace, self._forwarding_ports(link))
                if objects:
                    raise _traffic_control.refusal(self.namespace, self.interface, self.function, objects)
        return found

    def _forwarding_ports(self, link):
        """(name, ifindex, directions) of the ports whose tc a forwarding program skips: its own
        (frames arrive there and, for the router and map programs, leave by it), and the fixed
        egress port of xdp_redirect (DEST_IFINDEX)."""
        ports = [(self.interface, link['ifindex'], ('ingress', 'egress'))]
        dest = self.defines.get('DEST_IFINDEX')
        if dest is not None and str(dest).isdigit() and int(dest) != link['ifindex']:
            with iproute(self.namespace) as ipr:
                egress = get_link_by_index(ipr, int(dest))
            if egress:
                ports.append((egress['name'], egress['ifindex'], ('egress',)))
        return ports

    def run(self, found=False):
        if found is False:
            found = self.inspect()
        if found is None:
            changed = bool(_bpf_pins.pinned_files(self.pin_dir))
            if changed and not self.check_mode:
                self._remove_pins()
            return self._result(changed, None, None)
        link, attached, before, text = found['link'], found['attached'], found['before'], found['text']
        ours, meta = found['ours'], found['meta']

        if self.state == 'absent':
            changed = attached is not None or bool(_bpf_pins.pinned_files(self.pin_dir))
            if changed and not self.check_mode:
                if attached:
                    detach(self.namespace, self.interface, attached['mode'])
                    _ownership.forget_owned(attached['prog_id'])
                if link:
                    for path in _ports.port_tables_in(self.maps_dir):
                        _ports.delete_port(path, link['ifindex'])
                    _ports.remove_egress_port(self.maps_dir, link['ifindex'])
                self._remove_pins()
            return self._result(changed, before, None)

        if not self.check_mode:
            _bpf_pins.ensure_bpffs()
        define_flags = _bpf_source.define_flags(self.defines)
        cflags = ['-DXDPKIT_PIN_DIR="%s"' % self.pin_dir, '-DXDPKIT_MAPS_DIR="%s"' % self.maps_dir] + define_flags
        digest = _ownership.program_digest(text, cflags, self.function, self.mode)
        port_tables = [os.path.join(self.maps_dir, name) for name, _size in _ports.port_table_declarations(text)]
        port = _ports.wanted_port(self.namespace, link, found['ipv4_addressed']) if port_tables else None
        egress_maps = [os.path.join(self.maps_dir, name) for name, _size in _bpf_source.egress_port_declarations(text)]
        # Every pin must still be there and be the map the program uses: a map unpinned
        # behind our back (or re-pinned by another port's reload) is one later runs (xdp_map,
        # xdp_stats) can no longer reach, so the program is loaded afresh on the pinned maps.
        up_to_date = (
            ours and meta and meta['prog_id'] == attached['prog_id'] and meta['digest'] == digest
            and attached['mode'] == self.mode and meta['maps_dir'] == self.maps_dir
            and _bpf_pins.program_uses_pins(attached['prog_id'],
                                            _bpf_source.declared_pins(text, self.pin_dir, self.maps_dir))
        )
        if up_to_date:
            # The program is right; its port facts may not be (a sysctl or the MAC changed), nor
            # its entry in the egress ports (removed behind our back).
            stale = [path for path in port_tables if _ports.read_port(path, link['ifindex']) != port]
            missing = [path for path in egress_maps if not _ports.has_egress_port(path, link['ifindex'])]
            if not stale and not missing:
                return self._result(False, before, before)
            if not self.check_mode:
                for path in stale:
                    _ports.write_port(path, link['ifindex'], port)
                for path in missing:
                    _ports.add_egress_port(path, link['ifindex'], self.namespace)
            return self._result(True, before, dict(before, port=port))
        planned = {'interface': self.interface, 'namespace': self.namespace, 'prog_id': None,
                   'name': self.function[:15], 'tag': None, 'mode': self.mode, 'managed': True, 'port': port}
        if self.check_mode:
            return self._result(True, before, planned)

        prog_id, loaded = self._load_and_attach(text, define_flags, attached, link, port_tables, port, egress_maps)
        _ownership.write_meta(self.pin_dir, digest, prog_id, _ownership.MODES[self.mode], self.maps_dir)
        after = self._view({'prog_id': prog_id, 'mode': self.mode}, True, port)
        return self._result(True, before, after, loaded)

    def _current_port(self, link):
        if not link:
            return None
        for path in _ports.port_tables_in(self.maps_dir):
            return _ports.read_port(path, link['ifindex'])
        return None

    def _load_and_attach(self, text, define_flags, attached, link, port_tables, port, egress_maps):
        new_dirs = [d for d in (self.pin_dir, self.maps_dir) if not os.path.isdir(d)]
        try:
            for directory in (self.pin_dir, self.maps_dir):
                os.makedirs(directory, exist_ok=True)
            for name, size in _bpf_source.devmap_hash_declarations(text):
                _bpf_pins.ensure_devmap_hash(os.path.join(self.maps_dir, name), size)
            loaded = load_xdp_program(text, self.pin_dir, self.maps_dir, define_flags, self.function,
                                      self.source_main)
        except Exception:
            # Nothing half-made: pins of a first load that failed go again.
            for directory in new_dirs:
                _bpf_pins.remove_pins(directory)
            _bpf_pins.release_pin_root()
            raise
        try:
            # The port's facts first: the new program hands every frame to the kernel until
            # its port has an entry.
            for path in port_tables:
                _ports.write_port(path, link['ifindex'], port)
            for path in egress_maps:
                _ports.add_egress_port(path, link['ifindex'], self.namespace)
            if attached and attached['mode'] != self.mode:
                # The kernel refuses native and generic at once: this one switch is not atomic.
                detach(self.namespace, self.interface, attached['mode'])
            attach(self.namespace, self.interface, loaded.fd, self.mode)
            prog_id = sysbpf.prog_info(loaded.fd)['id']
            _ownership.record_owned(prog_id)
            if attached:
                _ownership.forget_owned(attached['prog_id'])
            return prog_id, loaded
        finally:
            # The attachment and the pins keep what is needed; our fd can go.
            loaded.close()

    def _remove_pins(self):
        _bpf_pins.remove_pins(self.pin_dir)
        if self.maps_dir != self.pin_dir and not _ownership.instances_using_maps_dir(self.maps_dir, self.pin_dir):
            _bpf_pins.remove_pins(self.maps_dir)
        _bpf_pins.release_pin_root()

    def _result(self, changed, before, after, loaded=None):
        result = {
            'changed': changed,
            'program': after,
            'diff': {'before': before, 'after': after},
            'compiled': bool(loaded and loaded.compiled),
            'compile_seconds': loaded.compile_seconds if loaded else 0.0,
        }
        if after is not None:
            result.update(self._pins())
        return result


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
            # What the run takes back if the entries fail after the programs changed.
            self._absent = [dict(params, state='absent', **item) for item in items] + \
                [dict(receiver_params, state='absent', **item) for item in receivers]

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
                found.append('predicted')
        return found, warnings

    def _check_map_entries(self):
        try:
            self.map_entries.check_before_changes()
        except MissingDependency as exc:
            if not self.check_mode:
                raise
            return ['check mode: %s; assuming an earlier task of this run creates it' % exc]
        return []

    def _fill_maps(self, results):
        try:
            return self.map_entries.run()
        except XdpkitError as exc:
            # Checked before any change, so this is a map the program has just created (its type or
            # size): take back what this run attached where nothing was attached before.
            taken_back = []
            for params, result in zip(self._absent, results):
                if not self.check_mode and result['changed'] and result['diff']['before'] is None:
                    XdpProgramManager(params, self.check_mode).run()
                    taken_back.append(params['interface'])
            if taken_back:
                raise type(exc)('%s (the programs this run attached are detached again: %s)' % (
                    exc, ', '.join(taken_back)))
            raise

    def run(self):
        unlisted = self._unlisted() if self.exclusive else []
        found, warnings = self._inspect_all(self.managers + self.receivers + unlisted)
        if self.map_entries:
            warnings += self._check_map_entries()
        results = []
        for manager, state in zip(self.managers + self.receivers + unlisted, found):
            if state == 'predicted':
                results.append({'changed': True, 'predicted': True, 'program': None,
                                'diff': {'before': None, 'after': None}, 'compiled': False, 'compile_seconds': 0.0})
            else:
                results.append(manager.run(state))
        filled = self._fill_maps(results[:len(self.managers) + len(self.receivers)]) if self.map_entries else None
        programs = results[:len(self.managers)]
        receivers = results[len(self.managers):len(self.managers) + len(self.receivers)]
        removed = [(manager, r) for manager, r in zip(unlisted, results[len(programs) + len(receivers):])
                   if r['changed']]
        result = dict(programs[0]) if self.single else {
            'programs': [_without_diff(r) for r in programs],
            # A port taken off shows in the diff as a program before and none after.
            'diff': {'before': [r['diff']['before'] for r in programs if r['changed']] +
                     [r['diff']['before'] for _m, r in removed if r['diff']['before']],
                     'after': [r['diff']['after'] for r in programs if r['changed']]},
        }
        if self.exclusive:
            result['removed'] = [{'interface': m.interface, 'namespace': m.namespace, 'pin_dir': m.pin_dir,
                                  'program': r['diff']['before']} for m, r in removed]
        if self.receivers or filled:
            before, after = {'programs': result['diff']['before']}, {'programs': result['diff']['after']}
            if self.receivers:
                result['receivers'] = [_without_diff(r) for r in receivers]
                before['receivers'] = [r['diff']['before'] for r in receivers if r['changed']]
                after['receivers'] = [r['diff']['after'] for r in receivers if r['changed']]
            if filled:
                result['map_entries'] = filled['maps']
                before['map_entries'], after['map_entries'] = filled['diff']['before'], filled['diff']['after']
                warnings += filled['warnings']
            result['diff'] = {'before': before, 'after': after}
        result.update(changed=any(r['changed'] for r in results) or bool(filled and filled['changed']),
                      compiled=any(r['compiled'] for r in results),
                      compile_seconds=sum(r['compile_seconds'] for r in results), warnings=warnings)
        return result


def _without_diff(result):
    return {k: v for k, v in result.items() if k != 'diff'}
