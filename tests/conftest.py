"""Shared fixtures: the collection on sys.path, unique names, cleanup, an Ansible runner.

Every test that touches the kernel takes `names` (a unique prefix for its namespaces and
links) and `cleanup`, which removes whatever carries that prefix even when the test fails.
"""

import errno
import json
import os
import secrets
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, '.collections')
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
sys.path.insert(0, COLLECTIONS)

# Every name a test creates starts with this, so a sweep can find leftovers.
TEST_PREFIX = 'xt'


# The pure unit tests: module_utils functions on data, no kernel state, no root. Every other
# test creates namespaces, loads BPF programs or runs Ansible against them.
UNIT_TESTS = os.path.join(ROOT, 'tests', 'unit')

# What the machine had before the suite, for tests/zz_leaks to compare with at the end.
BASELINE = {}


def pytest_sessionstart(session):
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'xdpkit', 'forwarding')
    if os.path.realpath(link) != ROOT:
        pytest.exit('the collection is not linked at %s: run scripts/test (it runs scripts/bootstrap)' % link, 2)


def needs_kernel(item):
    return os.path.commonpath([str(item.path), UNIT_TESTS]) != UNIT_TESTS


def pytest_collection_finish(session):
    """Once the run's tests are known, before any runs: a run with a test that needs the kernel
    needs root (it fails here, loudly, not test by test) and takes the baseline the leak checks
    compare with; a run of unit tests alone needs neither."""
    kernel = [item.nodeid for item in session.items if needs_kernel(item)]
    if not kernel or session.config.option.collectonly:
        return
    if os.geteuid() != 0:
        pytest.exit('%d of the tests collected (%s first) create namespaces and attach XDP programs: run them '
                    'as root (tests/unit alone runs as any user)' % (len(kernel), kernel[0]), 2)
    import bpf_run

    from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins

    BASELINE.update(progs=set(bpf_run.prog_ids()), maps=set(bpf_run.map_ids()),
                    pins=set(_bpf_pins.pinned_files(_bpf_pins.PIN_ROOT)),
                    locks=set(os.listdir('/run/xdpkit')) if os.path.isdir('/run/xdpkit') else set(),
                    routing_daemons=set(routing_daemons()), frr_dirs=set(frr_dirs()))


