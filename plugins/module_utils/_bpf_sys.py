# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf(2) commands xdpkit needs, through ctypes: no bcc required.

Pinned maps are read and written, programs and maps are described, and programs are run
with BPF_PROG_RUN from here, so the map, stats and info paths never import bcc (which
compiles and is slow to import) and work on any host with a kernel that has BPF.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import os
import platform
import struct

_SYS_BPF = {'x86_64': 321, 'aarch64': 280, 'armv7l': 386, 'ppc64le': 361, 's390x': 351, 'riscv64': 280}

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1

MAP_TYPES = {1: 'hash', 2: 'array', 5: 'percpu_hash', 6: 'percpu_array', 14: 'devmap', 17: 'xskmap',
             25: 'devmap_hash', 16: 'cpumap'}
BPF_MAP_TYPE_DEVMAP_HASH = 25

ATTR_SIZE = 128

_libc = None


class BpfError(OSError):
    pass


def _syscall(cmd, attr):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise BpfError(0, 'bpf(2) syscall number unknown for %s' % platform.machine())
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, os.strerror(err))
    return ret


def _addr(buf):
    return ctypes.addressof(buf)


def obj_get(path):
    """fd of a pinned object."""
    cpath = ctypes.create_string_buffer(path.encode())
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=QII', attr, 0, _addr(cpath), 0, 0)
    return _syscall(BPF_OBJ_GET, attr)


def obj_pin(fd, path):
    cpath = ctypes.create_string_buffer(path.encode())
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=QII', attr, 0, _addr(cpath), fd, 0)
    _syscall(BPF_OBJ_PIN, attr)


def map_create(map_type, key_size, value_size, max_entries, name='', flags=0):
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=IIIIIII16s', attr, 0, map_type, key_size, value_size, max_entries, flags, 0, 0,
                     name.encode()[:15])
    return _syscall(BPF_MAP_CREATE, attr)


class ProgLoadAttr(ctypes.Structure):
    """union bpf_attr as BPF_PROG_LOAD reads it, up to expected_attach_type."""
    _fields_ = [('prog_type', ctypes.c_uint32), ('insn_cnt', ctypes.c_uint32), ('insns', ctypes.c_uint64),
                ('license', ctypes.c_uint64), ('log_level', ctypes.c_uint32), ('log_size', ctypes.c_uint32),
                ('log_buf', ctypes.c_uint64), ('kern_version', ctypes.c_uint32), ('prog_flags', ctypes.c_uint32),
                ('prog_name', ctypes.c_char * 16), ('prog_ifindex', ctypes.c_uint32),
                ('expected_attach_type', ctypes.c_uint32)]


BPF_PROG_LOAD = 5
BPF_PROG_TYPE_XDP = 6


def prog_load(prog_type, insns, license_text, name):
    """fd of a program loaded from raw instructions (8 bytes each, map fds already in place)."""
    code = ctypes.create_string_buffer(bytes(insns), len(insns))
    lic = ctypes.create_string_buffer(license_text.encode())
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=_addr(code), license=_addr(lic),
                        prog_name=name.encode()[:15])
    return _syscall(BPF_PROG_LOAD, attr)


def _elem(cmd, fd, key, value=None, flags=0):
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=IIQQQ', attr, 0, fd, 0, _addr(key), _addr(value) if value is not None else 0, flags)
    return _syscall(cmd, attr)


def map_update(fd, key, value, flags=BPF_ANY):
    k = ctypes.create_string_buffer(bytes(key), len(key))
    v = ctypes.create_string_buffer(bytes(value), len(value))
    _elem(BPF_MAP_UPDATE_ELEM, fd, k, v, flags)


def map_lookup(fd, key, value_size):
    """Value bytes, or None when the key is absent."""
    k = ctypes.create_string_buffer(bytes(key), len(key))
    v = ctypes.create_string_buffer(value_size)
    try:
        _elem(BPF_MAP_LOOKUP_ELEM, fd, k, v)
    except BpfError as exc:
        if exc.errno == 2:
            return None
        raise
    return v.raw


def map_delete(fd, key):
    """True when the key was there."""
    k = ctypes.create_string_buffer(bytes(key), len(key))
    try:
        _elem(BPF_MAP_DELETE_ELEM, fd, k)
    except BpfError as exc:
        if exc.errno == 2:
            return False
        raise
    return True


def map_keys(fd, key_size):
    keys = []
    key = None
    nxt = ctypes.create_string_buffer(key_size)
    while True:
        cur = ctypes.create_string_buffer(bytes(key), key_size) if key is not None else None
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into('=IIQQ', attr, 0, fd, 0, _addr(cur) if cur is not None else 0, _addr(nxt))
        try:
            _syscall(BPF_MAP_GET_NEXT_KEY, attr)
        except BpfError as exc:
            if exc.errno == 2:
                return keys
            raise
        key = nxt.raw
        keys.append(key)


