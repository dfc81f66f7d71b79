"""What only the tests and the benchmark need of bpf(2): the walks over every program and map id
on the machine (the leak checks). Kept out of the shipped plugins/ tree; built on its structures.
BPF_PROG_RUN (one frame through a program, or live frames out of an interface) is _bpf_sys's
prog_test_run: xdpkit probes the kernel with it."""

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

BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12


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
