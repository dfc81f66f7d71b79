# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything about turning bpf/*.c into a loaded program: defines, sources, pins, bcc.

Only compile_and_load() imports bcc; validating, digesting and reading pins do not, so
the idempotent path of xdp_program never pays for bcc.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import struct
import sys
import tempfile

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._ports import port_table_declarations
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, normalize_mac

BPFFS = '/sys/fs/bpf'
PIN_ROOT = BPFFS + '/xdpkit'
# Instructions bcc compiled, kept for the next load of the same source (_compile_cache).
COMPILED_DIR = '/run/xdpkit/compiled'
BPF_FS_MAGIC = 0xCAFE4A11
META_MAP = 'xdpkit_meta'
STATS_MAP = 'xdp_stats_map'
# digest(32) + prog_id(4) + mode(4) + maps_dir(256, NUL padded)
META_FORMAT = '=32sII256s'
META_SIZE = struct.calcsize(META_FORMAT)
MODES = {'native': 1, 'generic': 2}

_DEFINE_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,63}$')
_NUMBER_RE = re.compile(r'^-?(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})[uUlL]{0,3}$')
_MAC_LIKE_RE = re.compile(r'^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$')
_PIN_PATH_RE = re.compile(r'^/sys/fs/bpf(/[A-Za-z0-9_.@+-]+)+$')
_INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"/]+)"\s*$')
_DEVMAP_HASH_RE = re.compile(r'^\s*XDPKIT_DEVMAP_HASH\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,\s*([0-9]+)\s*\)', re.M)


# -- defines ---------------------------------------------------------------------------------
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


def check_pin_dir(path, what):
    if not isinstance(path, str) or not _PIN_PATH_RE.match(path) or '/../' in path + '/' or '/./' in path + '/':
        raise XdpkitError(
            "%s %r must be a plain path under /sys/fs/bpf (letters, digits, '_', '.', '@', '+', '-')" % (what, path))
    return path.rstrip('/')


def default_pin_dir(namespace, interface):
    """PIN_ROOT/NAMESPACE@INTERFACE; without a namespace, the one the module runs in (empty
    for the host's), so that namespaces entered by the netns connection keep their own pins."""
    if not namespace:
        from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import current_netns_name
        namespace = current_netns_name()
    return '%s/%s@%s' % (PIN_ROOT, namespace or '', interface)


# -- sources ---------------------------------------------------------------------------------
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


_PINNED_TABLE_RE = re.compile(r'(XDPKIT_PIN_DIR|XDPKIT_MAPS_DIR)\s*"/([A-Za-z0-9_.-]+)"')


def pin_declarations(text):
    """(directory, name) of every map the program pins, from its source; directory is
    'pin_dir' (this instance's) or 'maps_dir' (shared)."""
    shared = devmap_hash_declarations(text) + port_table_declarations(text)
    pins = {('maps_dir', name) for name, _size in shared}
    for directory, name in _PINNED_TABLE_RE.findall(text):
        pins.add(('pin_dir' if directory == 'XDPKIT_PIN_DIR' else 'maps_dir', name))
    return sorted(pins)


def declared_pins(text, pin_dir, maps_dir):
    """Paths of every map the program pins (stats, tables, devmaps), from its source."""
    dirs = {'pin_dir': pin_dir, 'maps_dir': maps_dir}
    return sorted({os.path.join(dirs[directory], name) for directory, name in pin_declarations(text)})


def program_uses_pins(prog_id, paths):
    """Whether the program with `prog_id` uses the very maps pinned at `paths`.

    A pin that was removed and re-created by another instance names a new map; a program
    loaded before still holds the old, unpinned one, which no later run can reach.
    """
    try:
        fd = sysbpf.prog_fd_by_id(prog_id)
    except OSError:
        return False
    try:
        used = set(sysbpf.prog_map_ids(fd))
    finally:
        os.close(fd)
    for path in paths:
        try:
            map_fd = sysbpf.obj_get(path)
        except OSError:
            return False
        try:
            if sysbpf.map_info(map_fd)['id'] not in used:
                return False
        finally:
            os.close(map_fd)
    return True


