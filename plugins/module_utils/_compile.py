# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] How a program is compiled and loaded: once per source and defines.

bcc compiles C at every load it is asked for (about a second for the router; it needs a kernel
build tree, and its compiler and verifier messages are caught for the error). The instructions
it hands the kernel depend on the source, the defines, bcc and the kernel's headers, and not on
where the maps are pinned: the pin directories only name the pins, and bcc writes each map's fd
into the instructions. So the instructions are kept (COMPILED_DIR) with the fd of each map
replaced by the map's pin (directory role and name) and its definition, and the next port, the
next instance and the next run open or create those pins, write their fds back and hand the
same instructions to the kernel. Anything unexpected (a map that is not pinned, a pin whose
definition differs, the kernel refusing the program) falls back to the full bcc compile, so a
kept load never behaves differently from a compiled one.

Over 300 lines on purpose: the compile, the kept instructions and their load are one contract
(a kept load is the compiled one, or it is not used), and a reader checks it in one file; split,
the fd rewriting and the fallback that guards it would sit apart.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import struct
import sys
import tempfile
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease_clock
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_pins import COMPILED_DIR
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_source import pin_declarations
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError

# Hardcoded programs compile a new define set for every lab they are built for: keep the most
# recently used entries only.
MAX_ENTRIES = 64
FORMAT = 2  # 2: maps the source pins but never reads are kept too

BPF_LD_IMM64 = 0x18
BPF_PSEUDO_MAP_FD = 1
_INSN = struct.Struct('=BBhi')


# -- what the running kernel takes ---------------------------------------------------------
BPF_FUNC_FIB_LOOKUP = 69
BPF_FIB_LOOKUP_SKIP_NEIGH = 1 << 2
XDP_DROP, XDP_PASS = 1, 2
# r1 is the context. A zeroed struct bpf_fib_lookup (64 bytes) on the stack goes to
# bpf_fib_lookup() with BPF_FIB_LOOKUP_SKIP_NEIGH; the program returns XDP_DROP when the helper
# said -EINVAL (a flag this kernel does not know: it checks the flags before anything else),
# XDP_PASS otherwise (family 0 then gets -EAFNOSUPPORT; nothing is looked up).
_SKIP_NEIGH_PROBE = b''.join(
    [_INSN.pack(0x7a, 10, -8 * i, 0) for i in range(1, 9)] + [   # *(u64 *)(r10 - 8i) = 0
        _INSN.pack(0xbf, 2 | 10 << 4, 0, 0),                     # r2 = r10
        _INSN.pack(0x07, 2, 0, -64),                             # r2 += -64
        _INSN.pack(0xb7, 3, 0, 64),                              # r3 = sizeof(struct bpf_fib_lookup)
        _INSN.pack(0xb7, 4, 0, BPF_FIB_LOOKUP_SKIP_NEIGH),       # r4 = flags
        _INSN.pack(0x85, 0, 0, BPF_FUNC_FIB_LOOKUP),             # call bpf_fib_lookup
        _INSN.pack(0x15, 0, 2, -errno.EINVAL),                   # if r0 == -EINVAL goto +2
        _INSN.pack(0xb7, 0, 0, XDP_PASS),                        # r0 = XDP_PASS
        _INSN.pack(0x95, 0, 0, 0),                               # exit
        _INSN.pack(0xb7, 0, 0, XDP_DROP),                        # r0 = XDP_DROP
        _INSN.pack(0x95, 0, 0, 0),                               # exit
    ])


def _probe_fib_skip_neigh():
    """Whether bpf_fib_lookup() takes BPF_FIB_LOOKUP_SKIP_NEIGH (kernel 6.5 and later, and any
    kernel it was backported to): one BPF_PROG_RUN of a probe program. A probe that cannot run
    says no: the router without the flag is right on every kernel, only dearer."""
    try:
        fd = sysbpf.prog_load(sysbpf.BPF_PROG_TYPE_XDP, _SKIP_NEIGH_PROBE, 'GPL', 'xdpkit_probe')
    except OSError:
        return False
    try:
        return sysbpf.prog_test_run(fd, bytes(64))[0] == XDP_PASS
    except OSError:
        return False
    finally:
        os.close(fd)


