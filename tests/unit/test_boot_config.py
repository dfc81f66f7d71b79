"""The router unit's declarative file (_boot): what the router role writes becomes exactly the
xdp_program parameters the role passes, and a wrong file is named, not guessed at."""

import json
import os

import pytest
import yaml

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _boot
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import MissingDependency, XdpkitError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_defaults_fill_what_the_file_leaves_out():
    config = _boot.check_config({'interfaces': ['eth1', 'eth2']})
    assert config == {'interfaces': ['eth1', 'eth2'], 'namespace': '', 'mode': 'native', 'lookup': 'full',
                      'maps_dir': '/sys/fs/bpf/xdpkit/router', 'netfilter': 'refuse', 'traffic_control': 'refuse',
                      'force': False, 'exclusive': True, 'link_timeout': _boot.LINK_TIMEOUT}


def test_the_file_keys_are_the_router_roles_boot_config():
    with open(os.path.join(ROOT, 'roles', 'router', 'vars', 'main.yml')) as handle:
        written = yaml.safe_load(handle)['__router_boot_config']
    assert set(written) == set(_boot.CONFIG_KEYS) - {'namespace'}


@pytest.mark.parametrize('config, words', [
    ([], 'JSON object'),
    ({}, 'interfaces is required'),
    ({'interfaces': []}, 'interfaces is empty'),
    ({'interfaces': ['a'], 'mode': 'skb'}, 'mode must be one of native, generic'),
    ({'interfaces': ['a'], 'force': 'yes'}, 'force must be of type bool'),
    ({'interfaces': ['a'], 'link_timeout': True}, 'link_timeout must be of type number'),
    ({'interfaces': ['a'], 'receivers': []}, 'unknown keys receivers'),
])
def test_a_wrong_file_is_named(config, words):
    with pytest.raises(XdpkitError, match=words):
        _boot.check_config(config, '/etc/xdpkit/router.json')


def test_read_config_names_an_unreadable_file(tmp_path):
    with pytest.raises(XdpkitError, match='cannot read'):
        _boot.read_config(str(tmp_path / 'missing.json'))
    (tmp_path / 'bad.json').write_text('{')
    with pytest.raises(XdpkitError, match='bad.json: cannot read'):
        _boot.read_config(str(tmp_path / 'bad.json'))
    (tmp_path / 'ok.json').write_text(json.dumps({'interfaces': ['eth1'], 'lookup': 'direct'}))
    assert _boot.read_config(str(tmp_path / 'ok.json'))['lookup'] == 'direct'


def test_params_are_what_the_router_role_passes():
    config = _boot.check_config({'interfaces': ['eth1', 'eth2'], 'lookup': 'direct', 'netfilter': 'bypass',
                                 'force': True, 'exclusive': False, 'maps_dir': '/sys/fs/bpf/xdpkit/r'})
    present = _boot.manager_params(config, 'present', {'xdp_router.c': 'int x;'})
    assert present['defines'] == {'FIB_LOOKUP_DIRECT': 1}
    assert present['source_main'] == 'xdp_router.c' and present['source_files'] == {'xdp_router.c': 'int x;'}
    assert (present['netfilter'], present['traffic_control'], present['force'], present['exclusive']) == (
        'bypass', 'refuse', True, False)
    assert present['keeper'] == 'external' and present['namespace'] is None
    assert present['interfaces'] == ['eth1', 'eth2'] and present['maps_dir'] == '/sys/fs/bpf/xdpkit/r'
    absent = _boot.manager_params(config, 'absent')
    assert absent['state'] == 'absent' and absent['source_files'] is None and absent['source_main'] is None
    assert _boot.manager_params(_boot.check_config({'interfaces': ['a']}), 'present', {})['defines'] == {}


def test_the_boot_reads_the_collections_router_source():
    assert os.path.isfile(os.path.join(_boot.BPF_DIR, _boot.PROGRAM + '.c'))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_missing_interface_is_waited_for_then_named(monkeypatch, tmp_path):
    clock, calls, said = FakeClock(), [], []

    class Manager:
        def __init__(self, params):
            calls.append(params['state'])

        def run(self):
            if clock() < 1.0:
                raise MissingDependency("interface 'eth1' does not exist")
            return {'programs': []}

    monkeypatch.setattr(_boot, 'XdpProgramSetManager', Manager)
    monkeypatch.setattr(_boot, 'HostLock', lambda name: _NoLock())
    config = _boot.check_config({'interfaces': ['eth1'], 'link_timeout': 5})
    assert _boot.converge(config, 'present', said.append, clock=clock, sleep=clock.sleep) == {'programs': []}
    assert len(calls) > 1 and said == ["waiting up to 5 s: interface 'eth1' does not exist"]
    clock.now, calls[:] = 0.0, []
    config['link_timeout'] = 0.5
    with pytest.raises(MissingDependency, match='eth1'):
        _boot.converge(config, 'present', said.append, clock=clock, sleep=clock.sleep)
    # Detaching never waits: a link that is gone has nothing attached.
    clock.now, calls[:] = 0.0, []
    with pytest.raises(MissingDependency):
        _boot.converge(config, 'absent', said.append, clock=clock, sleep=clock.sleep)
    assert calls == ['absent']


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
