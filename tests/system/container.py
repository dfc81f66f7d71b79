"""A real systemd booting a minimal Debian root, for the tests that need a boot: units that
attach the router at boot, ordering before network-online.target, reboots.

systemd is not PID 1 on the test machines, so `systemctl start` cannot run a unit there. This
helper makes a Debian root with debootstrap (`make_root`) and boots it with systemd-nspawn in
its own network namespace (`booted`), as FIELD-NOTES.md "This machine's kernel" describes:

    with booted(container_root, names('ct'), binds=collection_binds()) as ct:
        run(ct, ['ip', 'link', 'add', 'a', 'type', 'veth', 'peer', 'name', 'b'])
        ansible(ct, 'ansible-playbook', ['-c', 'local', '-i', 'localhost,', 'router.yml'])
        reboot(ct)                       # systemctl reboot inside, then the next boot
        run(ct, ['systemctl', 'is-active', 'xdpkit-router.service'])

`container_root` (tests/conftest.py) is the session's root: made once per pytest run in
pytest's tmp dir (about a minute, 500 MB) and deleted at the end of the run.

What a boot gets: `--private-network` (a fresh network namespace per boot, as a host's links
come up anew after a reboot), a fresh bpffs on /sys/fs/bpf per boot (pins do not survive a
reboot), the host's kernel build tree read-only (bcc compiles against it), `bpf()` and
`perf_event_open()` allowed. The root holds what the collection's code needs inside: python3,
pyroute2, bcc and what the prerequisites role installs, so the role finds nothing to install
(the container has no network to install from).

Leaving nothing behind: nspawn runs in a cgroup of its own (`xdpkit-NAME`, one per hierarchy),
so whatever is left at the end is found there and killed by pid; the bpffs is unmounted; the
cgroups and nspawn's per-machine directory are removed; `booted` checks all of that on exit
and raises if anything remains. The root itself is removed by `remove_root`.

No tests are collected from this file (its name does not start with test_).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What systemd needs to boot, plus the prerequisites role's packages (read from the role, so
# the root keeps up with it), nftables (`nft`, for tests that put rules in the router's way) and
# prometheus_client (the exporter role's service).
BOOT_PACKAGES = ('systemd', 'systemd-sysv', 'dbus', 'iproute2', 'python3')
EXTRA_PACKAGES = ('nftables', 'python3-prometheus-client')

# systemd-nspawn's exit status when the container asked for a reboot (systemd-nspawn@.service
# restarts on it: RestartForceExitStatus=133).
NSPAWN_REBOOT = 133

# The environment of commands run inside: the container's own PATH, not the test's venv.
INSIDE_ENV = {
    'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'LANG': 'C.UTF-8',
    'HOME': '/root',
    'TERM': 'dumb',
    'SYSTEMD_PAGER': '',
}

NSPAWN_RUN = '/run/systemd/nspawn'


class ContainerError(AssertionError):
    """A container could not be made, booted, reached or cleaned up; the message says why."""


def _tail(text, lines=40):
    return '\n'.join(text.splitlines()[-lines:])


def require(*tools):
    """Fail loudly when a host tool is missing (never skip: the boot tests must run)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ContainerError('missing on this host: %s (Debian packages debootstrap and systemd-container; '
                             'scripts/bootstrap installs them)' % ', '.join(missing))


# -- making the root --------------------------------------------------------------------------

def packages():
    """Every package the root gets: boot, the prerequisites role's list, extras."""
    with open(os.path.join(ROOT, 'roles', 'prerequisites', 'defaults', 'main.yml')) as stream:
        role = yaml.safe_load(stream)['prerequisites_packages']
    wanted = []
    for pkg in list(BOOT_PACKAGES) + list(role) + list(EXTRA_PACKAGES):
        if pkg not in wanted:
            wanted.append(pkg)
    return wanted


def host_suite(os_release='/etc/os-release'):
    """The host's Debian codename (the root is the same release as the host)."""
    with open(os_release) as stream:
        for line in stream:
            key, _sep, value = line.strip().partition('=')
            if key == 'VERSION_CODENAME' and value:
                return value.strip('"')
    raise ContainerError('%s names no VERSION_CODENAME' % os_release)