def devmap_hash_declarations(text):
    """(name, max_entries) of every XDPKIT_DEVMAP_HASH in the flattened source."""
    return [(name, int(size)) for name, size in _DEVMAP_HASH_RE.findall(text)]


_COMMENT_RE = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)
_FORWARDING_RE = re.compile(r'\.redirect_map\s*\(|\bbpf_redirect(_map|_peer|_neigh)?\s*\(|\bXDP_TX\b')


def forwards_frames(text):
    """Whether the program can send a frame on past the stack (redirect or XDP_TX), and so
    past netfilter: the programs the netfilter check is for."""
    return bool(_FORWARDING_RE.search(_COMMENT_RE.sub('', text)))


def program_digest(text, cflags, function, mode):
    payload = json.dumps({'text': text, 'cflags': cflags, 'function': function, 'mode': mode}, sort_keys=True)
    return hashlib.sha256(payload.encode()).digest()


# -- bpffs and pins --------------------------------------------------------------------------
def ensure_bpffs():
    """Mount bpffs on /sys/fs/bpf if it is not (systemd does it; minimal hosts may not)."""
    if _is_bpffs(BPFFS):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    os.makedirs(BPFFS, exist_ok=True)
    if libc.mount(b'bpf', BPFFS.encode(), b'bpf', 0, None) != 0:
        err = ctypes.get_errno()
        raise XdpkitError('bpffs is not mounted on %s and mounting it failed: %s' % (BPFFS, os.strerror(err)))
    return True


def _is_bpffs(path):
    class Statfs(ctypes.Structure):
        _fields_ = [('f_type', ctypes.c_long), ('rest', ctypes.c_byte * 120)]

    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    buf = Statfs()
    if libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return False
    return (buf.f_type & 0xFFFFFFFF) == BPF_FS_MAGIC


def ensure_devmap_hash(path, max_entries):
    """Create and pin a DEVMAP_HASH (ifindex -> ifindex) unless a fitting one is pinned."""
    if os.path.exists(path):
        fd = sysbpf.obj_get(path)
        try:
            info = sysbpf.map_info(fd)
        finally:
            os.close(fd)
        if info['type_id'] != sysbpf.BPF_MAP_TYPE_DEVMAP_HASH:
            raise XdpkitError("pinned map %s is a %s, not the devmap_hash this program needs; remove it "
                              "(state=absent on the programs using it) and run again" % (path, info['type']))
        return False
    fd = sysbpf.map_create(sysbpf.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, max_entries, os.path.basename(path)[:15])
    try:
        sysbpf.obj_pin(fd, path)
    finally:
        os.close(fd)
    return True


def read_meta(pin_dir):
    """What xdp_program recorded about the instance pinned in pin_dir, or None."""
    path = os.path.join(pin_dir, META_MAP)
    try:
        fd = sysbpf.obj_get(path)
    except OSError:
        return None
    try:
        raw = sysbpf.map_lookup(fd, struct.pack('=I', 0), META_SIZE)
    finally:
        os.close(fd)
    if raw is None:
        return None
    digest, prog_id, mode, maps_dir = struct.unpack(META_FORMAT, raw)
    return {'digest': digest, 'prog_id': prog_id, 'mode': mode, 'maps_dir': maps_dir.rstrip(b'\0').decode()}


def write_meta(pin_dir, digest, prog_id, mode, maps_dir):
    path = os.path.join(pin_dir, META_MAP)
    if not os.path.exists(path):
        fd = sysbpf.map_create(2, 4, META_SIZE, 1, META_MAP)  # BPF_MAP_TYPE_ARRAY
        sysbpf.obj_pin(fd, path)
    else:
        fd = sysbpf.obj_get(path)
    try:
        sysbpf.map_update(fd, struct.pack('=I', 0),
                          struct.pack(META_FORMAT, digest, prog_id, mode, maps_dir.encode()[:255]))
    finally:
        os.close(fd)


