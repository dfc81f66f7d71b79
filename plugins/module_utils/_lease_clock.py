# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 1, kernel interfaces] The kernel's jiffies as user space can tell them, so that a lease
written in CLOCK_MONOTONIC ns can also be given in jiffies, the clock a router reads for under a
nanosecond a packet (bpf_jiffies64(); XDPKIT_JIFFIES_CLOCK in bpf/xdpkit.h).

No system call returns jiffies. /proc/timer_list shows, in one read, the kernel's
CLOCK_MONOTONIC ("now at N nsecs") and its jiffies ("jiffies: J"): one such pair places jiffies
on CLOCK_MONOTONIC for the whole boot, because the kernel advances jiffies from that very clock
(tick_do_update_jiffies64(): one jiffy per TICK_NSEC of it). Two pairs some way apart give HZ,
a constant of the kernel's build, which xdpkit measures once per kernel release with its other
kernel probes (_compile.kernel_features()).

A conversion can be a tick late (the jiffies line is printed a moment after the time line); the
router ends every lease early by more than that (XDPKIT_LEASE_SLACK_TICKS).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

TIMER_LIST = '/proc/timer_list'
# The HZ values kernels are built with; a measurement near none of them is not trusted.
KNOWN_HZ = (100, 250, 300, 1000)
HZ_TOLERANCE = 0.08
# A pair read over a longer time than this is read again: its two lines may lie ticks apart.
PAIR_READ_LIMIT_NS = 1000000
# Jiffies and CLOCK_MONOTONIC run at the same rate, so a pair stays good for the boot; read anew
# this often all the same, which bounds the drift of a rounded tick length (HZ=300).
CALIBRATION_SECONDS = 60
JIFFIES_MAX = (1 << 64) - 1

_calibration = {}


def parse_timer_list(lines):
    """(monotonic ns, jiffies) from the text of /proc/timer_list (its first jiffies line), or None."""
    now = None
    for line in lines:
        if line.startswith('now at '):
            now = int(line.split()[2])
        elif line.startswith('jiffies:') and now is not None:
            return now, int(line.split()[1])
    return None


def read_pair(path=TIMER_LIST, attempts=5):
    """(monotonic ns, jiffies) of the running kernel, read within PAIR_READ_LIMIT_NS; None when
    /proc/timer_list cannot be read or never answers that fast."""
    for _attempt in range(attempts):
        started = time.monotonic_ns()
        try:
            with open(path) as handle:
                pair = parse_timer_list(handle)
        except (OSError, ValueError, IndexError):
            return None
        if pair is None:
            return None
        if time.monotonic_ns() - started <= PAIR_READ_LIMIT_NS:
            return pair
    return None


def snap_hz(measured):
    """The known HZ `measured` (ticks per second) is, or None."""
    for hz in KNOWN_HZ:
        if abs(measured - hz) <= hz * HZ_TOLERANCE:
            return hz
    return None


def measure_hz(seconds=0.3, path=TIMER_LIST):
    """The running kernel's HZ, from two pairs `seconds` apart; None when they cannot be read or
    say no known HZ."""
    first = read_pair(path)
    if first is None:
        return None
    time.sleep(seconds)
    second = read_pair(path)
    if second is None or second[0] <= first[0]:
        return None
    return snap_hz((second[1] - first[1]) * 1e9 / (second[0] - first[0]))


def jiffies_at(monotonic_ns, hz, pair):
    """The kernel's jiffies at CLOCK_MONOTONIC time `monotonic_ns`, by the pair (monotonic ns,
    jiffies) read at one moment of this boot. Times past what 64 bits hold stay at the top (a
    lease that never ends)."""
    now_ns, jiffies = pair
    value = jiffies + (monotonic_ns - now_ns) * hz // 1000000000
    return max(0, min(value, JIFFIES_MAX))


def calibration(path=TIMER_LIST):
    """A pair of this boot, read at most CALIBRATION_SECONDS ago, or None."""
    cached = _calibration.get(path)
    now = time.monotonic()
    if cached is None or now - cached[0] > CALIBRATION_SECONDS:
        pair = read_pair(path)
        if pair is None:
            return None
        cached = _calibration[path] = (now, pair)
    return cached[1]


def lease_end_in_jiffies(until_ns, hz, path=TIMER_LIST):
    """The end of a lease (CLOCK_MONOTONIC ns; 0: no lease) in jiffies; 0 (no lease) when the kernel's
    jiffies cannot be told, which makes a router on the jiffies clock hand its frames over."""
    if not until_ns or not hz:
        return 0
    pair = calibration(path)
    if pair is None:
        return 0
    return jiffies_at(until_ns, hz, pair)
