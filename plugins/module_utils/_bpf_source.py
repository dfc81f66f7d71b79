# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] BPF C sources as xdp_program takes them: the user's defines validated into -D flags, a
program's local includes flattened into one text, and what a source declares (the maps it pins,
its devmaps and port entry, whether it forwards frames past the stack).

Pure Python, no bcc: the action plugin uses it on the controller, the unit tests directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, normalize_mac

_DEFINE_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,63}$')
_NUMBER_RE = re.compile(r'^-?(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})[uUlL]{0,3}$')
_MAC_LIKE_RE = re.compile(r'^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$')
_INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"/]+)"\s*$')
_DEVMAP_HASH_RE = re.compile(
    r'^\s*XDPKIT_(?:DEVMAP_HASH|EGRESS_PORTS)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,\s*([0-9]+)\s*\)', re.M)
_PORT_ENTRY_RE = re.compile(r'^\s*XDPKIT_PORT_ENTRY\(\s*\)', re.M)
# The array of one XDPKIT_PORT_ENTRY pins in the instance's pin_dir under a fixed name (_ports
# fills it; _lease.PORT_ENTRY is the same name, for the read-only side).
PORT_ENTRY_MAP = 'port_entry'
_LOCAL_SOURCES_RE = re.compile(r'^\s*XDPKIT_LOCAL_SOURCES\(\s*[0-9]+\s*\)', re.M)
# The maps XDPKIT_LOCAL_SOURCES pins in maps_dir under fixed names (_local_sources fills them).
LOCAL_SOURCE_MAPS = ('local_addrs', 'local_state')
_EGRESS_PORTS_RE = re.compile(r'^\s*XDPKIT_EGRESS_PORTS\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,\s*([0-9]+)\s*\)', re.M)
_PINNED_TABLE_RE = re.compile(r'(XDPKIT_PIN_DIR|XDPKIT_MAPS_DIR)\s*"/([A-Za-z0-9_.-]+)"')
_COMMENT_RE = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)
_FORWARDING_RE = re.compile(r'\.redirect_map\s*\(|\bbpf_redirect(_map|_peer|_neigh)?\s*\(|\bXDP_TX\b')


def define_value(name, value):
    """The C text of one define's value. Only numbers get through, so no C can be injected;
    a MAC becomes its 48-bit integer."""
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    if _MAC_LIKE_RE.match(text):
        return '0x%sULL' % normalize_mac(text).replace(':', '')
    if _NUMBER_RE.match(text):
        return text
    raise XdpkitError(
        "define %s=%r is not a number or a MAC address; defines carry only numbers (decimal or "
        "0x hex) and MACs, so that nothing but a value can reach the C source" % (name, value))


def define_flags(defines):
    """Validated -D flags for the user's defines, sorted so the digest is stable."""
    flags = []
    for name in sorted(defines or {}):
        if not _DEFINE_NAME_RE.match(name):
            raise XdpkitError("define name %r is not a C identifier" % (name,))
        if name.startswith('XDPKIT_') or name.startswith('__'):
            raise XdpkitError("define name %r is reserved (XDPKIT_* and __* are set by the module)" % name)
        flags.append('-D%s=%s' % (name, define_value(name, defines[name])))
    return flags


def flatten_sources(main, sources):
    """One C text from the main file and its local includes ("x.h" beside it).

    bcc rewrites map accesses (table.lookup() and friends) only in the text it is given,
    not in included headers, so the shared header is pasted in; #line keeps compiler
    messages pointing at the right file and line.
    """
    if main not in sources:
        raise XdpkitError("program source %r was not provided (have: %s)" % (main, ', '.join(sorted(sources))))
    seen = set()

    def expand(name, stack):
        if name in stack:
            raise XdpkitError("include loop: %s" % ' -> '.join(stack + [name]))
        out = ['#line 1 "%s"' % name]
        for number, line in enumerate(sources[name].splitlines(), 1):
            match = _INCLUDE_RE.match(line)
            if match:
                header = match.group(1)
                if header not in sources:
                    raise XdpkitError('%s:%d includes "%s", which is not beside it' % (name, number, header))
                if header not in seen:
                    seen.add(header)
                    out.extend(expand(header, stack + [name]))
                out.append('#line %d "%s"' % (number + 1, name))
            else:
                out.append(line)
        return out

    return '\n'.join(expand(main, [])) + '\n'


def read_source_tree(path):
    """{file name: text} of a C file and the quoted includes beside it, recursively.

    Runs on the controller (the action plugin) and in tests; the target only gets the texts.
    """
    directory = os.path.dirname(path)
    sources = {}
    pending = [os.path.basename(path)]
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        full = os.path.join(directory, name)
        if not os.path.isfile(full):
            raise XdpkitError('%s includes "%s", which is not a file beside it' % (path, name))
        with open(full) as handle:
            sources[name] = handle.read()
        pending.extend(match.group(1) for match in map(_INCLUDE_RE.match, sources[name].splitlines()) if match)
    return sources


def pin_declarations(text):
    """(directory, name) of every map the program pins, from its source; directory is
    'pin_dir' (this instance's) or 'maps_dir' (shared)."""
    pins = {('maps_dir', name) for name, _size in devmap_hash_declarations(text)}
    if declares_port_entry(text):
        pins.add(('pin_dir', PORT_ENTRY_MAP))
    if declares_local_sources(text):
        pins.update(('maps_dir', name) for name in LOCAL_SOURCE_MAPS)
    for directory, name in _PINNED_TABLE_RE.findall(text):
        pins.add(('pin_dir' if directory == 'XDPKIT_PIN_DIR' else 'maps_dir', name))
    return sorted(pins)


def declares_local_sources(text):
    """Whether the program uses the local source table (XDPKIT_LOCAL_SOURCES)."""
    return bool(_LOCAL_SOURCES_RE.search(text))


def declared_pins(text, pin_dir, maps_dir):
    """Paths of every map the program pins (stats, tables, devmaps), from its source."""
    dirs = {'pin_dir': pin_dir, 'maps_dir': maps_dir}
    return sorted({os.path.join(dirs[directory], name) for directory, name in pin_declarations(text)})


def devmap_hash_declarations(text):
    """(name, max_entries) of every XDPKIT_DEVMAP_HASH (and XDPKIT_EGRESS_PORTS, which is one)
    in the flattened source."""
    return [(name, int(size)) for name, size in _DEVMAP_HASH_RE.findall(text)]


def declares_port_entry(text):
    """Whether the flattened source declares XDPKIT_PORT_ENTRY(): the instance's array of one
    holding its port's facts (PORT_ENTRY_MAP in pin_dir, _ports fills it)."""
    return bool(_PORT_ENTRY_RE.search(text))


def egress_port_declarations(text):
    """(name, max_entries) of every XDPKIT_EGRESS_PORTS: the DEVMAP_HASHes that hold exactly the
    ports the program is attached to (ifindex -> ifindex)."""
    return [(name, int(size)) for name, size in _EGRESS_PORTS_RE.findall(text)]


def forwards_frames(text):
    """Whether the program can send a frame on past the stack (redirect or XDP_TX), and so
    past netfilter: the programs the netfilter check is for."""
    return bool(_FORWARDING_RE.search(_COMMENT_RE.sub('', text)))
