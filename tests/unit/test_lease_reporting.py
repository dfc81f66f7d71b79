"""What the readers make of a port entry's lease, and how they say it (pure functions)."""

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease, _metrics, _ports

UP = {'running': True, 'pid': 1234, 'version': 'abc', 'started': 1700000000.5, 'current': True}
DOWN = {'running': False, 'pid': None, 'version': None, 'started': None, 'current': None}
ENTRY = {'mac': '02:00:00:00:00:01', 'rp_filter': 1, 'accept_local': 0}


def test_the_lease_runs_until_vouched_until_on_the_programs_clock():
    now = 10 ** 12
    assert _lease.lease_of(dict(ENTRY, vouched_until=now + 1_300_000_000), now) == dict(
        ENTRY, vouched=True, lease_seconds=1.3)
    assert _lease.lease_of(dict(ENTRY, vouched_until=now - 12_400_000_000), now) == dict(
        ENTRY, vouched=False, lease_seconds=-12.4)
    # bpf_ktime_get_ns() < vouched_until: the last nanosecond is not vouched for.
    assert not _lease.lease_of(dict(ENTRY, vouched_until=now), now)['vouched']
    assert _lease.lease_of(dict(ENTRY, vouched_until=0), now)['lease_seconds'] is None
    assert _lease.lease_of(None) == {'vouched': False, 'lease_seconds': None, 'rp_filter': None,
                                     'accept_local': None, 'mac': None}


def test_the_entry_layout_is_the_one_the_port_entry_writer_writes():
    entry = dict(ENTRY, vouched_until=123456789)
    jiffies = _ports.lease_end_in_jiffies(123456789)
    assert _lease.decode(_ports.encode(entry)) == dict(entry, vouched_until_jiffies=jiffies)
    assert _ports.PORT_SIZE == _lease.PORT_SIZE == 24


def test_the_port_line_says_vouched_or_where_the_frames_go():
    vouched = dict(ENTRY, vouched=True, lease_seconds=1.31)
    assert _lease.describe_port(vouched, UP) == 'vouched (lease 1.3 s left), keeper pid 1234'
    stale = dict(ENTRY, vouched=False, lease_seconds=-12.44)
    assert _lease.describe_port(stale, DOWN) == \
        'NOT VOUCHED for 12.4 s - every frame goes to the kernel; no keeper runs'
    old = dict(UP, current=False)
    assert 'keeper pid 1234 (version abc, not this collection\'s)' in _lease.describe_port(stale, old)
    warning = _lease.not_vouched_warning("port 'r0' in the host namespace", stale, old)
    assert 'since 12.4 s' in warning and 'version abc' in warning and 'keeper: start' in warning, warning


def sample(port):
    counters = {action: {'packets': 0, 'bytes': 0} for action in _metrics.ACTIONS}
    return {'namespace': 'lab', 'interface': 'r0', 'prog_id': 7, 'program': 'xdp_router', 'counters': counters,
            'port': port}


def test_the_metrics_carry_the_lease_and_the_keeper_only_where_a_router_runs():
    plain = _metrics.exposition([sample(None)], UP)
    assert 'xdpkit_port_' not in plain and 'xdpkit_keeper_' not in plain
    text = _metrics.exposition([sample(dict(ENTRY, vouched=False, lease_seconds=-2.5))], UP)
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[s.name] = (family.type, s.labels, s.value)
    labels = {'namespace': 'lab', 'interface': 'r0', 'program': 'xdp_router', 'prog_id': '7'}
    assert found['xdpkit_port_vouched'] == ('gauge', labels, 0)
    assert found['xdpkit_port_lease_remaining_seconds'] == ('gauge', labels, -2.5)
    assert found['xdpkit_keeper_up'] == ('gauge', {}, 1)
    assert found['xdpkit_keeper_info'] == ('gauge', {'version': 'abc'}, 1)
    assert found['xdpkit_keeper_start_time_seconds'] == ('gauge', {}, 1700000000.5)
    down = _metrics.exposition([sample(dict(ENTRY, vouched=False, lease_seconds=None))], DOWN)
    assert 'xdpkit_keeper_up 0' in down.splitlines() and 'xdpkit_keeper_info' not in down
    assert 'xdpkit_port_lease_remaining_seconds{' not in down, 'never vouched for: no lease to measure'