BPF_FUNC_JIFFIES64 = 118               # kernel 5.5 and later
BPF_FUNC_KTIME_GET_COARSE_NS = 160     # kernel 5.11 and later


def _xdp_may_call(helper):
    """Whether XDP programs may call `helper`: the verifier loads a program that calls it (it
    refuses a helper it does not know)."""
    probe = b''.join([
        _INSN.pack(0x85, 0, 0, helper),                          # call helper
        _INSN.pack(0xb7, 0, 0, XDP_PASS),                        # r0 = XDP_PASS
        _INSN.pack(0x95, 0, 0, 0),                               # exit
    ])
    try:
        fd = sysbpf.prog_load(sysbpf.BPF_PROG_TYPE_XDP, probe, 'GPL', 'xdpkit_probe')
    except OSError:
        return False
    os.close(fd)
    return True


def _probe_coarse_clock():
    """Whether XDP programs may call bpf_ktime_get_coarse_ns(). A kernel that refuses it gets the
    exact clock, right everywhere, only dearer per packet."""
    return _xdp_may_call(BPF_FUNC_KTIME_GET_COARSE_NS)


def _probe_jiffies_hz():
    """The kernel's HZ when XDP programs may read jiffies and user space can convert a lease's end
    to them (_lease_clock), else 0: the router then reads a nanosecond clock."""
    if not _xdp_may_call(BPF_FUNC_JIFFIES64):
        return 0
    return _lease_clock.measure_hz() or 0


# Each feature and its probe; a cached file without a feature probes that one anew.
_PROBES = {'fib_skip_neigh': _probe_fib_skip_neigh, 'coarse_clock': _probe_coarse_clock,
           'jiffies_hz': _probe_jiffies_hz}
_kernel_features = {}


def kernel_features():
    """What the running kernel takes, probed once per kernel release and kept beside the compiled
    programs (gone with them when xdpkit leaves the host, as a reboot into another kernel does)."""
    if not _kernel_features:
        path = os.path.join(COMPILED_DIR, 'kernel-%s.features' % platform.release())
        try:
            with open(path) as handle:
                _kernel_features.update(json.load(handle))
        except (OSError, ValueError):
            pass
        missing = [name for name in _PROBES if name not in _kernel_features]
        for name in missing:
            _kernel_features[name] = _PROBES[name]()
        if missing:
            try:
                os.makedirs(COMPILED_DIR, mode=0o700, exist_ok=True)
                with tempfile.NamedTemporaryFile('w', dir=COMPILED_DIR, suffix='.tmp', delete=False) as handle:
                    json.dump(_kernel_features, handle)
                os.rename(handle.name, path)
            except OSError:
                pass  # probed again by the next process
    return dict(_kernel_features)


def kernel_define_flags():
    """The -D flags every compile gets from the running kernel (XDPKIT_*: no user define can
    set them). They are part of the cache key, so a kernel that answers otherwise compiles anew."""
    features = kernel_features()
    return ['-DXDPKIT_FIB_SKIP_NEIGH=%d' % features['fib_skip_neigh'],
            '-DXDPKIT_COARSE_CLOCK=%d' % features['coarse_clock'],
            '-DXDPKIT_JIFFIES_CLOCK=%d' % bool(features['jiffies_hz'])]


def jiffies_hz():
    """HZ of the running kernel when its routers read the jiffies lease clock, else 0."""
    return kernel_features()['jiffies_hz']


# -- bcc ------------------------------------------------------------------------------------
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
            bpf = BPF(text=text.encode(), cflags=list(cflags) + kernel_define_flags())
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


# -- the kept instructions ------------------------------------------------------------------
class NotReusable(Exception):
    """The kept instructions do not fit this load; compile instead."""


class LoadedProgram:
    """An XDP program's fd, and whether bcc compiled it for this load and how long that took."""

    def __init__(self, fd, compiled, compile_seconds):
        self.fd = fd
        self.compiled = compiled
        self.compile_seconds = compile_seconds

    def close(self):
        os.close(self.fd)


