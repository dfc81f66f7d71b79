"""_lease_clock: the kernel's jiffies placed on CLOCK_MONOTONIC from /proc/timer_list, HZ from two
such readings, and a lease's end converted (the router's jiffies lease clock). The real file of
the running kernel is read too; BPF_PROG_RUN checks the conversion against the kernel's own
jiffies in tests/bpf/test_router.py (each lease clock)."""

import time

import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease_clock

SAMPLE = """Timer List Version: v0.10
HRTIMER_MAX_CLOCK_BASES: 8
now at 35724306610399 nsecs

cpu: 0
 clock 0:
  .base:       pK-error
  .idle_jiffies   : 4303823295
  .last_jiffies   : 4303823312
jiffies: 4303823312

cpu: 1
jiffies: 4303823313
"""


def test_the_pair_is_the_time_line_and_the_first_jiffies_line():
    assert _lease_clock.parse_timer_list(SAMPLE.splitlines(True)) == (35724306610399, 4303823312)
    assert _lease_clock.parse_timer_list(['jiffies: 5\n']) is None, 'no time line before it: no pair'
    assert _lease_clock.parse_timer_list(['now at 1 nsecs\n']) is None


@pytest.mark.parametrize('measured, hz', [(100.4, 100), (96, 100), (247, 250), (262, 250), (298, 300),
                                          (309, 300), (1003, 1000), (960, 1000)])
def test_a_measured_rate_snaps_to_the_hz_kernels_are_built_with(measured, hz):
    assert _lease_clock.snap_hz(measured) == hz


@pytest.mark.parametrize('measured', [50, 175, 500, 2000, 0])
def test_a_rate_near_no_known_hz_is_not_trusted(measured):
    assert _lease_clock.snap_hz(measured) is None


def test_a_time_converts_by_the_pair_and_hz_rounding_down():
    pair = (10 * 10 ** 9, 5000)
    assert _lease_clock.jiffies_at(10 * 10 ** 9, 250, pair) == 5000
    assert _lease_clock.jiffies_at(11 * 10 ** 9 + 3999999, 250, pair) == 5250, 'a partial tick is not counted'
    assert _lease_clock.jiffies_at(11 * 10 ** 9 + 4000000, 250, pair) == 5251
    assert _lease_clock.jiffies_at(9 * 10 ** 9, 1000, pair) == 4000, 'before the pair too'
    assert _lease_clock.jiffies_at(0, 100, (10 ** 12, 5)) == 0, 'never below zero'
    assert _lease_clock.jiffies_at((1 << 64) - 1, 1000, pair) < 1 << 64, 'a lease that never ends fits'


def test_a_lease_end_is_zero_without_a_lease_a_clock_or_a_timer_list(tmp_path, monkeypatch):
    monkeypatch.setattr(_lease_clock, '_calibration', {})
    assert _lease_clock.lease_end_in_jiffies(0, 250) == 0
    assert _lease_clock.lease_end_in_jiffies(10 ** 12, 0) == 0
    assert _lease_clock.lease_end_in_jiffies(10 ** 12, 250, path=str(tmp_path / 'missing')) == 0
    (tmp_path / 'timer_list').write_text('Timer List Version: v0.10\n')
    assert _lease_clock.lease_end_in_jiffies(10 ** 12, 250, path=str(tmp_path / 'timer_list')) == 0


def test_a_lease_end_uses_a_calibration_read_lately(tmp_path, monkeypatch):
    monkeypatch.setattr(_lease_clock, '_calibration', {})
    path = tmp_path / 'timer_list'
    path.write_text('now at 1000000000 nsecs\njiffies: 700\n')
    assert _lease_clock.lease_end_in_jiffies(3 * 10 ** 9, 100, path=str(path)) == 900
    path.write_text('now at 1000000000 nsecs\njiffies: 800\n')
    assert _lease_clock.lease_end_in_jiffies(3 * 10 ** 9, 100, path=str(path)) == 900, 'kept for a while'
    monkeypatch.setattr(_lease_clock, 'CALIBRATION_SECONDS', 0)
    time.sleep(0.01)
    assert _lease_clock.lease_end_in_jiffies(3 * 10 ** 9, 100, path=str(path)) == 1000, 'then read anew'


def test_the_running_kernel_shows_a_pair_and_a_known_hz():
    first = _lease_clock.read_pair()
    assert first is not None, '/proc/timer_list must be readable (root)'
    assert abs(first[0] - time.monotonic_ns()) < 10 ** 9, 'its time line is CLOCK_MONOTONIC'
    hz = _lease_clock.measure_hz(0.2)
    assert hz in _lease_clock.KNOWN_HZ
    second = _lease_clock.read_pair()
    predicted = _lease_clock.jiffies_at(second[0], hz, first)
    assert abs(second[1] - predicted) <= 2, 'jiffies follow CLOCK_MONOTONIC at HZ'
