# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] How xdpkit knows a program is its own, and whether it is the one wanted: a digest of what
was compiled and the program's id, kept in a one-entry array map pinned beside the instance
(xdpkit_meta), and a per-boot record of the ids xdpkit attached (/run/xdpkit/programs), which
survives a lost bpffs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import struct

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_pins import PIN_ROOT, pinned_files

META_MAP = 'xdpkit_meta'
# digest(32) + prog_id(4) + mode(4) + maps_dir(256, NUL padded)
META_FORMAT = '=32sII256s'
META_SIZE = struct.calcsize(META_FORMAT)
MODES = {'native': 1, 'generic': 2}


def program_digest(text, cflags, function, mode):
    payload = json.dumps({'text': text, 'cflags': cflags, 'function': function, 'mode': mode}, sort_keys=True)
    return hashlib.sha256(payload.encode()).digest()


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


# Ids of the programs xdpkit attached, one empty file each. The pinned xdpkit_meta says the
# same while its pin lives; this survives a lost bpffs (tmpfs /run is per boot, like program
# ids), so a program of ours is never mistaken for another tool's.
OWNED_DIR = '/run/xdpkit/programs'


def is_owned(prog_id):
    return os.path.exists(os.path.join(OWNED_DIR, str(prog_id)))


def record_owned(prog_id):
    os.makedirs(OWNED_DIR, exist_ok=True)
    for name in os.listdir(OWNED_DIR):
        # Forget programs the kernel no longer has (detached and freed, or replaced).
        try:
            os.close(sysbpf.prog_fd_by_id(int(name)))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) or exc.errno == errno.ENOENT:
                forget_owned(name)
    with open(os.path.join(OWNED_DIR, str(prog_id)), 'w'):
        pass


def forget_owned(prog_id):
    try:
        os.unlink(os.path.join(OWNED_DIR, str(prog_id)))
    except FileNotFoundError:
        pass