def routing_daemons():
    """(pid, start time, executable) of every routing daemon running: FRR's, BIRD's."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink('/proc/%s/exe' % entry)
            with open('/proc/%s/stat' % entry) as handle:
                start = handle.read().rsplit(')', 1)[1].split()[19]
        except OSError:
            continue
        if exe.startswith('/usr/lib/frr/') or os.path.basename(exe) in ('bird', 'bird6', 'zebra', 'ospfd'):
            found.append((int(entry), start, exe))
    return found


def frr_dirs():
    """Every FRR pathspace directory: configuration under /etc/frr, runtime (sockets) under /var/run/frr."""
    return [os.path.join(root, name) for root in ('/etc/frr', '/var/run/frr')
            for name in (os.listdir(root) if os.path.isdir(root) else []) if os.path.isdir(os.path.join(root, name))]


# Reports a test wants in the run's output whatever its outcome (the differential test's
# per-class table): printed in pytest's terminal summary.
REPORTS = []


def report(text):
    REPORTS.append(text)


def pytest_terminal_summary(terminalreporter):
    for text in REPORTS:
        terminalreporter.write_sep('-', 'xdpkit report')
        terminalreporter.write_line(text)


class Names:
    """Unique, short names: PREFIX + 4 hex + suffix, always within IFNAMSIZ."""

    def __init__(self):
        self.prefix = '%s%s' % (TEST_PREFIX, secrets.token_hex(2))

    def __call__(self, suffix=''):
        name = self.prefix + suffix
        assert len(name) <= 15, name
        return name


@pytest.fixture
def names():
    return Names()


BPF_TEST_ROOT = '/sys/fs/bpf/xdpkit-test'


def _remove_prefixed(prefix):
    from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins

    for root in (_bpf_pins.PIN_ROOT, BPF_TEST_ROOT):
        for name in _bpf_pins.pinned_files(root):
            if prefix in name:
                _bpf_pins.remove_pins(os.path.join(root, name))
        _bpf_pins.remove_empty_dir(root)
    _remove_prefixed_frr(prefix)
    _remove_prefixed_links(prefix)


def _remove_prefixed_frr(prefix):
    """FRR instances (pathspaces) named with the prefix: stopped by their pids, directories gone."""
    import shutil

    from ansible_collections.xdpkit.forwarding.plugins.module_utils import _frr

    for root in (_frr.CONF_ROOT, _frr.RUN_ROOT):
        for name in os.listdir(root) if os.path.isdir(root) else []:
            if name.startswith(prefix):
                _frr.stop_instance(name)
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _remove_prefixed_links(prefix):
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from ansible_collections.xdpkit.forwarding.plugins.module_utils import _host_lock, _netns
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump

    for ns in _netns.list_netns():
        if ns.startswith(prefix):
            _netns.remove_netns(ns)
    for name in os.listdir('/run/xdpkit') if os.path.isdir('/run/xdpkit') else []:
        if name.startswith('lock@' + prefix):
            _host_lock.remove_netns_lock(name[len('lock@'):])
    with IPRoute() as ipr:
        for link in dump(ipr.get_links):
            name = link.get_attr('IFLA_IFNAME')
            if name.startswith(prefix):
                try:
                    ipr.link('del', index=link['index'])
                except NetlinkError as exc:
                    # The peer's namespace was just removed: the kernel is deleting it too.
                    if exc.code != errno.ENODEV:
                        raise


@pytest.fixture
def bpf_dir(cleanup):
    """A private bpffs directory for pins, removed with everything else of the test."""
    return '%s/%s' % (BPF_TEST_ROOT, cleanup.prefix)


@pytest.fixture
def cleanup(names):
    """Remove every namespace and host link named with this test's prefix, pass or fail."""
    _remove_prefixed(names.prefix)
    yield names
    _remove_prefixed(names.prefix)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """An sshd of the test's own on 127.0.0.1 with throw-away keys; yields the inventory
    variables that reach it as root."""
    for key in ('host', 'client'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / key)], check=True)
    (tmp_path / 'authorized_keys').write_text((tmp_path / 'client.pub').read_text())
    port = free_port()
    config = tmp_path / 'sshd_config'
    config.write_text('\n'.join([
        'Port %d' % port, 'ListenAddress 127.0.0.1', 'HostKey %s' % (tmp_path / 'host'),
        'AuthorizedKeysFile %s' % (tmp_path / 'authorized_keys'), 'PermitRootLogin prohibit-password',
        'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
        'PidFile %s' % (tmp_path / 'sshd.pid'), 'Subsystem sftp internal-sftp', '']))
    made_privsep = not os.path.isdir('/run/sshd')
    os.makedirs('/run/sshd', exist_ok=True)
    server = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e', '-f', str(config)], stderr=subprocess.PIPE, text=True)
    try:
        for _i in range(50):
            with socket.socket() as sock:
                if sock.connect_ex(('127.0.0.1', port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError('sshd did not start: %s' % server.stderr.read())
        yield {
            'ansible_host': '127.0.0.1', 'ansible_port': port, 'ansible_user': 'root',
            'ansible_ssh_private_key_file': str(tmp_path / 'client'),
            'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
            # No persistent master connection: it would keep a session of this sshd alive.
            'ansible_ssh_args': '-o ControlMaster=no',
        }
    finally:
        server.terminate()
        server.wait(timeout=10)
        if made_privsep:
            os.rmdir('/run/sshd')


def ansible_env():
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, 'tests', 'callback_plugins'),
        ANSIBLE_STDOUT_CALLBACK='result_json',
        ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_DEPRECATION_WARNINGS='0',
        PATH=VENV_BIN + os.pathsep + env.get('PATH', ''),
    )
    return env


def run_module(module, args, check=False, diff=False):
    """Run xdpkit.forwarding.MODULE on localhost through Ansible; return its result dict."""
    cmd = [os.path.join(VENV_BIN, 'ansible'), 'localhost', '-m', 'xdpkit.forwarding.' + module,
           '-a', json.dumps(args)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    try:
        return json.loads(lines[-1][len('RESULT '):])
    except (IndexError, ValueError):
        raise AssertionError('ansible gave no JSON result (rc=%d)\nstdout:\n%s\nstderr:\n%s' % (
            proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))


def run_playbook(playbook, extra_vars=None, check=False, timeout=900, inventory=None, args=()):
    """Run a playbook from the collection root; return (rc, stdout, stderr) with the default callback."""
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), playbook] + list(args)
    if inventory:
        cmd += ['-i', str(inventory)]
    if extra_vars is not None:
        cmd += ['-e', json.dumps(extra_vars)]
    if check:
        cmd.append('--check')
    env = ansible_env()
    env['ANSIBLE_STDOUT_CALLBACK'] = 'default'
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def in_ns(ns, *argv, check=True):
    """Run a command inside a namespace (test side only: pings and the like)."""
    cmd = ['nsenter', '--net=/run/netns/%s' % ns] + list(argv) if ns else list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture(scope='session')
def container_root(tmp_path_factory):
    """A minimal Debian root for booting with systemd-nspawn (tests/system/container.py),
    debootstrapped once per run (about a minute here) and deleted at the end of the run."""
    system = os.path.join(ROOT, 'tests', 'system')
    if system not in sys.path:
        sys.path.insert(0, system)
    import container

    path = tmp_path_factory.mktemp('container') / 'root'
    try:
        built = container.make_root(path)
        report('container root: %s, %.0f s to debootstrap, %.0f MB' % (
            path, built['seconds'], built['bytes'] / 1e6))
        yield path
    finally:
        container.remove_root(path)
