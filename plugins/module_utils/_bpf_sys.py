# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 1, kernel interfaces] The bpf(2) commands xdpkit's modules need, through ctypes: no bcc required.

Pinned maps are read and written, and programs and maps are described from here, so the map,
stats and info paths never import bcc (which compiles and is slow to import) and work on any
host with a kernel that has BPF. Each command's part of `union bpf_attr` and each info struct
is a ctypes.Structure with the kernel's field names (include/uapi/linux/bpf.h), cut after the
last field xdpkit uses: the kernel takes a shorter attr or info and zero-fills the rest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import platform

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import libc

_SYS_BPF = {'x86_64': 321, 'aarch64': 280, 'armv7l': 386, 'ppc64le': 361, 's390x': 351, 'riscv64': 280}

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
# Attach types of tcx (6.6+): BPF programs on a device's ingress / egress, without a qdisc.
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47

BPF_ANY = 0
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1

BPF_PROG_TYPE_XDP = 6
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_DEVMAP_HASH = 25
MAP_TYPES = {1: 'hash', 2: 'array', 5: 'percpu_hash', 6: 'percpu_array', 14: 'devmap', 17: 'xskmap',
             25: 'devmap_hash', 16: 'cpumap'}
BPF_OBJ_NAME_LEN = 16


class BpfError(OSError):
    pass


# -- union bpf_attr, one structure per command ------------------------------------------------
class MapCreateAttr(ctypes.Structure):
    _fields_ = [('map_type', ctypes.c_uint32), ('key_size', ctypes.c_uint32), ('value_size', ctypes.c_uint32),
                ('max_entries', ctypes.c_uint32), ('map_flags', ctypes.c_uint32), ('inner_map_fd', ctypes.c_uint32),
                ('numa_node', ctypes.c_uint32), ('map_name', ctypes.c_char * BPF_OBJ_NAME_LEN)]


class MapElemAttr(ctypes.Structure):
    """BPF_MAP_*_ELEM and BPF_MAP_GET_NEXT_KEY (whose `value` is the next key)."""
    _fields_ = [('map_fd', ctypes.c_uint32), ('_pad', ctypes.c_uint32), ('key', ctypes.c_uint64),
                ('value', ctypes.c_uint64), ('flags', ctypes.c_uint64)]


class ProgLoadAttr(ctypes.Structure):
    _fields_ = [('prog_type', ctypes.c_uint32), ('insn_cnt', ctypes.c_uint32), ('insns', ctypes.c_uint64),
                ('license', ctypes.c_uint64), ('log_level', ctypes.c_uint32), ('log_size', ctypes.c_uint32),
                ('log_buf', ctypes.c_uint64), ('kern_version', ctypes.c_uint32), ('prog_flags', ctypes.c_uint32),
                ('prog_name', ctypes.c_char * BPF_OBJ_NAME_LEN), ('prog_ifindex', ctypes.c_uint32),
                ('expected_attach_type', ctypes.c_uint32)]


class ObjAttr(ctypes.Structure):
    """BPF_OBJ_PIN and BPF_OBJ_GET."""
    _fields_ = [('pathname', ctypes.c_uint64), ('bpf_fd', ctypes.c_uint32), ('file_flags', ctypes.c_uint32)]


class GetIdAttr(ctypes.Structure):
    """BPF_*_GET_FD_BY_ID and BPF_*_GET_NEXT_ID."""
    _fields_ = [('id', ctypes.c_uint32), ('next_id', ctypes.c_uint32), ('open_flags', ctypes.c_uint32)]


class QueryAttr(ctypes.Structure):
    """BPF_PROG_QUERY; for tcx `target` is the ifindex, in the caller's network namespace.
    Whole, unlike the others: the kernel writes `revision` back whatever size it is told."""
    _fields_ = [('target', ctypes.c_uint32), ('attach_type', ctypes.c_uint32), ('query_flags', ctypes.c_uint32),
                ('attach_flags', ctypes.c_uint32), ('prog_ids', ctypes.c_uint64), ('prog_cnt', ctypes.c_uint32),
                ('_pad', ctypes.c_uint32), ('prog_attach_flags', ctypes.c_uint64), ('link_ids', ctypes.c_uint64),
                ('link_attach_flags', ctypes.c_uint64), ('revision', ctypes.c_uint64)]


