# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The router at boot: xdpkit-router.service attaches it from the declarative
file the router role writes (/etc/xdpkit/router.json) and detaches it on stop, with the module's
own manager, so a boot refuses exactly what the xdp_program module refuses (netfilter rules,
traffic control, another tool's program) and says why in the journal.

    python3 -m ansible_collections.xdpkit.forwarding.plugins.module_utils._boot attach --config FILE
    python3 -m ansible_collections.xdpkit.forwarding.plugins.module_utils._boot detach --config FILE

The role installs this code as the collection lays it out (plugins/module_utils and bpf/ under
/usr/local/lib/xdpkit/ansible_collections/xdpkit/forwarding); nothing here imports Ansible.
The keeper is a unit of its own (xdpkit-keeper.service), so the attach passes keeper=external.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_source import read_source_tree
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import MissingDependency, XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._host_lock import HostLock
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_program_set import XdpProgramSetManager

CONFIG_FILE = '/etc/xdpkit/router.json'
# The collection's bpf/, where the collection keeps it (the role installs both trees the same way).
BPF_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'bpf'))
PROGRAM = 'xdp_router'
# How long a boot waits for the router's interfaces to appear (a NIC's driver, a unit that
# makes veths) before it gives up naming the missing one.
LINK_TIMEOUT = 30.0
EX_CONFIG = 78

# The declarative file: key -> (type, default; None = required, choices or None).
CONFIG_KEYS = {
    'interfaces': (list, None, None),
    'namespace': (str, '', None),
    'mode': (str, 'native', ('native', 'generic')),
    'lookup': (str, 'full', ('full', 'direct')),
    'maps_dir': (str, '/sys/fs/bpf/xdpkit/router', None),
    'netfilter': (str, 'refuse', ('refuse', 'bypass')),
    'traffic_control': (str, 'refuse', ('refuse', 'bypass')),
    'force': (bool, False, None),
    'exclusive': (bool, True, None),
    'link_timeout': ((int, float), LINK_TIMEOUT, None),
}


def check_config(config, source=CONFIG_FILE):
    """The declarative file's content with defaults filled in; an XdpkitError names what is wrong."""
    if not isinstance(config, dict):
        raise XdpkitError('%s: expected a JSON object, got %s' % (source, type(config).__name__))
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise XdpkitError('%s: unknown keys %s (known: %s)' % (
            source, ', '.join(unknown), ', '.join(sorted(CONFIG_KEYS))))
    checked = {}
    for key, (kind, default, choices) in CONFIG_KEYS.items():
        value = config.get(key, default)
        if value is None:
            raise XdpkitError('%s: %s is required' % (source, key))
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise XdpkitError('%s: %s must be of type %s, got %r' % (
                source, key, getattr(kind, '__name__', 'number'), value))
        if choices and value not in choices:
            raise XdpkitError('%s: %s must be one of %s, got %r' % (source, key, ', '.join(choices), value))
        checked[key] = value
    if not checked['interfaces']:
        raise XdpkitError('%s: interfaces is empty; give at least one interface' % source)
    return checked


def read_config(path=CONFIG_FILE):
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise XdpkitError('%s: cannot read the router configuration: %s' % (path, exc))
    return check_config(config, path)


def manager_params(config, state, sources=None):
    """The xdp_program parameters the router role passes, from the declarative file (the
    module's argument spec defaults for everything the role leaves out)."""
    present = state == 'present'
    return {
        'interface': None, 'interfaces': list(config['interfaces']), 'receivers': [], 'receiver_source_files': None,
        'exclusive': config['exclusive'], 'map_entries': None, 'namespace': config['namespace'] or None,
        'program': None, 'src': None, 'function': None,
        'defines': {'FIB_LOOKUP_DIRECT': 1} if config['lookup'] == 'direct' else {},
        'mode': config['mode'], 'pin_dir': None, 'maps_dir': config['maps_dir'],
        'source_files': sources if present else None, 'source_main': PROGRAM + '.c' if present else None,
        'force': config['force'], 'netfilter': config['netfilter'], 'traffic_control': config['traffic_control'],
        'keeper': 'external', 'state': state,
    }


def describe(result):
    """One line per port of what the run left there."""
    lines = []
    for entry in result.get('programs') or []:
        program = entry.get('program') or {}
        lines.append('%s: %s (prog id %s, %s mode)%s' % (
            program.get('interface', '?'), program.get('name') or 'nothing attached', program.get('prog_id'),
            program.get('mode'), ' - changed' if entry.get('changed') else ''))
    for entry in result.get('removed') or []:
        lines.append('%s: taken off (no longer listed)' % entry['interface'])
    return lines


def converge(config, state, log, bpf_dir=BPF_DIR, clock=time.monotonic, sleep=time.sleep):
    """Run the manager; while an interface is missing (the boot has not made it yet) try again
    for up to link_timeout seconds. Returns the manager's result."""
    sources = read_source_tree(os.path.join(bpf_dir, PROGRAM + '.c')) if state == 'present' else None
    deadline = clock() + config['link_timeout']
    said = None
    while True:
        try:
            with HostLock('xdpkit-router'):
                return XdpProgramSetManager(manager_params(config, state, sources)).run()
        except MissingDependency as exc:
            if state == 'absent' or clock() >= deadline:
                raise
            if str(exc) != said:
                log('waiting up to %.0f s: %s' % (max(0, deadline - clock()), exc))
                said = str(exc)
            sleep(0.2)


def _log(text):
    sys.stderr.write('%s\n' % text)
    sys.stderr.flush()


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog='xdpkit-router', description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('action', choices=('attach', 'detach'))
    parser.add_argument('--config', default=CONFIG_FILE, help='the declarative file the router role writes')
    parser.add_argument('--bpf-dir', default=BPF_DIR, help='the directory of bpf/%s.c and its headers' % PROGRAM)
    args = parser.parse_args(argv)
    try:
        config = read_config(args.config)
    except XdpkitError as exc:
        _log(str(exc))
        return EX_CONFIG
    state = 'present' if args.action == 'attach' else 'absent'
    ports = ', '.join(i if isinstance(i, str) else i.get('interface', '?') for i in config['interfaces'])
    _log('%s %s on %s (%s)' % ('attaching' if state == 'present' else 'detaching', PROGRAM, ports, args.config))
    started = time.monotonic()
    try:
        result = converge(config, state, _log, bpf_dir=args.bpf_dir)
    except XdpkitError as exc:
        _log('refused: %s' % exc if state == 'present' else 'failed: %s' % exc)
        return 1
    for line in describe(result):
        _log(line)
    for warning in result.get('warnings') or []:
        _log('warning: %s' % warning)
    _log('%s in %.1f s%s' % ('attached' if state == 'present' else 'detached', time.monotonic() - started,
                             ' (compiled in %.1f s)' % result['compile_seconds'] if result.get('compiled') else ''))
    return 0


if __name__ == '__main__':
    # (raise, not sys.exit: ansible-test's pylint keeps sys.exit out of module_utils)
    raise SystemExit(main())
