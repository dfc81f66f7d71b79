# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] bpffs and the pins under it: the mount, where an instance pins its maps
(PIN_ROOT/NAMESPACE@INTERFACE, shared maps in a maps_dir), the shared DEVMAP_HASH, removing pins,
and whether a loaded program still uses the maps pinned for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import re
import shutil

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, libc
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import current_netns_name

BPFFS = '/sys/fs/bpf'
PIN_ROOT = BPFFS + '/xdpkit'
# Instructions bcc compiled, kept for the next load of the same source (_compile).
COMPILED_DIR = '/run/xdpkit/compiled'
BPF_FS_MAGIC = 0xCAFE4A11
_PIN_PATH_RE = re.compile(r'^/sys/fs/bpf(/[A-Za-z0-9_.@+-]+)+$')


def check_pin_dir(path, what):
    if not isinstance(path, str) or not _PIN_PATH_RE.match(path) or '/../' in path + '/' or '/./' in path + '/':
        raise XdpkitError(
            "%s %r must be a plain path under /sys/fs/bpf (letters, digits, '_', '.', '@', '+', '-')" % (what, path))
    return path.rstrip('/')


def default_pin_dir(namespace, interface):
    """PIN_ROOT/NAMESPACE@INTERFACE; without a namespace, the one the module runs in (empty
    for the host's), so that namespaces entered by the netns connection keep their own pins."""
    if not namespace:
        namespace = current_netns_name()
    return '%s/%s@%s' % (PIN_ROOT, namespace or '', interface)


def ensure_bpffs():
    """Mount bpffs on /sys/fs/bpf if it is not (systemd does it; minimal hosts may not)."""
    if _is_bpffs(BPFFS):
        return False
    os.makedirs(BPFFS, exist_ok=True)
    if libc().mount(b'bpf', BPFFS.encode(), b'bpf', 0, None) != 0:
        err = ctypes.get_errno()
        raise XdpkitError('bpffs is not mounted on %s and mounting it failed: %s' % (BPFFS, os.strerror(err)))
    return True


def _is_bpffs(path):
    class Statfs(ctypes.Structure):
        _fields_ = [('f_type', ctypes.c_long), ('rest', ctypes.c_byte * 120)]

    buf = Statfs()
    if libc().statfs(path.encode(), ctypes.byref(buf)) != 0:
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


def remove_namespace_pins(name):
    """The namespace's programs and links died with it: unpin the maps pinned under its name
    (PIN_ROOT/NAME@INTERFACE, and NAME@ROLE map dirs of the roles), which would otherwise
    stay as orphans."""
    try:
        entries = os.listdir(PIN_ROOT)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.startswith(name + '@'):
            remove_pins(os.path.join(PIN_ROOT, entry))
    # The last lab gone leaves no empty xdpkit directory behind, and no kept compiled programs
    # (xdp_program's absent does the same).
    release_pin_root()


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
    used_names = None
    for path in paths:
        try:
            map_fd = sysbpf.obj_get(path)
        except OSError:
            return False
        try:
            info = sysbpf.map_info(map_fd)
        finally:
            os.close(map_fd)
        if info['id'] in used:
            continue
        # A map the code never reads (user space fills and reads it) is not among the program's maps;
        # an orphan is: the program holds another map of that name.
        if used_names is None:
            used_names = _map_names(used)
        if info['name'] in used_names:
            return False
    return True


def _map_names(map_ids):
    names = set()
    for map_id in map_ids:
        try:
            fd = sysbpf.map_fd_by_id(map_id)
        except OSError:
            continue
        try:
            names.add(sysbpf.map_info(fd)['name'])
        finally:
            os.close(fd)
    return names
