# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The frr module's manager: FRR instances, one per network namespace, and
the wait until their routes are in the kernel.

An instance is FRR 8's "pathspace" named after its namespace: configuration in
/etc/frr/NAME/ (`daemons`, `frr.conf`), pid files and sockets in /var/run/frr/NAME/, reached
with `vtysh -N NAME`. Debian's `frrinit.sh start NAME` starts it: watchfrr with `--netns`
runs zebra and the routing daemons inside namespace NAME and restarts any that dies. It is
stopped by the pids in its pid files, never by process name: another FRR on the host (the
system's own, or another lab's) is never touched. A pathspace this module did not make (no
marker file in it) is refused, not taken over.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import shutil
import signal
import subprocess
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    XdpkitError,
    check_netns_name,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import missing_netns_error, netns_exists

FRR_BIN = '/usr/lib/frr'
CONF_ROOT = '/etc/frr'
RUN_ROOT = '/var/run/frr'
MARKER = '.xdpkit'
DEFAULT_DAEMONS = ('zebra', 'ospfd', 'ospf6d')
# The daemons a lab may ask for; zebra always runs (the others talk to the kernel through it).
KNOWN_DAEMONS = ('zebra', 'ospfd', 'ospf6d', 'staticd', 'bfdd', 'bgpd', 'ripd', 'ripngd', 'isisd')
# Each daemon's vty listens on the loopback of its own namespace only.
_VTY_ADDRESS = {'ospf6d': '::1', 'ripngd': '::1'}
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = ("install Debian's frr and frr-pythontools packages (apt-get install frr frr-pythontools; the "
                "prerequisites role does it when the lab has routing: ospf and its prerequisites are on)")


def frr_installed():
    return all(os.access(os.path.join(FRR_BIN, name), os.X_OK)
               for name in ('frrinit.sh', 'watchfrr', 'zebra', 'frr-reload.py'))


def conf_dir(name):
    return os.path.join(CONF_ROOT, name)


def run_dir(name):
    return os.path.join(RUN_ROOT, name)