def _info(fd, size):
    info = ctypes.create_string_buffer(size)
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=IIQ', attr, 0, fd, size, _addr(info))
    _syscall(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info.raw


def map_info(fd):
    raw = _info(fd, 88)
    map_type, map_id, key_size, value_size, max_entries, flags = struct.unpack_from('=IIIIII', raw, 0)
    name = raw[24:40].split(b'\0', 1)[0].decode()
    return {'type': MAP_TYPES.get(map_type, str(map_type)), 'type_id': map_type, 'id': map_id,
            'key_size': key_size, 'value_size': value_size, 'max_entries': max_entries, 'flags': flags,
            'name': name}


def prog_info(fd):
    raw = _info(fd, 232)
    prog_type, prog_id = struct.unpack_from('=II', raw, 0)
    tag = raw[8:16].hex()
    load_time, = struct.unpack_from('=Q', raw, 40)
    nr_map_ids, = struct.unpack_from('=I', raw, 52)
    name = raw[64:80].split(b'\0', 1)[0].decode()
    return {'type': prog_type, 'id': prog_id, 'tag': tag, 'name': name, 'nr_map_ids': nr_map_ids,
            'load_time_ns': load_time}


def prog_fd_by_id(prog_id):
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=III', attr, 0, prog_id, 0, 0)
    return _syscall(BPF_PROG_GET_FD_BY_ID, attr)


def map_fd_by_id(map_id):
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=III', attr, 0, map_id, 0, 0)
    return _syscall(BPF_MAP_GET_FD_BY_ID, attr)


def prog_map_ids(fd):
    """Ids of the maps a program uses."""
    raw = _info(fd, 232)
    nr_map_ids, = struct.unpack_from('=I', raw, 52)
    ids = (ctypes.c_uint32 * max(nr_map_ids, 1))()
    info = ctypes.create_string_buffer(232)
    struct.pack_into('=IQ', info, 52, nr_map_ids, ctypes.addressof(ids))
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=IIQ', attr, 0, fd, 232, _addr(info))
    _syscall(BPF_OBJ_GET_INFO_BY_FD, attr)
    return list(ids)[:nr_map_ids]


class XdpMd(ctypes.Structure):
    _fields_ = [('data', ctypes.c_uint32), ('data_end', ctypes.c_uint32), ('data_meta', ctypes.c_uint32),
                ('ingress_ifindex', ctypes.c_uint32), ('rx_queue_index', ctypes.c_uint32),
                ('egress_ifindex', ctypes.c_uint32)]


def prog_test_run(prog_fd, data, repeat=1, ingress_ifindex=0, flags=0, batch_size=0, data_out_size=None):
    """BPF_PROG_RUN an XDP program on `data`: (retval, data_out bytes, duration ns per run)."""
    data_in = ctypes.create_string_buffer(bytes(data), len(data))
    out_size = data_out_size if data_out_size is not None else len(data) + 256
    data_out = ctypes.create_string_buffer(out_size)
    ctx = None
    if ingress_ifindex or flags:
        ctx = XdpMd(0, len(data), 0, ingress_ifindex, 0, 0)
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into('=IIIIQQIIIIQQIII', attr, 0,
                     prog_fd, 0, len(data), out_size if not flags else 0,
                     _addr(data_in), _addr(data_out) if not flags else 0,
                     repeat, 0,
                     ctypes.sizeof(XdpMd) if ctx else 0, 0,
                     ctypes.addressof(ctx) if ctx else 0, 0,
                     flags, 0, batch_size)
    _syscall(BPF_PROG_TEST_RUN, attr)
    retval, size_out = struct.unpack_from('=I4xI', attr, 4)
    duration, = struct.unpack_from('=I', attr, 36)
    return retval, (data_out.raw[:size_out] if not flags else b''), duration


BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12


def _ids(cmd):
    ids, current = [], 0
    while True:
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into('=II', attr, 0, current, 0)
        try:
            _syscall(cmd, attr)
        except BpfError as exc:
            if exc.errno == 2:
                return ids
            raise
        current = struct.unpack_from('=I', attr, 4)[0]
        ids.append(current)


def prog_ids():
    """Ids of every BPF program loaded on the machine."""
    return _ids(BPF_PROG_GET_NEXT_ID)


def map_ids():
    """Ids of every BPF map on the machine."""
    return _ids(BPF_MAP_GET_NEXT_ID)
