"""The release artifact: built from a checkout in any state it carries the collection's content
only, and the copy `ansible-galaxy collection install` makes works on its own (outside the
checkout, without the checkout's link): a scenario end to end, ansible-doc for every plugin and
role, `collection verify --offline`, the EE metadata ansible-builder reads, the changelog."""

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request

import pytest
from conftest import ROOT, VENV_BIN, free_port

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns

CONTENT = {'plugins', 'roles', 'playbooks', 'site.yml', 'labs', 'bpf', 'docs', 'meta', 'README.md', 'LICENSES',
           'CHANGELOG.rst', 'changelogs', 'bindep.txt', 'MANIFEST.json', 'FILES.json', 'tools'}
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, 'plugins', 'modules')) if f.endswith('.py'))
ROLES = sorted(os.listdir(os.path.join(ROOT, 'roles')))
# galaxy.yml gives the BPF sources GPL-2.0-only. Their first lines say it the kernel's way,
# GPL-2.0: SPDX's older identifier for the same licence. GPL-2.0-or-later and GPL-2.0+ are
# other licences, so the identifier is compared whole, never as a prefix.
BPF_LICENCE_IDS = {'GPL-2.0-only', 'GPL-2.0'}
SPDX_LINE = re.compile(r'^(?:/\*|//)\s*SPDX-License-Identifier:\s*(?P<expression>.*?)\s*(?:\*/)?$')


def spdx_expression(first_line):
    """The licence expression of a C source's `SPDX-License-Identifier` first line, or None."""
    match = SPDX_LINE.match(first_line.rstrip('\n'))
    return match.group('expression') if match else None