def daemons_file(daemons, namespace):
    lines = ['# xdpkit.forwarding: the FRR daemons of this pathspace; watchfrr runs them in network',
             '# namespace of the same name (--netns).']
    lines += ['%s=%s' % (daemon, 'yes' if daemon in daemons else 'no') for daemon in KNOWN_DAEMONS if daemon != 'zebra']
    # The namespace by name: a bare --netns would take the pathspace's name, and create it if missing.
    lines += ['vtysh_enable=yes', 'watchfrr_options="--netns=%s"' % namespace,
              'zebra_options="-A 127.0.0.1 -s 90000000"']
    lines += ['%s_options="-A %s"' % (daemon, _VTY_ADDRESS.get(daemon, '127.0.0.1'))
              for daemon in KNOWN_DAEMONS if daemon != 'zebra']
    return '\n'.join(lines) + '\n'


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _start_time(pid):
    """The process's start time (clock ticks since boot), or None once it is gone or a zombie: with
    the pid it names one process, whatever later reuses the number."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == 'Z' else fields[19]


def _process_of(name, daemon):
    """The pid in `daemon`'s pid file of pathspace `name` while that pid is this daemon of this
    pathspace (a pid file can outlive its process, and a pid can be reused)."""
    text = _read(os.path.join(run_dir(name), daemon + '.pid'))
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    try:
        exe = os.readlink('/proc/%d/exe' % pid)
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            argv = handle.read().split(b'\0')
        with open('/proc/%d/stat' % pid) as handle:
            state = handle.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # A package upgrade replaces the binaries under running daemons: their exe reads '... (deleted)'.
    if state == 'Z' or exe not in (os.path.join(FRR_BIN, daemon), os.path.join(FRR_BIN, daemon) + ' (deleted)') \
            or b'-N' not in argv:
        return None
    if argv[argv.index(b'-N') + 1:argv.index(b'-N') + 2] != [name.encode()]:
        return None
    return pid


def running_daemons(name):
    """{daemon: pid} of pathspace `name`, watchfrr included, for every pid file that names a live daemon."""
    found = {}
    directory = run_dir(name)
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.endswith('.pid'):
            pid = _process_of(name, entry[:-4])
            if pid:
                found[entry[:-4]] = pid
    return found


def _stop_process(daemon, pid):
    """SIGINT (frrinit.sh's clean shutdown), SIGKILL after STOP_TIMEOUT, both only to the process
    that had this pid when it was found; raises when it outlives both."""
    started = _start_time(pid)
    if started is None:
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while _start_time(pid) == started and time.monotonic() < deadline:
        time.sleep(0.05)
    if _start_time(pid) == started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while _start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.05)
    if _start_time(pid) == started:
        raise XdpkitError('FRR %s (pid %d) outlived SIGINT and SIGKILL (%d s)' % (daemon, pid, 2 * STOP_TIMEOUT))


def stop_instance(name):
    """Stop pathspace `name` by its pids: watchfrr first (or it would restart the others), then
    what runs once it is gone (a daemon it restarted meanwhile has a new pid), zebra last (it takes
    the routes the others installed out of the kernel). Returns the pids stopped; raises when a
    daemon is still there after that."""
    stopped = {}
    running = running_daemons(name)
    if 'watchfrr' in running:
        _stop_process('watchfrr', running['watchfrr'])
        stopped['watchfrr'] = running['watchfrr']
        running = running_daemons(name)
    for daemon in sorted(d for d in running if d != 'zebra') + ['zebra']:
        if daemon in running:
            _stop_process(daemon, running[daemon])
            stopped[daemon] = running[daemon]
    left = running_daemons(name)
    if left:
        raise XdpkitError('FRR instance %s still runs %s after it was stopped; stop them and run again' % (
            name, ', '.join('%s (pid %d)' % item for item in sorted(left.items()))))
    return stopped


def _check_config(name, config):
    """vtysh's dry run over the configuration: a line FRR does not know fails here, before any
    daemon starts (a running FRR would log it and carry on without it)."""
    path = '/run/xdpkit-frr-check-%d.conf' % os.getpid()
    with open(path, 'w') as handle:
        handle.write(config)
    try:
        done = subprocess.run(['/usr/bin/vtysh', '--dryrun', '-f', path], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise XdpkitError('FRR does not accept the configuration of %s: %s' % (
            name, done.stdout.strip().replace('\n', '; ')))


def _chown_frr(path):
    import grp
    import pwd
    try:
        uid, gid = pwd.getpwnam('frr').pw_uid, grp.getgrnam('frr').gr_gid
    except KeyError:
        raise MissingDependency('the frr user does not exist: %s' % INSTALL_HINT)
    os.chown(path, uid, gid)


def _log_tail(name, lines=8):
    text = _read(os.path.join(run_dir(name), 'frr.log')) or ''
    return ' | '.join(text.strip().splitlines()[-lines:]) or 'nothing in its log'


class FrrInstance:
    def __init__(self, params):
        self.namespace = check_netns_name(params['namespace'])
        self.name = check_netns_name(params.get('name') or self.namespace)
        daemons = list(params.get('daemons') or DEFAULT_DAEMONS)
        unknown = [d for d in daemons if d not in KNOWN_DAEMONS]
        if unknown:
            raise XdpkitError('frr instance %s: unknown daemons %s; known are %s' % (
                self.name, ', '.join(unknown), ', '.join(KNOWN_DAEMONS)))
        self.daemons = ['zebra'] + sorted(set(daemons) - {'zebra'})
        self.config = params.get('config')
        self.files = None if self.config is None else {
            'daemons': daemons_file(self.daemons, self.namespace), 'frr.conf': self.config,
            'vtysh.conf': 'service integrated-vtysh-config\n'}

    def exists(self):
        return os.path.isdir(conf_dir(self.name)) or os.path.isdir(run_dir(self.name))

    def check_ownership(self):
        if not os.path.isdir(conf_dir(self.name)) and running_daemons(self.name):
            raise XdpkitError('FRR instance %s runs without a configuration this module made (no %s): it is another '
                              'FRR instance; give this lab another namespace name or stop that instance yourself' % (
                                  self.name, conf_dir(self.name)))
        if os.path.isdir(conf_dir(self.name)) and not os.path.exists(os.path.join(conf_dir(self.name), MARKER)):
            raise XdpkitError("%s exists and was not made by xdpkit (no %s in it): it is another FRR instance; give "
                              "this lab another namespace name or remove that instance yourself" % (
                                  conf_dir(self.name), MARKER))

    def current_files(self):
        return {name: _read(os.path.join(conf_dir(self.name), name)) for name in self.files}

    def running(self):
        found = running_daemons(self.name)
        return found if all(d in found for d in ['watchfrr'] + self.daemons) else None

    def write(self, files=None):
        directory = conf_dir(self.name)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        _chown_frr(directory)
        with open(os.path.join(directory, MARKER), 'w') as handle:
            handle.write('made by xdpkit.forwarding (frr module); removed with state=absent\n')
        for name, text in (files or self.files).items():
            path = os.path.join(directory, name)
            with open(path + '.tmp', 'w') as handle:
                handle.write(text)
            os.chmod(path + '.tmp', 0o640)
            _chown_frr(path + '.tmp')
            os.replace(path + '.tmp', path)

    def start(self):
        try:
            os.unlink(os.path.join(run_dir(self.name), 'watchfrr.started'))  # a previous start's
        except FileNotFoundError:
            pass
        done = subprocess.run([os.path.join(FRR_BIN, 'frrinit.sh'), 'start', self.name], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        deadline = time.monotonic() + START_TIMEOUT
        started = os.path.join(run_dir(self.name), 'watchfrr.started')
        while time.monotonic() < deadline:
            running = self.running()
            if running and os.path.exists(started):
                return running
            time.sleep(0.1)
        raise XdpkitError('FRR instance %s did not start within %d s (frrinit.sh: %s; its log: %s)' % (
            self.name, START_TIMEOUT, done.stdout.strip().replace('\n', '; '), _log_tail(self.name)))

    def reload(self):
        done = subprocess.run([os.path.join(FRR_BIN, 'frr-reload.py'), '--reload', '--pathspace', self.name,
                               '--stdout', os.path.join(conf_dir(self.name), 'frr.conf')],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        if done.returncode != 0:
            raise XdpkitError('FRR instance %s did not take its new configuration (frr-reload.py: %s)' % (
                self.name, ' | '.join(done.stdout.strip().splitlines()[-6:])))

    def remove(self):
        stopped = stop_instance(self.name)
        for directory in (conf_dir(self.name), run_dir(self.name)):
            shutil.rmtree(directory, ignore_errors=True)
        return stopped

    def view(self, running):
        return {'name': self.name, 'namespace': self.namespace, 'daemons': dict(sorted((running or {}).items())),
                'config_path': os.path.join(conf_dir(self.name), 'frr.conf'), 'running': bool(running)}


def kernel_prefixes(namespace):
    """Every destination prefix in the main routing table of `namespace`, both families."""
    prefixes = set()
    with iproute(namespace) as ipr:
        for family in (2, 10):
            for msg in dump(ipr.get_routes, family=family, table=254):
                dst = msg.get_attr('RTA_DST')
                if dst is None:
                    dst = '0.0.0.0' if family == 2 else '::'
                prefixes.add(str(ipaddress.ip_network('%s/%d' % (dst, msg['dst_len']), strict=False)))
    return prefixes


class FrrSetManager:
    """FRR instances, present (configuration written, daemons running, routes waited for) or absent."""

    def __init__(self, params, check_mode=False):
        self.state = params['state']
        self.check_mode = check_mode
        self.instances = [FrrInstance(p) for p in params.get('instances') or []]
        names = [i.name for i in self.instances]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise XdpkitError('frr instances named twice: %s' % ', '.join(twice))
        self.timeout = float(60 if params.get('timeout') is None else params['timeout'])
        if self.timeout < 1:
            raise XdpkitError('timeout is %s; give the seconds to wait for the routes, at least 1' % params['timeout'])
        self.waits = []
        for wait in params.get('wait_for_routes') or []:
            prefixes = []
            for text in wait.get('prefixes') or []:
                try:
                    prefixes.append(str(ipaddress.ip_network(text, strict=False)))
                except ValueError:
                    raise XdpkitError("wait_for_routes: %r is not a prefix (e.g. 10.0.0.0/24 or fd00::/64)" % (text,))
            self.waits.append({'namespace': check_netns_name(wait['namespace']),
                               'label': wait.get('label') or wait['namespace'], 'prefixes': prefixes})
        if self.state == 'present':
            missing = [i.name for i in self.instances if i.config is None]
            if missing:
                raise XdpkitError('frr instances %s have no config; state=present needs each one\'s frr.conf text'
                                  % ', '.join(missing))

    def run(self):
        if self.state == 'absent':
            return self._remove()
        if not frr_installed():
            raise MissingDependency('FRR is not installed (no %s/watchfrr or frr-reload.py): %s'
                                    % (FRR_BIN, INSTALL_HINT))
        found = {}
        for instance in self.instances:
            if not netns_exists(instance.namespace):
                raise missing_netns_error(instance.namespace)
            instance.check_ownership()
            found[instance.name] = instance.current_files()
            if found[instance.name] != instance.files:
                _check_config(instance.name, instance.config)  # what runs was checked when it was written
        before, after, views, made = [], [], [], []
        changed = False
        try:
            for instance in self.instances:
                current = found[instance.name]
                running = instance.running()
                if current == instance.files and running:
                    views.append(instance.view(running))
                    continue
                changed = True
                before.append({'name': instance.name, 'running': bool(running), 'daemons': current['daemons'],
                               'frr.conf': current['frr.conf']})
                after.append({'name': instance.name, 'running': True, 'daemons': instance.files['daemons'],
                              'frr.conf': instance.config})
                if self.check_mode:
                    views.append(instance.view(running))
                    continue
                fresh = not instance.exists()
                if running and current['daemons'] == instance.files['daemons']:
                    # The same daemons, a new configuration: FRR's own reload applies the difference
                    # to the running daemons. A restart would also do, but OSPFv3 neighbours of FRR
                    # 8.4 keep the flushed LSAs of a restarted router and ignore its new ones.
                    instance.write()
                    try:
                        instance.reload()
                    except XdpkitError:
                        # What runs is the old configuration: so must the files be, or the next run
                        # would find them as wanted and change nothing.
                        instance.write(current)
                        raise
                    views.append(instance.view(instance.running()))
                    continue
                if running_daemons(instance.name):
                    stop_instance(instance.name)  # other daemons: FRR starts over with them
                instance.write()
                made.append((instance, fresh))
                views.append(instance.view(instance.start()))
        except Exception:
            for instance, fresh in made:
                if fresh:
                    instance.remove()
            raise
        result = {'changed': changed, 'instances': views, 'diff': {'before': before, 'after': after}}
        result['converged_in'] = None if self.check_mode else self._wait_for_routes()
        return result

    def _missing(self):
        missing = []
        for wait in self.waits:
            have = kernel_prefixes(wait['namespace'])
            lacking = [p for p in wait['prefixes'] if p not in have]
            if lacking:
                missing.append((wait, lacking))
        return missing

    def _wait_for_routes(self):
        start = time.monotonic()
        deadline = start + self.timeout
        while True:
            missing = self._missing()
            if not missing:
                return round(time.monotonic() - start, 2)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        text = '; '.join('%s (namespace %s) has no route to %s' % (
            wait['label'], wait['namespace'], ', '.join(lacking)) for wait, lacking in missing)
        first = missing[0][0]['namespace']
        raise XdpkitError('routing did not converge within %d s: %s. FRR is left running to look at it: ip netns '
                          'exec %s vtysh -N %s -c "show ip ospf neighbor" (and its log %s/frr.log); remove the lab '
                          'with state=absent' % (self.timeout, text, first, first, run_dir(first)))

    def _remove(self):
        before, views = [], []
        for instance in self.instances:
            instance.check_ownership()
        for instance in self.instances:
            running = running_daemons(instance.name)
            if not instance.exists() and not running:
                continue
            before.append({'name': instance.name, 'running': bool(running),
                           'frr.conf': _read(os.path.join(conf_dir(instance.name), 'frr.conf'))})
            views.append(instance.name)
            if not self.check_mode:
                instance.remove()
        return {'changed': bool(before), 'instances': [], 'removed': views,
                'diff': {'before': before, 'after': [None for _b in before]}}