class TestRunAttr(ctypes.Structure):
    """BPF_PROG_TEST_RUN (BPF_PROG_RUN)."""
    _fields_ = [('prog_fd', ctypes.c_uint32), ('retval', ctypes.c_uint32), ('data_size_in', ctypes.c_uint32),
                ('data_size_out', ctypes.c_uint32), ('data_in', ctypes.c_uint64), ('data_out', ctypes.c_uint64),
                ('repeat', ctypes.c_uint32), ('duration', ctypes.c_uint32), ('ctx_size_in', ctypes.c_uint32),
                ('ctx_size_out', ctypes.c_uint32), ('ctx_in', ctypes.c_uint64), ('ctx_out', ctypes.c_uint64),
                ('flags', ctypes.c_uint32), ('cpu', ctypes.c_uint32), ('batch_size', ctypes.c_uint32)]


class XdpMd(ctypes.Structure):
    """struct xdp_md, the context BPF_PROG_RUN hands an XDP program."""
    _fields_ = [('data', ctypes.c_uint32), ('data_end', ctypes.c_uint32), ('data_meta', ctypes.c_uint32),
                ('ingress_ifindex', ctypes.c_uint32), ('rx_queue_index', ctypes.c_uint32),
                ('egress_ifindex', ctypes.c_uint32)]


class InfoAttr(ctypes.Structure):
    _fields_ = [('bpf_fd', ctypes.c_uint32), ('info_len', ctypes.c_uint32), ('info', ctypes.c_uint64)]


# -- the info structures ------------------------------------------------------------------------
class BpfMapInfo(ctypes.Structure):
    _fields_ = [('type', ctypes.c_uint32), ('id', ctypes.c_uint32), ('key_size', ctypes.c_uint32),
                ('value_size', ctypes.c_uint32), ('max_entries', ctypes.c_uint32), ('map_flags', ctypes.c_uint32),
                ('name', ctypes.c_char * BPF_OBJ_NAME_LEN)]


class BpfProgInfo(ctypes.Structure):
    _fields_ = [('type', ctypes.c_uint32), ('id', ctypes.c_uint32), ('tag', ctypes.c_uint8 * 8),
                ('jited_prog_len', ctypes.c_uint32), ('xlated_prog_len', ctypes.c_uint32),
                ('jited_prog_insns', ctypes.c_uint64), ('xlated_prog_insns', ctypes.c_uint64),
                ('load_time', ctypes.c_uint64), ('created_by_uid', ctypes.c_uint32), ('nr_map_ids', ctypes.c_uint32),
                ('map_ids', ctypes.c_uint64), ('name', ctypes.c_char * BPF_OBJ_NAME_LEN)]


def bpf(cmd, attr):
    """bpf(2) with `attr` (one of the structures above); the return value, or BpfError."""
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise BpfError(0, 'bpf(2) syscall number unknown for %s' % platform.machine())
    ret = libc().syscall(ctypes.c_long(nr), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, os.strerror(err))
    return ret


def _buffer(data):
    return ctypes.create_string_buffer(bytes(data), len(data))


# -- objects ------------------------------------------------------------------------------------
def obj_get(path):
    """fd of a pinned object."""
    cpath = ctypes.create_string_buffer(path.encode())
    return bpf(BPF_OBJ_GET, ObjAttr(pathname=ctypes.addressof(cpath)))


def obj_pin(fd, path):
    cpath = ctypes.create_string_buffer(path.encode())
    bpf(BPF_OBJ_PIN, ObjAttr(pathname=ctypes.addressof(cpath), bpf_fd=fd))


def prog_fd_by_id(prog_id):
    return bpf(BPF_PROG_GET_FD_BY_ID, GetIdAttr(id=prog_id))


def map_fd_by_id(map_id):
    return bpf(BPF_MAP_GET_FD_BY_ID, GetIdAttr(id=map_id))


# -- maps ---------------------------------------------------------------------------------------
def map_create(map_type, key_size, value_size, max_entries, name='', flags=0):
    return bpf(BPF_MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                                             max_entries=max_entries, map_flags=flags,
                                             map_name=name.encode()[:BPF_OBJ_NAME_LEN - 1]))


def map_update(fd, key, value, flags=BPF_ANY):
    k, v = _buffer(key), _buffer(value)
    bpf(BPF_MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(k), value=ctypes.addressof(v), flags=flags))


def map_lookup(fd, key, value_size):
    """Value bytes, or None when the key is absent."""
    k, v = _buffer(key), ctypes.create_string_buffer(value_size)
    try:
        bpf(BPF_MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(k), value=ctypes.addressof(v)))
    except BpfError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def map_delete(fd, key):
    """True when the key was there."""
    k = _buffer(key)
    try:
        bpf(BPF_MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(k)))
    except BpfError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def map_keys(fd, key_size):
    keys = []
    current = None
    following = ctypes.create_string_buffer(key_size)
    while True:
        attr = MapElemAttr(map_fd=fd, key=ctypes.addressof(current) if current is not None else 0,
                           value=ctypes.addressof(following))
        try:
            bpf(BPF_MAP_GET_NEXT_KEY, attr)
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                return keys
            raise
        keys.append(following.raw)
        current = _buffer(following.raw)