def outside_env(collections_path):
    """Ansible as a user of the installed collection has it: no checkout config, no checkout link."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
               ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='false',
               PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''))
    return env


def run(argv, cwd, env, timeout=600):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    assert proc.returncode == 0, '%s\n%s\n%s' % (' '.join(argv), proc.stdout[-4000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    """The tarball built from a copy of the checkout that a test run and an editor have left
    things in (caches, byte code, results, a generated inventory, editor files)."""
    work = tmp_path_factory.mktemp('release')
    copy = work / 'checkout'
    shutil.copytree(ROOT, copy, symlinks=True,
                    ignore=shutil.ignore_patterns('.venv', '.collections', '.ansible', '.git', 'output'))
    for junk in ('plugins/modules/__pycache__/netns.cpython-311.pyc', '.pytest_cache/v/cache/lastfailed',
                 'benchmarks/results/benchmark.json', 'labs/chain/inventory.yml', 'roles/router/.swp',
                 'tests/output/junit.xml', 'scripts/run.log', 'xdpkit-forwarding-0.0.1.tar.gz',
                 'molecule/default/.cache/x'):
        (copy / junk).parent.mkdir(parents=True, exist_ok=True)
        (copy / junk).write_text('junk')
    run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(work)], copy,
        outside_env(work / 'none'))
    [tarball] = work.glob('xdpkit-forwarding-*.tar.gz')
    return tarball


def test_the_artifact_carries_the_content_only_with_its_licences(artifact):
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile('MANIFEST.json'))
        bpf_first_lines = {member.name: tar.extractfile(member).readline().decode() for member in tar.getmembers()
                           if member.isfile() and member.name.startswith('bpf/')}
    assert {n.split('/')[0] for n in names} <= CONTENT, sorted({n.split('/')[0] for n in names} - CONTENT)
    assert not [n for n in names if '__pycache__' in n or n.endswith(('.pyc', '.log', '.tar.gz'))
                or any(part.startswith('.') for part in n.split('/'))]
    for needed in ('plugins/modules/xdp_program.py', 'bpf/xdp_router.c', 'bpf/xdpkit.h', 'roles/router/tasks/main.yml',
                   'LICENSES/GPL-3.0-or-later.txt', 'LICENSES/GPL-2.0-only.txt', 'CHANGELOG.rst', 'README.md',
                   'meta/runtime.yml', 'meta/execution-environment.yml', 'bindep.txt',
                   # The live CLI and the exporter that the xdp_stats module's documentation points at.
                   'tools/xdp_stats', 'tools/xdp_stats.py', 'tools/xdpkit_exporter',
                   'plugins/module_utils/_exporter.py', 'roles/exporter/files/xdpkit-dashboard.json'):
        assert needed in names, needed
    info = manifest['collection_info']
    assert sorted(info['license']) == ['GPL-2.0-only', 'GPL-3.0-or-later']
    # The BPF programs' own licence lines, as shipped, agree with galaxy.yml.
    assert sorted(bpf_first_lines) == sorted(os.path.relpath(os.path.join(top, name), ROOT)
                                             for top, _dirs, files in os.walk(os.path.join(ROOT, 'bpf'))
                                             for name in files if not name.startswith('.'))
    for name, first_line in bpf_first_lines.items():
        assert spdx_expression(first_line) in BPF_LICENCE_IDS, (name, first_line.strip())


def test_the_installed_copy_works_outside_the_checkout(artifact, tmp_path, cleanup):
    collections = tmp_path / 'collections'
    env = outside_env(collections)
    workdir = tmp_path / 'elsewhere'
    workdir.mkdir()
    run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'install', str(artifact), '-p', str(collections)],
        workdir, env)
    installed = collections / 'ansible_collections' / 'xdpkit' / 'forwarding'
    assert installed.is_dir() and not installed.is_symlink()
    out = run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'verify', '--offline', 'xdpkit.forwarding',
               '-p', str(collections)], workdir, env)
    assert "Successfully verified that checksums for 'xdpkit.forwarding:" in out, out

    for module in MODULES:
        doc = run([os.path.join(VENV_BIN, 'ansible-doc'), 'xdpkit.forwarding.' + module], workdir, env)
        assert str(installed) in doc and 'EXAMPLES' in doc, module
    doc = run([os.path.join(VENV_BIN, 'ansible-doc'), '-t', 'connection', 'xdpkit.forwarding.netns'], workdir, env)
    assert str(installed) in doc
    run([os.path.join(VENV_BIN, 'ansible-doc'), '-t', 'filter', 'xdpkit.forwarding.lab_plan'], workdir, env)
    for role in ROLES:
        doc = run([os.path.join(VENV_BIN, 'ansible-doc'), '-t', 'role', 'xdpkit.forwarding.' + role], workdir, env)
        assert 'ENTRY POINT' in doc, role

    # The installed tools run from the installed copy: the exporter serves metrics and ends on SIGTERM,
    # xdp_stats prints the same families.
    assert '--web.listen-address' in run([str(installed / 'tools' / 'xdpkit_exporter'), '--help'], workdir, env)
    stats = run([str(installed / 'tools' / 'xdp_stats'), '--prometheus', '--count', '1'], workdir, env)
    assert '# TYPE xdpkit_xdp_packets_total counter' in stats, stats
    port = free_port()
    exporter = subprocess.Popen([str(installed / 'tools' / 'xdpkit_exporter'),
                                 '--web.listen-address=127.0.0.1:%d' % port], cwd=workdir, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _attempt in range(100):
            try:
                with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                assert exporter.poll() is None, exporter.communicate()
                time.sleep(0.1)
        assert body and '# TYPE xdpkit_xdp_packets_total counter' in body, body
    finally:
        exporter.terminate()
        _out, err = exporter.communicate(timeout=15)
    assert exporter.returncode == 0 and 'stopping on signal 15' in err and 'Traceback' not in err, err

    # A scenario end to end from the installed copy: the hardcoded one, named after this test.
    inventory = workdir / 'hosts.yml'
    inventory.write_text('all:\n  hosts:\n    localhost:\n      ansible_connection: local\n'
                         '      ansible_python_interpreter: /usr/bin/python3\n')
    scenario = ['ansible-playbook', '-i', str(inventory), 'xdpkit.forwarding.hardcoded',
                '-e', json.dumps({'hardcoded_prefix': cleanup.prefix})]
    try:
        out = run(scenario, workdir, env, timeout=900)
        # The role's own verification ran (real pings through XDP) and reported the compiled program.
        assert 'failed=0' in out and 'hardcoded: xdp_redirect' in out, out[-3000:]
        assert {cleanup.prefix + 'uno', cleanup.prefix + 'dos'} <= set(list_netns())
        run(scenario + ['-e', 'state=absent'], workdir, env, timeout=900)
        assert not [ns for ns in list_netns() if ns.startswith(cleanup.prefix)]
    finally:
        subprocess.run(scenario + ['-e', 'state=absent'], cwd=workdir, env=env, capture_output=True, check=False,
                       timeout=900)


def test_the_ee_metadata_is_what_ansible_builder_reads(artifact, tmp_path):
    collections = tmp_path / 'collections'
    env = outside_env(collections)
    run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'install', str(artifact), '-p', str(collections)],
        tmp_path, env)
    out = run([os.path.join(VENV_BIN, 'ansible-builder'), 'introspect', '--sanitize',
               str(collections)], tmp_path, env)
    assert 'python3-bpfcc' in out and 'python3-pyroute2' in out and 'linux-headers' in out, out


def test_the_changelog_lints_and_names_the_release_in_galaxy_yml():
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''))
    run([os.path.join(VENV_BIN, 'antsibull-changelog'), 'lint'], ROOT, env)
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        version = [line.split(':', 1)[1].strip() for line in handle if line.startswith('version:')][0]
    with open(os.path.join(ROOT, 'CHANGELOG.rst')) as handle:
        assert 'v%s' % version in handle.read()
