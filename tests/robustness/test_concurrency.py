"""Two playbooks at once on one host: different scenarios both converge; the same scenario
twice never ends broken, because every changing module holds the host lock."""

import json
import os
import subprocess
import threading

import pytest
from conftest import ROOT, VENV_BIN, ansible_env, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _module
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError


def start(extra):
    return subprocess.Popen([os.path.join(VENV_BIN, 'ansible-playbook'), 'site.yml', '-e', json.dumps(extra)],
                            cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def prefix(cleanup):
    yield cleanup.prefix
    run_playbook('site.yml', {'xdpkit_scenarios': ['map', 'fib'], 'xdpkit_name_prefix': cleanup.prefix,
                              'state': 'absent'})


def test_two_playbooks_converge_different_scenarios_at_once(prefix):
    runs = [start({'xdpkit_scenarios': [name], 'xdpkit_name_prefix': prefix}) for name in ('map', 'fib')]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-4000:]


def test_two_playbooks_converging_the_same_scenario_leave_it_working(prefix):
    extra = {'xdpkit_scenarios': ['fib'], 'xdpkit_name_prefix': prefix}
    runs = [start(extra) for _i in range(2)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    # Each module call runs under the host lock, so the two interleave task by task and
    # both converge; a third run then changes nothing and still forwards by XDP.
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-4000:]
    rc, out, err = run_playbook('site.yml', extra)
    assert rc == 0, out[-4000:] + err[-2000:]
    assert 'changed=0' in out, out[-3000:]


def test_a_run_that_cannot_get_the_lock_says_who_holds_it():
    holder = _module.HostLock('Holder')
    released = threading.Event()
    with holder:
        waiter = _module.HostLock('Waiter', timeout=0.3)
        with pytest.raises(XdpkitError, match=r'another xdpkit run holds /run/xdpkit/lock \(pid %d, module Holder\)'
                           % os.getpid()):
            with waiter:
                released.set()
    assert not released.is_set()
    with _module.HostLock('After', timeout=1):
        pass
