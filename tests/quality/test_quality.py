"""Linters and Ansible's own checks, run as part of the one test command."""

import os
import re
import shutil
import subprocess

import pytest
from conftest import ROOT, VENV_BIN, ansible_env

MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                 if f.endswith('.py') and not f.startswith('_'))


def tracked_files():
    out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.isfile(os.path.join(ROOT, f))]


def install_offline_get_pip():
    """ansible-test downloads get-pip.py for each sanity venv; put an offline stand-in in its cache."""
    import ansible_test
    source = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
    with open(source) as handle:
        version = re.search(r"pip='([0-9.]+)'", handle.read()).group(1)
    cache = os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % version.replace('.', '_'))
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, 'tests', 'quality', 'get_pip_offline.py'), cache)


def test_ansible_test_sanity_passes(tmp_path):
    # ansible-test insists on running from .../ansible_collections/NAMESPACE/NAME.
    tree = tmp_path / 'ansible_collections' / 'xdpkit' / 'forwarding'
    for rel in tracked_files():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), tree / rel)
    subprocess.run(['git', 'init', '-q'], cwd=tree, check=True)
    subprocess.run(['git', 'add', '-A'], cwd=tree, check=True)
    install_offline_get_pip()
    proc = subprocess.run([os.path.join(VENV_BIN, 'ansible-test'), 'sanity', '--python', '3.11', '--color', 'no'],
                          cwd=tree, env=ansible_env(), capture_output=True, text=True, check=False, timeout=1800)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if 'is ignored: it is neither' not in line]
    assert proc.returncode == 0, '\n'.join(lines[-80:])
    assert 'Running sanity test "validate-modules"' in proc.stdout + proc.stderr


def test_ansible_lint_production_profile_passes():
    proc = subprocess.run([os.path.join(VENV_BIN, 'ansible-lint'), '--nocolor'], cwd=ROOT, env=ansible_env(),
                          capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_ruff_finds_nothing():
    proc = subprocess.run([os.path.join(VENV_BIN, 'ruff'), 'check', '.'], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize('module', MODULES)
def test_ansible_doc_renders_the_module(module):
    proc = subprocess.run([os.path.join(VENV_BIN, 'ansible-doc'), 'xdpkit.forwarding.' + module], cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'EXAMPLES' in proc.stdout and 'RETURN VALUES' in proc.stdout and 'check_mode' in proc.stdout