def pinned_files(directory):
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def remove_pins(directory):
    """Unpin everything in a bpffs directory and remove it (maps die with their last user)."""
    for name in pinned_files(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            remove_pins(path)
        else:
            os.unlink(path)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass


def remove_empty_dir(directory):
    try:
        os.rmdir(directory)
    except OSError:
        pass


def release_pin_root():
    """Remove PIN_ROOT once no pin is left under it, and with it the compiled programs kept for
    the next load: a host xdpkit has left keeps nothing of it."""
    remove_empty_dir(PIN_ROOT)
    if not os.path.exists(PIN_ROOT):
        shutil.rmtree(COMPILED_DIR, ignore_errors=True)


def instances_using_maps_dir(maps_dir, exclude):
    """Program instances (pin dirs under PIN_ROOT) whose maps live in maps_dir."""
    users = []
    for name in pinned_files(PIN_ROOT):
        pin_dir = os.path.join(PIN_ROOT, name)
        if pin_dir == exclude:
            continue
        meta = read_meta(pin_dir)
        if meta and meta['maps_dir'] == maps_dir:
            users.append(pin_dir)
    return users


# -- compiling -------------------------------------------------------------------------------
def kernel_build_dir():
    return '/lib/modules/%s/build' % platform.release()


@contextlib.contextmanager
def captured_stderr():
    """bcc prints compiler and verifier messages on fd 2; catch them for the error message."""
    box = {'text': ''}
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            box['text'] = sink.read().decode('utf-8', 'replace')


def _tail(text, limit=6000):
    lines = [line for line in text.splitlines() if 'modprobe: not found' not in line]
    text = '\n'.join(lines).strip()
    return text if len(text) <= limit else '...\n' + text[-limit:]


def compile_and_load(text, cflags, function, source_name):
    """bcc-compile `text` and load `function` as an XDP program: (bpf object, function)."""
    try:
        from bcc import BPF
    except ImportError:
        raise XdpkitError(
            "bcc is not importable by %s: install Debian's python3-bpfcc and run modules with "
            "/usr/bin/python3 (ansible_python_interpreter); PyPI's 'bcc' is an unrelated package" % sys.executable)
    if not os.path.exists(os.path.join(kernel_build_dir(), 'include')) and \
            not os.path.exists(os.path.join(kernel_build_dir(), 'Makefile')):
        raise XdpkitError(
            "bcc needs a kernel build tree at %s and there is none: install linux-headers-%s, or Debian's "
            "generic linux-headers package linked there (the xdpkit prerequisites role does this)" % (
                kernel_build_dir(), platform.release()))
    error = None
    with captured_stderr() as log:
        try:
            bpf = BPF(text=text.encode(), cflags=cflags)
        except Exception as exc:
            error = exc
    if error is not None:
        raise XdpkitError("compiling %s failed (%s):\n%s" % (source_name, error, _tail(log['text'])))
    with captured_stderr() as log:
        try:
            fn = bpf.load_func(function.encode(), BPF.XDP)
        except Exception as exc:
            error = exc
    if error is not None:
        bpf.cleanup()
        detail = _tail(log['text'])
        if 'Failed to load BPF program' in str(error):
            raise XdpkitError("the kernel's verifier rejected %s in %s (%s). Verifier log:\n%s" % (
                function, source_name, error, detail))
        raise XdpkitError("loading %s from %s failed: %s\n%s" % (function, source_name, error, detail))
    return bpf, fn


def module_license(bpf):
    """The licence bcc compiled into the module (BPF_LICENSE; GPL unless the source says)."""
    from bcc import lib
    return lib.bpf_module_license(bpf.module).decode()


def is_enoent(exc):
    return isinstance(exc, OSError) and exc.errno == errno.ENOENT