def _source_entries(apt_dir):
    """(uri, suites) of every `deb` entry in sources.list and sources.list.d (both formats)."""
    entries = []
    paths = [os.path.join(apt_dir, 'sources.list')]
    parts = os.path.join(apt_dir, 'sources.list.d')
    if os.path.isdir(parts):
        paths += sorted(os.path.join(parts, name) for name in os.listdir(parts))
    for path in paths:
        if not os.path.isfile(path):
            continue
        with open(path) as stream:
            text = stream.read()
        if path.endswith('.sources'):
            for stanza in re.split(r'\n\s*\n', text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith('#') or ':' not in line or line[:1].isspace():
                        continue
                    key, _sep, value = line.partition(':')
                    fields[key.strip().lower()] = value.split()
                if 'deb' in fields.get('types', []) and fields.get('enabled', ['yes']) != ['no']:
                    entries += [(uri, fields.get('suites', [])) for uri in fields.get('uris', [])]
        elif path.endswith('.list'):
            for line in text.splitlines():
                words = re.sub(r'\[[^]]*\]', '', line.split('#', 1)[0]).split()
                if len(words) >= 3 and words[0] == 'deb':
                    entries.append((words[1], [words[2]]))
    return entries


def host_mirror(suite, apt_dir='/etc/apt'):
    """The URI the host's apt fetches SUITE from: the root is made from the same mirror."""
    for uri, suites in _source_entries(apt_dir):
        if suite in suites:
            return uri
    raise ContainerError('no apt source of this host serves %r (read %s)' % (suite, apt_dir))


def _du(path):
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def make_root(path, extra=(), suite=None, mirror=None, timeout=900):
    """debootstrap a minimal Debian root with `packages()` (+ `extra`) at PATH.

    Returns {'seconds': build time, 'bytes': size on disk, 'packages': [...]}. On failure the
    half-made root is removed and the error carries the end of debootstrap's log.
    """
    require('debootstrap')
    suite = suite or host_suite()
    mirror = mirror or host_mirror(suite)
    wanted = packages() + [pkg for pkg in extra if pkg not in packages()]
    started = time.monotonic()
    proc = subprocess.run(
        ['debootstrap', '--variant=minbase', '--include=' + ','.join(wanted), suite, str(path), mirror],
        capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        log = ''
        with contextlib.suppress(OSError), open(os.path.join(str(path), 'debootstrap', 'debootstrap.log')) as stream:
            log = stream.read()
        remove_root(path)
        raise ContainerError('debootstrap %s from %s failed (rc=%d):\n%s\n%s' % (
            suite, mirror, proc.returncode, _tail(proc.stderr + proc.stdout), _tail(log)))
    # debootstrap copies the host's /etc/hostname: without one, systemd keeps the machine name
    # nspawn gives each boot.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(str(path), 'etc', 'hostname'))
    archives = os.path.join(str(path), 'var', 'cache', 'apt', 'archives')
    for name in os.listdir(archives):
        if name.endswith('.deb'):
            os.unlink(os.path.join(archives, name))
    return {'seconds': time.monotonic() - started, 'bytes': _du(str(path)), 'packages': wanted}


def mounts_under(path):
    """Mount points at or below PATH in this mount namespace, deepest first."""
    path = os.path.realpath(str(path))
    found = []
    with open('/proc/self/mountinfo') as stream:
        for line in stream:
            point = line.split()[4].encode().decode('unicode_escape')
            if point == path or point.startswith(path + '/'):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_root(path):
    """Delete a root made by make_root; whatever is mounted inside (a debootstrap that died
    leaves /proc and /sys mounted) is unmounted first, and nothing is deleted through a mount."""
    path = str(path)
    for point in mounts_under(path):
        subprocess.run(['umount', point], capture_output=True, check=False)
    left = mounts_under(path)
    if left:
        raise ContainerError('not removing %s: still mounted below it: %s' % (path, ', '.join(left)))
    if os.path.lexists(path):
        shutil.rmtree(path)


# -- the host's kernel build tree -------------------------------------------------------------

def kernel_tree(release=None):
    """Host paths that make /lib/modules/RELEASE/build usable inside: the module directory and
    every directory its build/source links (and their top-level links) resolve to."""
    release = release or os.uname().release
    start = '/lib/modules/%s' % release
    if not os.path.exists(os.path.join(start, 'build', 'Makefile')):
        raise ContainerError('%s/build has no Makefile: bcc needs a kernel build tree (scripts/bootstrap '
                             'links one)' % start)
    paths, todo = [start], [os.path.join(start, 'build'), os.path.join(start, 'source')]
    for depth in range(2):
        linked = []
        for link in todo:
            if not os.path.islink(link):
                continue
            target = os.path.realpath(link)
            if os.path.isdir(target) and not any(target == p or target.startswith(p + '/') for p in paths):
                paths.append(target)
                if depth == 0:
                    linked += [os.path.join(target, name) for name in sorted(os.listdir(target))]
        todo = linked
    return sorted(paths)


# -- cgroups of a boot ------------------------------------------------------------------------

def _cgroup_dirs(name):
    """One new cgroup directory per hierarchy systemd uses (name=systemd v1 and/or the v2
    one), below this process's own cgroup: nspawn makes its payload/supervisor cgroups there."""
    mounts = {}
    with open('/proc/self/mountinfo') as stream:
        for line in stream:
            left, _sep, right = line.partition(' - ')
            fstype, _source, options = right.split()[:3]
            point = left.split()[4]
            if fstype == 'cgroup2':
                mounts.setdefault('', point)
            elif fstype == 'cgroup' and 'name=systemd' in options.split(','):
                mounts.setdefault('name=systemd', point)
    dirs = []
    with open('/proc/self/cgroup') as stream:
        for line in stream:
            _num, controllers, path = line.rstrip('\n').split(':', 2)
            if controllers in mounts:
                dirs.append(os.path.join(mounts[controllers] + path.rstrip('/'), 'xdpkit-' + name))
    if not dirs:
        raise ContainerError('found neither a cgroup2 nor a name=systemd hierarchy for systemd-nspawn')
    return dirs


def _cgroup_pids(top):
    pids = []
    for here, _dirs, _files in os.walk(top):
        with contextlib.suppress(FileNotFoundError), open(os.path.join(here, 'cgroup.procs')) as stream:
            pids += [int(pid) for pid in stream.read().split()]
    return pids


def _remove_cgroup(top):
    """Kill by pid whatever is still in the cgroup tree, then remove it bottom up."""
    deadline = time.monotonic() + 15
    while os.path.isdir(top):
        for pid in _cgroup_pids(top):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for here, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(here)
        if os.path.isdir(top) and time.monotonic() > deadline:
            raise ContainerError('cannot remove cgroup %s: processes %s' % (top, _cgroup_pids(top)))
        if os.path.isdir(top):
            time.sleep(0.1)


# -- booting ----------------------------------------------------------------------------------

class Container:
    """A booted root. `leader` is the pid (host view) of the container's systemd in this boot,
    `boots` counts boots, `boot_seconds` their times from nspawn's start to a running system."""

    def __init__(self, root, name, workdir, binds, network):
        self.root = str(root)
        self.name = name
        self.workdir = workdir
        self.bpffs = os.path.join(workdir, 'bpffs')
        self.log = os.path.join(workdir, 'console.log')
        self.binds = list(binds)
        self.network = network
        self.cgroups = _cgroup_dirs(name)
        self.nspawn = None
        self.leader = None
        self.state = None
        self.boots = 0
        self.boot_seconds = []
        self.exit_codes = []
        self.netns = None
        # nspawn makes /run/systemd/nspawn (propagate/, locks/) and leaves it: take it away
        # again if this boot made it (/run is not a tmpfs on every machine).
        self.made_nspawn_run = not os.path.exists(NSPAWN_RUN)

    def console(self):
        """What the container printed on its console so far (all boots)."""
        with contextlib.suppress(FileNotFoundError), open(self.log, errors='replace') as stream:
            return stream.read()
        return ''

    def command(self):
        argv = ['systemd-nspawn', '--quiet', '--directory=' + self.root, '--machine=' + self.name, '--boot',
                # No host bus to register with or to make a scope on (systemd is not PID 1 here).
                '--register=no', '--keep-unit',
                '--link-journal=no', '--console=read-only',
                # bpf() and perf_event_open() are EPERM without these (FIELD-NOTES.md).
                '--capability=all', '--system-call-filter=bpf perf_event_open',
                '--bind=%s:/sys/fs/bpf' % self.bpffs]
        if self.network == 'private':
            argv.append('--private-network')
        for path in kernel_tree():
            argv.append('--bind-ro=%s' % path)
        for bind in self.binds:
            host, inside = bind[0], bind[1]
            mode = bind[2] if len(bind) > 2 else 'ro'
            if mode not in ('ro', 'rw'):
                raise ValueError('bind %r: mode must be ro or rw' % (bind,))
            argv.append('--bind%s=%s:%s' % ('-ro' if mode == 'ro' else '', host, inside))
        return argv

    def start(self, timeout):
        """Mount a fresh bpffs, start nspawn in the boot's cgroups, wait for a running system."""
        os.makedirs(self.bpffs, exist_ok=True)
        subprocess.run(['mount', '-t', 'bpf', 'bpf', self.bpffs], check=True, capture_output=True)
        for path in self.cgroups:
            os.makedirs(path)
        started = time.monotonic()
        with open(self.log, 'a') as log:
            log.write('\n==== boot %d ====\n' % (self.boots + 1))
            log.flush()
            env = dict(os.environ, XDPKIT_CGROUP_PROCS=' '.join(os.path.join(p, 'cgroup.procs') for p in self.cgroups))
            self.nspawn = subprocess.Popen(
                ['sh', '-c', 'for f in $XDPKIT_CGROUP_PROCS; do echo $$ > "$f" || exit 1; done; exec "$@"', 'sh']
                + self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.boots += 1
        self.leader = self._find_leader(started + timeout)
        self.state = self._wait_running(started + timeout)
        self.netns = os.stat('/proc/%d/ns/net' % self.leader).st_ino
        self.boot_seconds.append(time.monotonic() - started)

    def _dead(self, what):
        code = self.nspawn.poll()
        self.exit_codes.append(code)
        raise ContainerError('%s: systemd-nspawn exited with %s; console:\n%s' % (what, code, _tail(self.console())))

    def _find_leader(self, deadline):
        """The container's init: nspawn's child whose pid is 1 in its own pid namespace."""
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                self._dead('%s did not boot' % self.name)
            children = []
            with contextlib.suppress(FileNotFoundError):
                for task in os.listdir('/proc/%d/task' % self.nspawn.pid):
                    with open('/proc/%d/task/%s/children' % (self.nspawn.pid, task)) as stream:
                        children += [int(pid) for pid in stream.read().split()]
            for pid in children:
                with contextlib.suppress(FileNotFoundError), open('/proc/%d/status' % pid) as stream:
                    nspid = [line.split()[1:] for line in stream if line.startswith('NSpid:')]
                if nspid and len(nspid[0]) > 1 and nspid[0][-1] == '1':
                    return pid
            time.sleep(0.05)
        raise ContainerError('%s: no container init appeared; console:\n%s' % (self.name, _tail(self.console())))

    def _wait_running(self, deadline):
        """`systemctl is-system-running --wait` inside, until it answers running or degraded."""
        answer = None
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                self._dead('%s stopped while booting' % self.name)
            left = max(1, deadline - time.monotonic())
            try:
                proc = run(self, ['systemctl', 'is-system-running', '--wait'], check=False, timeout=left)
            except subprocess.TimeoutExpired:
                break
            answer = proc.stdout.strip() or proc.stderr.strip()
            if answer in ('running', 'degraded'):
                return answer
            # systemd's private socket is not there yet ("offline", "Failed to connect"): again.
            time.sleep(0.1)
        raise ContainerError('%s did not come up (last answer %r); console:\n%s' % (
            self.name, answer, _tail(self.console())))

    def wait_exit(self, timeout):
        """nspawn's exit status once the container has stopped, or None if it has not."""
        try:
            code = self.nspawn.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit_codes.append(code)
        return code

    def stop(self, timeout=60):
        """Power off (SIGRTMIN+4 to systemd, as `systemctl poweroff`), wait, then kill by pid
        whatever is left and undo what start() did. Returns nspawn's exit status."""
        code = self.nspawn.poll()
        if code is None and self.leader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGRTMIN + 4)
            code = self.wait_exit(timeout)
        if code is None:
            # Killing a pid namespace's init kills everything in it; nspawn then exits by itself
            # and removes its image lock. Kill nspawn too only if it does not.
            if self.leader is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGKILL)
                code = self.wait_exit(timeout)
            if code is None:
                self.nspawn.kill()
                code = self.wait_exit(timeout)
        self.release()
        return code

    def release(self):
        """Undo a (finished) boot: its cgroups, its bpffs, nspawn's per-machine directory."""
        for path in self.cgroups:
            _remove_cgroup(path)
        for point in mounts_under(self.bpffs):
            subprocess.run(['umount', point], check=True, capture_output=True)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(os.path.join(NSPAWN_RUN, 'propagate', self.name))
        # nspawn's lock on the root, left when nspawn itself had to be killed.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.image_lock())
        if self.made_nspawn_run:
            for path in (os.path.join(NSPAWN_RUN, 'propagate'), os.path.join(NSPAWN_RUN, 'locks'), NSPAWN_RUN):
                with contextlib.suppress(OSError):
                    os.rmdir(path)

    def image_lock(self):
        root = os.stat(self.root)
        return os.path.join(NSPAWN_RUN, 'locks', 'inode-%d:%d' % (root.st_dev, root.st_ino))

    def leftovers(self):
        """What of this container is still on the host (empty when clean)."""
        left = []
        if self.nspawn is not None and self.nspawn.poll() is None:
            left.append('systemd-nspawn pid %d' % self.nspawn.pid)
        if self.leader and os.path.exists('/proc/%d' % self.leader):
            left.append('container init pid %d' % self.leader)
        left += ['cgroup %s' % path for path in self.cgroups if os.path.exists(path)]
        left += ['mount %s' % point for point in mounts_under(self.workdir)]
        if os.path.exists(os.path.join(NSPAWN_RUN, 'propagate', self.name)):
            left.append('%s/propagate/%s' % (NSPAWN_RUN, self.name))
        if os.path.exists(self.image_lock()):
            left.append(self.image_lock())
        if self.made_nspawn_run and os.path.exists(NSPAWN_RUN):
            left.append(NSPAWN_RUN)
        if self.netns is not None:
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    with contextlib.suppress(OSError):
                        if os.stat('/proc/%s/ns/net' % pid).st_ino == self.netns:
                            left.append('pid %s in the container network namespace' % pid)
        return left


def run(container, argv, check=True, input=None, timeout=120, cwd=None, env=None):
    """Run ARGV inside the booted container (nsenter into all of its init's namespaces, the
    container's PATH, plus ENV; in CWD, a path inside); return the CompletedProcess (text).
    check=True raises ContainerError with the output when the command fails."""
    argv = list(argv)
    if cwd is not None:
        argv = ['sh', '-c', 'cd "$0" && exec "$@"', cwd] + argv
    proc = subprocess.run(['nsenter', '--target', str(container.leader), '--all', '--'] + argv,
                          input=input, capture_output=True, text=True, env=dict(INSIDE_ENV, **(env or {})),
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ContainerError('in %s: %s: rc=%d\nstdout:\n%s\nstderr:\n%s' % (
            container.name, ' '.join(argv), proc.returncode, _tail(proc.stdout), _tail(proc.stderr)))
    return proc


def collection_binds():
    """Binds that put this checkout and its controller venv inside, read-only at the same
    paths: the venv's python is /usr/bin/python3 with the system's site-packages, the same
    Debian python3 as the container's, so ansible and the collection run inside as they do on
    the host (see `ansible`)."""
    venv = os.path.realpath(os.path.join(ROOT, '.venv'))
    return [(ROOT, ROOT, 'ro'), (venv, venv, 'ro')]


def ansible(container, tool, args, check=True, timeout=600, env=None):
    """Run the venv's TOOL (ansible, ansible-playbook, ...) inside a container booted with
    `collection_binds()`, from the checkout with its ansible.cfg, modules on /usr/bin/python3
    (where bcc imports). Add `-c local` / an inventory to ARGS as the play needs."""
    tool_path = os.path.join(os.path.realpath(os.path.join(ROOT, '.venv')), 'bin', tool)
    extra = {'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
             'ANSIBLE_PYTHON_INTERPRETER': '/usr/bin/python3', 'ANSIBLE_NOCOLOR': '1'}
    extra.update(env or {})
    return run(container, [tool_path] + list(args), check=check, timeout=timeout, cwd=ROOT, env=extra)


def write(container, path, text, mode=0o644):
    """Write a file inside the running container (its view of PATH, tmpfs mounts included)."""
    run(container, ['sh', '-c', 'cat > "$1" && chmod "$2" "$1"', 'sh', path, '%o' % mode], input=text)


def reboot(container, timeout=120):
    """`systemctl reboot` inside; nspawn ends with exit status 133 (it never restarts by itself:
    systemd-nspawn@.service restarts it on that status), so boot the same root again with a
    fresh bpffs and network namespace, as a real reboot starts without them."""
    old = container.leader
    run(container, ['systemctl', 'reboot'])
    code = container.wait_exit(timeout)
    if code is None:
        raise ContainerError('%s did not stop after systemctl reboot; console:\n%s' % (
            container.name, _tail(container.console())))
    container.release()
    if code != NSPAWN_REBOOT:
        raise ContainerError('%s: systemd-nspawn exited with %d after systemctl reboot, not %d; console:\n%s' % (
            container.name, code, NSPAWN_REBOOT, _tail(container.console())))
    container.start(timeout)
    assert container.leader != old


@contextlib.contextmanager
def booted(root, name, binds=(), network='private', workdir=None, timeout=120, stop_timeout=60):
    """Boot ROOT with systemd-nspawn as machine NAME; yield a Container once its systemd says
    running or degraded. binds: (host_path, container_path[, 'ro' | 'rw']) tuples, read-only by
    default, added to the kernel build tree and the bpffs. network: only 'private' (a network
    namespace of the container's own, new each boot, so a reboot loses links like a host's).
    On exit, pass or fail: power off (at most STOP_TIMEOUT seconds), kill what is left by pid,
    unmount, remove, and raise if anything of the container is still there."""
    require('systemd-nspawn', 'nsenter', 'mount', 'umount')
    if network != 'private':
        raise ValueError('network %r: only private is supported (a shared namespace would keep '
                         'links and XDP programs across a reboot)' % (network,))
    if not os.path.exists(os.path.join(str(root), 'sbin', 'init')) and not os.path.exists(
            os.path.join(str(root), 'lib', 'systemd', 'systemd')):
        raise ContainerError('%s has no init to boot (make it with make_root)' % root)
    made_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix='xdpkit-%s-' % name)
    container = Container(root, name, str(workdir), binds, network)
    try:
        container.start(timeout)
        yield container
    finally:
        problems = []
        try:
            if container.nspawn is not None:
                container.stop(stop_timeout)
            else:
                container.release()
        except (ContainerError, OSError, subprocess.CalledProcessError) as exc:
            problems.append(str(exc))
        problems += container.leftovers()
        console = container.console()
        if made_workdir and not mounts_under(workdir):
            shutil.rmtree(workdir)
        if problems:
            raise ContainerError('%s left behind: %s; console:\n%s' % (name, '; '.join(problems), _tail(console)))