# -- descriptions -------------------------------------------------------------------------------
def _info(fd, info):
    bpf(BPF_OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)))
    return info


def map_info(fd):
    info = _info(fd, BpfMapInfo())
    return {'type': MAP_TYPES.get(info.type, str(info.type)), 'type_id': info.type, 'id': info.id,
            'key_size': info.key_size, 'value_size': info.value_size, 'max_entries': info.max_entries,
            'flags': info.map_flags, 'name': info.name.decode()}


def pinned_map_info(path):
    """map_info() of the map pinned at `path`, or None when nothing is pinned there."""
    try:
        fd = obj_get(path)
    except OSError:
        return None
    try:
        return map_info(fd)
    finally:
        os.close(fd)


def prog_info(fd):
    info = _info(fd, BpfProgInfo())
    return {'type': info.type, 'id': info.id, 'tag': bytes(info.tag).hex(), 'name': info.name.decode(),
            'nr_map_ids': info.nr_map_ids, 'load_time_ns': info.load_time}


def program_info(prog_id):
    """id, name and tag of a loaded program (name and tag None when it is already gone)."""
    try:
        fd = prog_fd_by_id(prog_id)
    except OSError:
        return {'id': prog_id, 'name': None, 'tag': None}
    try:
        info = prog_info(fd)
    finally:
        os.close(fd)
    return {'id': info['id'], 'name': info['name'], 'tag': info['tag']}


def prog_map_ids(fd):
    """Ids of the maps a program uses."""
    count = prog_info(fd)['nr_map_ids']
    ids = (ctypes.c_uint32 * max(count, 1))()
    info = _info(fd, BpfProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids)))
    return list(ids)[:min(count, info.nr_map_ids)]


def program_map_fd(prog_id, wanted):
    """fd of the first map of program `prog_id` whose map_info() `wanted(info)` accepts, or None
    (the program is gone, or has no such map). The caller closes it."""
    try:
        prog_fd = prog_fd_by_id(prog_id)
    except OSError:
        return None
    try:
        map_ids = prog_map_ids(prog_fd)
    finally:
        os.close(prog_fd)
    for map_id in map_ids:
        try:
            fd = map_fd_by_id(map_id)
        except OSError:
            continue
        try:
            if wanted(map_info(fd)):
                return fd
        except OSError:
            pass
        os.close(fd)
    return None


def prog_query(target, attach_type, limit=64):
    """Ids of the programs attached to `target` (an ifindex for tcx) with `attach_type`."""
    ids = (ctypes.c_uint32 * limit)()
    attr = QueryAttr(target=target, attach_type=attach_type, prog_ids=ctypes.addressof(ids), prog_cnt=limit)
    bpf(BPF_PROG_QUERY, attr)
    return list(ids)[:min(attr.prog_cnt, limit)]


# -- programs -----------------------------------------------------------------------------------
def prog_load(prog_type, insns, license_text, name):
    """fd of a program loaded from raw instructions (8 bytes each, map fds already in place)."""
    code = _buffer(insns)
    lic = ctypes.create_string_buffer(license_text.encode())
    return bpf(BPF_PROG_LOAD, ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(code),
                                           license=ctypes.addressof(lic),
                                           prog_name=name.encode()[:BPF_OBJ_NAME_LEN - 1]))


def prog_test_run(prog_fd, data, repeat=1, ingress_ifindex=0, flags=0, batch_size=0, data_out_size=None):
    """BPF_PROG_RUN an XDP program on `data`: (retval, data_out bytes, duration ns per run).
    With BPF_F_TEST_XDP_LIVE_FRAMES the frames are transmitted and nothing comes back."""
    data_in = _buffer(data)
    live = bool(flags & BPF_F_TEST_XDP_LIVE_FRAMES)
    out_size = data_out_size if data_out_size is not None else len(data) + 256
    data_out = ctypes.create_string_buffer(out_size)
    attr = TestRunAttr(prog_fd=prog_fd, data_size_in=len(data), data_in=ctypes.addressof(data_in),
                       repeat=repeat, flags=flags, batch_size=batch_size)
    if not live:
        attr.data_size_out, attr.data_out = out_size, ctypes.addressof(data_out)
    ctx = None
    if ingress_ifindex or flags:
        ctx = XdpMd(0, len(data), 0, ingress_ifindex, 0, 0)
        attr.ctx_size_in, attr.ctx_in = ctypes.sizeof(XdpMd), ctypes.addressof(ctx)
    bpf(BPF_PROG_TEST_RUN, attr)
    return attr.retval, (b'' if live else data_out.raw[:attr.data_size_out]), attr.duration
