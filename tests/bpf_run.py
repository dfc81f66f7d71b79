"""What only the tests and the benchmark need of bpf(2): BPF_PROG_RUN (one frame through a
program, or live frames out of an interface) and the walks over every program and map id on the
machine (the leak checks). Kept out of the shipped plugins/ tree; built on its structures."""

import ctypes
import errno
import os

from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_sys import (
    BpfError,
    GetIdAttr,
    bpf,
    map_info,
    obj_get,
    prog_fd_by_id,
    prog_map_ids,
)

BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1


class XdpMd(ctypes.Structure):
    _fields_ = [('data', ctypes.c_uint32), ('data_end', ctypes.c_uint32), ('data_meta', ctypes.c_uint32),
                ('ingress_ifindex', ctypes.c_uint32), ('rx_queue_index', ctypes.c_uint32),
                ('egress_ifindex', ctypes.c_uint32)]


class TestRunAttr(ctypes.Structure):
    """union bpf_attr for BPF_PROG_TEST_RUN."""
    _fields_ = [('prog_fd', ctypes.c_uint32), ('retval', ctypes.c_uint32), ('data_size_in', ctypes.c_uint32),
                ('data_size_out', ctypes.c_uint32), ('data_in', ctypes.c_uint64), ('data_out', ctypes.c_uint64),
                ('repeat', ctypes.c_uint32), ('duration', ctypes.c_uint32), ('ctx_size_in', ctypes.c_uint32),
                ('ctx_size_out', ctypes.c_uint32), ('ctx_in', ctypes.c_uint64), ('ctx_out', ctypes.c_uint64),
                ('flags', ctypes.c_uint32), ('cpu', ctypes.c_uint32), ('batch_size', ctypes.c_uint32)]


def prog_test_run(prog_fd, data, repeat=1, ingress_ifindex=0, flags=0, batch_size=0, data_out_size=None):
    """BPF_PROG_RUN an XDP program on `data`: (retval, data_out bytes, duration ns per run)."""
    data_in = ctypes.create_string_buffer(bytes(data), len(data))
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


def _ids(cmd):
    ids, current = [], 0
    while True:
        attr = GetIdAttr(id=current)
        try:
            bpf(cmd, attr)
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                return ids
            raise
        current = attr.next_id
        ids.append(current)


def prog_ids():
    """Ids of every BPF program loaded on the machine."""
    return _ids(BPF_PROG_GET_NEXT_ID)


def map_ids():
    """Ids of every BPF map on the machine."""
    return _ids(BPF_MAP_GET_NEXT_ID)


def program_map_ids(prog_id):
    """Ids of the maps the loaded program `prog_id` uses."""
    fd = prog_fd_by_id(prog_id)
    try:
        return set(prog_map_ids(fd))
    finally:
        os.close(fd)


def pinned_map_id(path):
    """Id of the map pinned at `path`."""
    fd = obj_get(path)
    try:
        return map_info(fd)['id']
    finally:
        os.close(fd)
