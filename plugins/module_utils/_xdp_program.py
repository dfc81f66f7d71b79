# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] One XDP program on one interface, the xdp_program module's manager for a
single interface. It reads what is attached and refuses what it must (another tool's program,
netfilter or traffic control a forwarding program would skip) before anything changes, then
compiles only when needed, loads, attaches, pins, and writes the port's facts.

Many interfaces in one call, receivers, `exclusive` and `map_entries` are _xdp_program_set's.
Just over 300 lines on purpose: one interface's converge, from the guards to the pins, is one
class read top to bottom; its kernel calls live below it (_xdp_link, _compile, _ports, _bpf_pins).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_source
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _local_sources
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ownership
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _traffic_control
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_ifname,
    check_netns_name,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._compile import load_xdp_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netfilter import bypassed_chains, refusal
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    get_addresses,
    get_link,
    get_link_by_index,
    iproute,
    require_link,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    missing_netns_error,
    netns_exists,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attach, attached_program, detach


class Found:
    """What XdpProgramManager.inspect() read before anything changed, in one of three states."""

    # The namespace is there: the link, its program, the pins and the source were read.
    READ = 'read'
    # state=absent in a namespace that is gone: nothing to read, only pins left to remove.
    NAMESPACE_GONE = 'namespace gone'
    # Check mode: a namespace or link that an earlier task of this run would create is missing.
    PREDICTED = 'predicted'

    def __init__(self, state, link=None, attached=None, ipv4_addressed=False, meta=None, ours=False,
                 before=None, text=None):
        self.state = state
        self.link = link
        self.attached = attached
        self.ipv4_addressed = ipv4_addressed
        self.meta = meta
        self.ours = ours
        self.before = before
        self.text = text