def _bcc_version():
    import bcc
    return getattr(bcc, '__version__', 'unknown')


def cache_key(text, define_flags, function):
    payload = json.dumps({'format': FORMAT, 'text': text, 'defines': list(define_flags) + kernel_define_flags(),
                          'function': function, 'kernel': platform.release(), 'bcc': _bcc_version()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _entry_path(key):
    return os.path.join(COMPILED_DIR, key + '.json')


def read_entry(key):
    """The kept entry for `key`, or None (missing, or unreadable and then removed)."""
    path = _entry_path(key)
    try:
        with open(path) as handle:
            entry = json.load(handle)
        insns = base64.b64decode(entry['insns'])
        if entry.get('format') != FORMAT or len(insns) % 8:
            raise ValueError('format')
        entry['insns'] = insns
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        forget(key)
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return entry


def write_entry(key, entry):
    os.makedirs(COMPILED_DIR, mode=0o700, exist_ok=True)
    data = dict(entry, format=FORMAT, insns=base64.b64encode(entry['insns']).decode())
    # Written beside and renamed: a concurrent reader sees the old entry or the new one whole.
    handle = tempfile.NamedTemporaryFile('w', dir=COMPILED_DIR, suffix='.tmp', delete=False)
    try:
        with handle:
            json.dump(data, handle)
        os.rename(handle.name, _entry_path(key))
    except BaseException:
        os.unlink(handle.name)
        raise
    _evict()


def forget(key):
    """Drop the entry of `key` (and its lock: at worst a concurrent load compiles once more)."""
    for path in (_entry_path(key), os.path.join(COMPILED_DIR, key + '.lock')):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _evict():
    entries = []
    for name in os.listdir(COMPILED_DIR):
        if name.endswith('.json'):
            try:
                entries.append((os.stat(os.path.join(COMPILED_DIR, name)).st_mtime, name))
            except FileNotFoundError:
                pass
    for _mtime, name in sorted(entries)[:-MAX_ENTRIES]:
        forget(name[:-len('.json')])


def map_slots(insns):
    """(instruction index, map fd) of every map reference in `insns`.

    Raises NotReusable for references the entry cannot describe (map values, map indexes).
    """
    slots = []
    index = 0
    while index < len(insns) // 8:
        code, regs, _off, imm = _INSN.unpack_from(insns, index * 8)
        if code == BPF_LD_IMM64:
            src = regs >> 4
            if src == BPF_PSEUDO_MAP_FD:
                slots.append((index, imm))
            elif src:
                raise NotReusable('instruction %d loads a kind %d map reference' % (index, src))
            index += 1  # the second half of the 16-byte load
        index += 1
    return slots


def describe(insns, license_text, function, text, pin_dir, maps_dir):
    """The entry for a program bcc just loaded, its maps named by their pins. (The caller adds
    the source's name and the defines, for a reader of the cache.)"""
    dirs = {'pin_dir': pin_dir, 'maps_dir': maps_dir}
    pinned = {}
    for role, name in pin_declarations(text):
        fd = sysbpf.obj_get(os.path.join(dirs[role], name))
        try:
            info = sysbpf.map_info(fd)
            pinned[info['id']] = (role, name, info)
        finally:
            os.close(fd)

    def spec(map_id):
        role, name, info = pinned[map_id]
        return {'dir': role, 'pin': name, 'name': info['name'], 'type': info['type_id'],
                'key_size': info['key_size'], 'value_size': info['value_size'],
                'max_entries': info['max_entries'], 'flags': info['flags']}

    maps, slots, index_of_fd, used = [], [], {}, set()
    for insn, fd in map_slots(insns):
        if fd not in index_of_fd:
            info = sysbpf.map_info(fd)
            if info['id'] not in pinned:
                raise NotReusable('map %s is not pinned' % info['name'])
            index_of_fd[fd] = len(maps)
            used.add(info['id'])
            maps.append(spec(info['id']))
        slots.append([insn, index_of_fd[fd]])
    # Maps the source pins but the code never reads (filled and read from user space only):
    # bcc made them at the compile, so a load of the kept program makes them too.
    maps.extend(spec(map_id) for map_id in sorted(pinned) if map_id not in used)
    return {'function': function, 'license': license_text, 'insns': bytes(insns), 'maps': maps, 'slots': slots}


_DEFINITION = ('type', 'key_size', 'value_size', 'max_entries')


def _open_or_create(spec, path):
    try:
        fd = sysbpf.obj_get(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    else:
        info = sysbpf.map_info(fd)
        if any(info['type_id' if field == 'type' else field] != spec[field] for field in _DEFINITION):
            os.close(fd)
            raise NotReusable('the map pinned at %s has another definition' % path)
        return fd
    fd = sysbpf.map_create(spec['type'], spec['key_size'], spec['value_size'], spec['max_entries'],
                           spec['name'], spec['flags'])
    try:
        sysbpf.obj_pin(fd, path)
    except OSError as exc:
        os.close(fd)
        if exc.errno != errno.EEXIST:
            raise
        return _open_or_create(spec, path)  # pinned by a concurrent load meanwhile
    return fd


def load_entry(entry, pin_dir, maps_dir):
    """Load a kept program on the pins of this instance: its fd."""
    dirs = {'pin_dir': pin_dir, 'maps_dir': maps_dir}
    fds = []
    try:
        for spec in entry['maps']:
            fds.append(_open_or_create(spec, os.path.join(dirs[spec['dir']], spec['pin'])))
        insns = bytearray(entry['insns'])
        for insn, map_index in entry['slots']:
            code, regs, off, _imm = _INSN.unpack_from(insns, insn * 8)
            _INSN.pack_into(insns, insn * 8, code, regs, off, fds[map_index])
        try:
            return sysbpf.prog_load(sysbpf.BPF_PROG_TYPE_XDP, bytes(insns), entry['license'], entry['function'])
        except OSError as exc:
            raise NotReusable('the kernel refused the kept instructions: %s' % exc)
    finally:
        for fd in fds:
            os.close(fd)


def load_xdp_program(text, pin_dir, maps_dir, define_flags, function, source_name):
    """Load `function` of `text` for the instance pinned at pin_dir / maps_dir: from the kept
    instructions when this source and these defines were compiled before, else with bcc."""
    key = cache_key(text, define_flags, function)
    loaded = _load_kept(key, pin_dir, maps_dir)
    if loaded is not None:
        return loaded
    os.makedirs(COMPILED_DIR, mode=0o700, exist_ok=True)
    # Hosts of one machine (namespaces driven with forks) ask for the same program at once:
    # one compiles, the others wait for its entry instead of compiling beside it.
    with open(os.path.join(COMPILED_DIR, key + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        loaded = _load_kept(key, pin_dir, maps_dir)
        if loaded is not None:
            return loaded
        return _compile_and_keep(key, text, pin_dir, maps_dir, define_flags, function, source_name)


def _load_kept(key, pin_dir, maps_dir):
    entry = read_entry(key)
    if entry is not None:
        try:
            return LoadedProgram(load_entry(entry, pin_dir, maps_dir), False, 0.0)
        except NotReusable:
            forget(key)
    return None


def _compile_and_keep(key, text, pin_dir, maps_dir, define_flags, function, source_name):
    cflags = ['-DXDPKIT_PIN_DIR="%s"' % pin_dir, '-DXDPKIT_MAPS_DIR="%s"' % maps_dir] + list(define_flags)
    start = time.monotonic()
    bpf, fn = compile_and_load(text, cflags, function, source_name)
    seconds = round(time.monotonic() - start, 3)
    try:
        try:
            entry = describe(bpf.dump_func(function.encode()), module_license(bpf), function, text,
                             pin_dir, maps_dir)
            write_entry(key, dict(entry, source=source_name, defines=list(define_flags)))
        except (NotReusable, OSError):
            forget(key)  # loads of this program compile every time, as before
        return LoadedProgram(os.dup(fn.fd), True, seconds)
    finally:
        bpf.cleanup()
