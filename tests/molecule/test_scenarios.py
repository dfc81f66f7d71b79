"""Each molecule scenario as one test: cleanup, syntax, converge, idempotence, verify, cleanup.

Names are prefixed with the test's unique prefix (XDPKIT_TEST_PREFIX), and ANSIBLE_HOME
points at a private directory in which the collection is a link to this checkout, so
molecule neither copies the collection into ~/.ansible nor leaves its state there.
"""

import os
import subprocess

import pytest
from conftest import ROOT, VENV_BIN

SCENARIOS = sorted(d for d in os.listdir(os.path.join(ROOT, 'molecule'))
                   if os.path.isfile(os.path.join(ROOT, 'molecule', d, 'molecule.yml')))


@pytest.mark.parametrize('scenario', SCENARIOS)
def test_molecule_scenario(scenario, cleanup, tmp_path):
    home = tmp_path / 'ansible-home'
    link = home / 'collections' / 'ansible_collections' / 'xdpkit' / 'forwarding'
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT)
    env = dict(os.environ)
    env.update(ANSIBLE_HOME=str(home), XDPKIT_TEST_PREFIX=cleanup.prefix, PY_COLORS='0', ANSIBLE_NOCOLOR='1',
               NO_COLOR='1', PATH=VENV_BIN + os.pathsep + env.get('PATH', ''))
    for key in ('ANSIBLE_CONFIG', 'ANSIBLE_STDOUT_CALLBACK', 'ANSIBLE_CALLBACK_PLUGINS'):
        env.pop(key, None)
    proc = subprocess.run([os.path.join(VENV_BIN, 'molecule'), 'test', '-s', scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    for step in ('converge', 'idempotence', 'verify', 'cleanup'):
        assert '%s: Executed: Successful' % step in output, (step, output[-3000:])


def test_every_scenario_has_converge_and_verify():
    for scenario in SCENARIOS:
        for playbook in ('converge.yml', 'verify.yml'):
            assert os.path.isfile(os.path.join(ROOT, 'molecule', scenario, playbook)), (scenario, playbook)
    assert set(SCENARIOS) == {'default', 'hardcoded', 'map', 'fib', 'fleet', 'ospf'}