def foreign_program_error(view, action):
    return XdpkitError(
        "'%s' in %s runs XDP program id %s (name %s, tag %s, %s mode), which xdpkit did not attach: another "
        "tool's program, a libxdp dispatcher or one from 'ip link set ... xdp'. Refusing to %s it. Remove it "
        "with the tool that attached it, or set force: true to %s it anyway" % (
            view['interface'], describe_ns(view['namespace']), view['prog_id'], view['name'], view['tag'],
            view['mode'], action, action))


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
        # there since is left attached, only our pins (its port entry with them) go.
        self.leave_foreign = bool(params.get('leave_foreign'))
        # What the set manager takes back with (state=absent) when the map entries fail.
        self.params = params
        self.needs_keeper = False
        if self.state == 'present' and not self.source_main:
            raise XdpkitError("xdp_program on '%s': give program (a name from the collection's bpf/) or src" %
                              self.interface)

    # -- views ---------------------------------------------------------------------------
    def _view(self, attached, meta_ok, port=None):
        if not attached:
            return None
        info = sysbpf.program_info(attached['prog_id'])
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
        before anything changes."""
        if self.namespace and not netns_exists(self.namespace):
            if self.state == 'absent':
                return Found(Found.NAMESPACE_GONE)
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
        found = Found(Found.READ, link=link, attached=attached, ipv4_addressed=ipv4_addressed, meta=meta,
                      ours=ours, before=before)
        if self.state == 'present':
            found.text = _bpf_source.flatten_sources(self.source_main, self.source_files)
            forwards = _bpf_source.forwards_frames(found.text)
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

    def run(self, found=None):
        """Converge; `found` is what inspect() read, when the caller inspected first."""
        if found is None:
            found = self.inspect()
        diff = DifferenceTracker()
        if found.state == Found.PREDICTED:
            diff.add('program', None, None, changed=True)
            return dict(self._result(diff), predicted=True)
        if found.state == Found.NAMESPACE_GONE:
            if diff.add('program', None, None, changed=bool(_bpf_pins.pinned_files(self.pin_dir))) \
                    and not self.check_mode:
                self._remove_pins()
            return self._result(diff)
        link, attached, before, text = found.link, found.attached, found.before, found.text
        ours, meta = found.ours, found.meta

        if self.state == 'absent':
            changed = diff.add('program', before, None,
                               changed=attached is not None or bool(_bpf_pins.pinned_files(self.pin_dir)))
            if changed and not self.check_mode:
                if attached:
                    detach(self.namespace, self.interface, attached['mode'], attached['prog_id'])
                    _ownership.forget_owned(attached['prog_id'])
                if link:
                    _ports.remove_egress_port(self.maps_dir, link['ifindex'])
                # The port entry is a pin of the instance: it goes with them.
                self._remove_pins()
            return self._result(diff)

        if not self.check_mode:
            _bpf_pins.ensure_bpffs()
        define_flags = _bpf_source.define_flags(self.defines)
        cflags = ['-DXDPKIT_PIN_DIR="%s"' % self.pin_dir, '-DXDPKIT_MAPS_DIR="%s"' % self.maps_dir] + define_flags
        digest = _ownership.program_digest(text, cflags, self.function, self.mode)
        entry = os.path.join(self.pin_dir, _bpf_source.PORT_ENTRY_MAP) if _bpf_source.declares_port_entry(text) \
            else None
        # A program with a port entry trusts it only while the keeper renews it.
        self.needs_keeper = entry is not None
        port = _ports.wanted_port(self.namespace, link, found.ipv4_addressed) if entry else None
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
            stale = entry is not None and _ports.facts(_ports.read_entry(entry)) != port
            missing = [path for path in egress_maps if not _ports.has_egress_port(path, link['ifindex'])]
            # A missing egress entry changes nothing the view shows, but is a change all the same.
            refreshed = dict(before, port=port) if stale or missing else before
            if not diff.add('program', before, refreshed, changed=bool(stale or missing)):
                return self._result(diff)
            if not self.check_mode:
                if stale:
                    _ports.write_entry(entry, dict(port, vouched_until=_ports.lease_until()))
                for path in missing:
                    _ports.add_egress_port(path, link['ifindex'], self.namespace)
            return self._result(diff)
        planned = {'interface': self.interface, 'namespace': self.namespace, 'prog_id': None,
                   'name': self.function[:15], 'tag': None, 'mode': self.mode, 'managed': True, 'port': port}
        if self.check_mode:
            diff.add('program', before, planned, changed=True)
            return self._result(diff)

        prog_id, loaded = self._load_and_attach(text, define_flags, attached, link, entry, port, egress_maps)
        _ownership.write_meta(self.pin_dir, digest, prog_id, _ownership.MODES[self.mode], self.maps_dir)
        diff.add('program', before, self._view({'prog_id': prog_id, 'mode': self.mode}, True, port), changed=True)
        return self._result(diff, loaded)

    def _current_port(self, link):
        if not link:
            return None
        entry = _ports.port_entry_in(self.pin_dir)
        return _ports.facts(_ports.read_entry(entry)) if entry else None

    def _load_and_attach(self, text, define_flags, attached, link, entry, port, egress_maps):
        new_dirs = [d for d in (self.pin_dir, self.maps_dir) if not os.path.isdir(d)]
        try:
            for directory in (self.pin_dir, self.maps_dir):
                os.makedirs(directory, exist_ok=True)
            if entry:
                _ports.unpin_other_layout(entry)
                # An earlier release's table shared by the maps directory's instances; none reads it now.
                _ports.unpin_shared_table(self.maps_dir)
            if _bpf_source.declares_local_sources(text):
                _local_sources.unpin_other_layout(self.maps_dir)
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
            # its entry is written.
            # The values were read just now: they are good for one lease, the keeper's to renew.
            if entry:
                _ports.write_entry(entry, dict(port, vouched_until=_ports.lease_until()))
            for path in egress_maps:
                _ports.add_egress_port(path, link['ifindex'], self.namespace)
            expected = attached['prog_id'] if attached else None
            if attached and attached['mode'] != self.mode:
                # The kernel refuses native and generic at once: this one switch is not atomic.
                detach(self.namespace, self.interface, attached['mode'], expected)
                expected = None
            attach(self.namespace, self.interface, loaded.fd, self.mode, expected)
        except Exception:
            if not attached:
                # A first attach that did not happen leaves nothing of ours on the port.
                # (An entry in a pin_dir that was there before stays, cleared.)
                if entry:
                    _ports.clear_entry(entry)
                _ports.remove_egress_port(self.maps_dir, link['ifindex'])
                for directory in new_dirs:
                    _bpf_pins.remove_pins(directory)
                _bpf_pins.release_pin_root()
            loaded.close()
            raise
        try:
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

    def _result(self, diff, loaded=None):
        program = diff.diff_of('program')
        after = program['after']
        result = {
            'changed': diff.changed,
            'program': after,
            'diff': program,
            'compiled': bool(loaded and loaded.compiled),
            'compile_seconds': loaded.compile_seconds if loaded else 0.0,
        }
        if after is not None:
            result.update(self._pins())
        return result
