# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] Whether a router may trust what it caches about its ports, read
without changing anything: the lease of each program instance's port entry (`vouched_until`) and the keeper
that renews the leases (its record and lock under STATE_DIR).

_ports writes the entries and _keeper is the keeper; both take the entry layout and the
record from here, so that the read-only xdp_stats module, the Prometheus metrics and
tools/xdp_stats can say whether a router runs on what the kernel says or hands its frames to
the kernel, without bringing the code that attaches and writes along.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import json
import os
import struct
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf

# struct xdpkit_port in bpf/xdpkit.h: mac[6], rp_filter, accept_local, vouched_until,
# vouched_until_jiffies
PORT_FORMAT = '=6sBBQQ'
PORT_SIZE = struct.calcsize(PORT_FORMAT)
# The array of one a program instance holds its port's entry in (XDPKIT_PORT_ENTRY, key 0):
# its pin in the instance's pin_dir and its map name (_bpf_source.PORT_ENTRY_MAP, the same).
PORT_ENTRY = 'port_entry'
PORT_KEY = struct.pack('=I', 0)

STATE_DIR = '/run/xdpkit'
LOCK_FILE = os.path.join(STATE_DIR, 'keeper.lock')
PID_FILE = os.path.join(STATE_DIR, 'keeper.json')
LOG_FILE = os.path.join(STATE_DIR, 'keeper.log')
# The code that decides what a keeper writes: its version is a digest of these files.
KEEPER_SOURCES = ('_keeper.py', '_ports.py', '_lease.py', '_local_sources.py', '_lease_clock.py')
SERVICE = 'xdpkit-keeper'


def decode(raw):
    """The entry in `raw`, or None: no entry, or one nobody wrote. An array's entry is there from
    the start, all zeros, and every writer sets a lease: an entry without one (vouched_until 0)
    is one nobody wrote, or one cleared, and the router takes it for an unknown port too."""
    if raw is None:
        return None
    mac, rp_filter, accept_local, vouched_until, vouched_until_jiffies = struct.unpack(PORT_FORMAT, raw[:PORT_SIZE])
    if not vouched_until:
        return None
    return {'mac': ':'.join('%02x' % b for b in mac), 'rp_filter': rp_filter, 'accept_local': accept_local,
            'vouched_until': vouched_until, 'vouched_until_jiffies': vouched_until_jiffies}


# -- the keeper's record ------------------------------------------------------------------------
def running():
    """The keeper this host runs ({'pid', 'version', 'started'}), or None."""
    try:
        with open(PID_FILE) as handle:
            record = json.load(handle)
        os.kill(record['pid'], 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with open(LOCK_FILE) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return record
    except OSError:
        return None
    # Nobody holds the lock: that pid is some other process now.
    return None


def code_version():
    """The version a keeper started from this collection has (a digest of KEEPER_SOURCES), or None
    where that code is not at hand (a module Ansible shipped without it)."""
    digest = hashlib.sha256()
    here = os.path.dirname(__file__)
    loader = globals().get('__loader__')
    for name in KEEPER_SOURCES:
        try:
            # Inside a module's AnsiballZ zip the sources are there through the loader only.
            digest.update(loader.get_data(os.path.join(here, name)))
        except (OSError, AttributeError):
            return None
    return digest.hexdigest()[:16]


def keeper_state():
    """{'running', 'pid', 'version', 'started', 'current'}: the host's keeper; `current` says
    whether it is this collection's version (None when that cannot be told from here)."""
    record = running()
    today = code_version()
    if not record:
        return {'running': False, 'pid': None, 'version': None, 'started': None, 'current': None}
    return {'running': True, 'pid': record.get('pid'), 'version': record.get('version'),
            'started': record.get('started'),
            'current': None if today is None else record.get('version') == today}


# -- a program's port entry ---------------------------------------------------------------------
def is_port_entry(info):
    """Whether a map (its map_info()) is a port entry: an array of one struct xdpkit_port of
    today's layout, named PORT_ENTRY. (The name tells it from local_state, an array of one whose
    value has the same size.)"""
    return info['type'] == 'array' and info['key_size'] == 4 and info['value_size'] == PORT_SIZE and \
        info['max_entries'] == 1 and info['name'] == PORT_ENTRY


def port_entry_fd(prog_id):
    """fd of the program's port entry, or None: the program caches nothing about its port."""
    return sysbpf.program_map_fd(prog_id, is_port_entry)


def lease_of(entry, now_ns=None):
    """What the router makes of an entry (None: the port has none) at `now_ns` (CLOCK_MONOTONIC,
    bpf_ktime_get_ns()'s clock): {'vouched', 'lease_seconds' (left; negative: ran out that long
    ago; None: never vouched for), 'rp_filter', 'accept_local', 'mac'}."""
    if entry is None:
        return {'vouched': False, 'lease_seconds': None, 'rp_filter': None, 'accept_local': None, 'mac': None}
    now_ns = time.monotonic_ns() if now_ns is None else now_ns
    until = entry['vouched_until']
    return {'vouched': now_ns < until,
            'lease_seconds': round((until - now_ns) / 1e9, 3) if until else None,
            'rp_filter': entry['rp_filter'], 'accept_local': entry['accept_local'], 'mac': entry['mac']}


def port_state(prog_id):
    """lease_of() the port entry of program `prog_id` (the entry of the port it is attached to),
    or None when the program has no port entry."""
    fd = port_entry_fd(prog_id)
    if fd is None:
        return None
    try:
        raw = sysbpf.map_lookup(fd, PORT_KEY, PORT_SIZE)
    finally:
        os.close(fd)
    return lease_of(decode(raw))


# -- saying so ------------------------------------------------------------------------------------
def describe_keeper(keeper):
    if not keeper['running']:
        return 'no keeper runs'
    text = 'keeper pid %s' % keeper['pid']
    if keeper['current'] is False:
        text += ' (version %s, not this collection\'s)' % keeper['version']
    return text


def describe_port(port, keeper):
    """One line on a port's lease: vouched (and for how long yet), or what the router does instead."""
    if port['vouched']:
        return 'vouched (lease %.1f s left), %s' % (port['lease_seconds'], describe_keeper(keeper))
    if port['lease_seconds'] is None:
        since = 'never vouched for'
    else:
        since = 'NOT VOUCHED for %.1f s' % -port['lease_seconds']
    return '%s - every frame goes to the kernel; %s' % (since, describe_keeper(keeper))


def not_vouched_warning(where, port, keeper):
    """Why a port's frames all go to the kernel, and what to do about it."""
    if port['lease_seconds'] is None:
        since = 'no keeper ever vouched for its settings'
    else:
        since = 'no keeper vouched for its settings (MAC, rp_filter, accept_local) since %.1f s' % (
            -port['lease_seconds'])
    if not keeper['running']:
        why = 'no keeper runs on this host'
        todo = ('start the keeper: run xdpkit.forwarding.xdp_program for this router (keeper: start), or start '
                'the %s service' % SERVICE)
    elif keeper['current'] is False:
        why = 'the keeper that runs (pid %s) is version %s, not this collection\'s' % (keeper['pid'], keeper['version'])
        todo = ('replace it: run xdpkit.forwarding.xdp_program for this router (keeper: start), or restart the '
                '%s service after upgrading the collection' % SERVICE)
    else:
        why = 'the keeper (pid %s) does not renew this port\'s lease' % keeper['pid']
        todo = 'see %s (or the %s service\'s journal) for why' % (LOG_FILE, SERVICE)
    return ('%s: the router hands every frame to the kernel (slower, never wrong): %s; %s. To accelerate '
            'again, %s.' % (where, since, why, todo))
