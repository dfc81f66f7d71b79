# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The keeper: keeps what a router caches about its ports equal to what
the kernel says, and vouches for it.

An XDP program cannot ask the kernel for a port's MAC or its effective rp_filter and
accept_local per packet, so xdp_program writes them into the port entry of the program
instance it attaches (pinned in the instance's pin_dir). They drift: `sysctl -w`, `ip link set
... address`, a port renamed, addresses added or removed. The keeper re-reads them for the port
of every router instance on the host (the host
namespace and every named namespace), on every netlink event that may change them and at least
every INTERVAL seconds for what the kernel does not announce (accept_local), and rewrites an
entry that differs. Every write renews the entry's lease (_ports): the router trusts an entry
only until then, so when the keeper is not running (killed, crashed, never started, an older
one that cannot write today's entries) the router hands those frames to the kernel within a
lease, slower but never wrong.

One keeper per host (an flock on LOCK_FILE); it lives in the host's network and mount
namespaces whatever namespace it was started from, and it leaves when no router is left to keep.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import sys
import time

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease, _local_sources, _ownership, _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_pins import PIN_ROOT, pinned_files
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import libc
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute, link_to_dict
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns, list_netns, netns_inode

# Every entry is confirmed each INTERVAL, several times within a lease (_ports.LEASE_SECONDS),
# so a keeper that is busy for a moment never lets one run out.
INTERVAL = 0.25
# A keeper with nothing to keep leaves after this long (a router being replaced is not "none").
IDLE_EXIT_SECONDS = 5.0
# An entry whose port has not run the router for this long is removed (its lease ran out long ago).
ORPHAN_SECONDS = 5.0
# The record and the lock are read by the read-only modules too (_lease).
STATE_DIR, LOCK_FILE, PID_FILE, LOG_FILE = _lease.STATE_DIR, _lease.LOCK_FILE, _lease.PID_FILE, _lease.LOG_FILE
running = _lease.running
EX_TEMPFAIL = 75

# rtnetlink multicast groups whose messages may change a port's entry: links (MAC, name,
# deletion), IPv4 addresses (loose rp_filter on a port without one is strict; the local source
# table), and IPv4 netconf (rp_filter; accept_local is not announced, so the INTERVAL re-read
# finds it); and the local source table's: IPv4 routes and rules (custom local routes and rules).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV4_RULE = 0x80
RTNLGRP_IPV4_NETCONF = 24
EVENT_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE | \
    (1 << (RTNLGRP_IPV4_NETCONF - 1))
# A namespace's addresses, routes and rules are read again on its events, and at least this often.
LOCAL_REFRESH_SECONDS = 2.0
NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000


def keeper_version():
    """What a running keeper must match to be today's: a digest of the code that decides
    (_lease.KEEPER_SOURCES)."""
    version = _lease.code_version()
    if version is None:
        digest = hashlib.sha256()
        for name in _lease.KEEPER_SOURCES:
            digest.update(name.encode())
        version = digest.hexdigest()[:16]
    return version


# -- what there is to keep ---------------------------------------------------------------------
def routers():
    """{pin_dir: {'entry': port entry path, 'prog_id', 'maps_dir'}} of the program instances
    xdp_program pinned (their xdpkit_meta) that hold a port entry."""
    found = {}
    for name in pinned_files(PIN_ROOT):
        pin_dir = os.path.join(PIN_ROOT, name)
        meta = _ownership.read_meta(pin_dir)
        if not meta:
            continue
        entry = _ports.port_entry_in(pin_dir)
        if entry:
            found[pin_dir] = {'entry': entry, 'prog_id': meta['prog_id'], 'maps_dir': meta['maps_dir']}
    return found


def namespaces():
    """The host namespace (None) and every named one, each once (a namespace mounted under two
    names is followed under the first)."""
    seen, names = set(), [None]
    for name in sorted(list_netns()):
        try:
            inode = netns_inode(name)
        except OSError:
            continue
        if inode not in seen:
            seen.add(inode)
            names.append(name)
    return names


def read_ports(namespace):
    """{ifindex: (link dict, XDP prog id or None, has an IPv4 address)} of a namespace."""
    ports = {}
    with iproute(namespace) as ipr:
        for msg in dump(ipr.get_links):
            xdp = msg.get_attr('IFLA_XDP')
            prog_id = None
            if xdp is not None:
                prog_id = xdp.get_attr('IFLA_XDP_DRV_PROG_ID') or xdp.get_attr('IFLA_XDP_SKB_PROG_ID') or \
                    xdp.get_attr('IFLA_XDP_PROG_ID')
            ports[msg['index']] = [link_to_dict(msg), prog_id, False]
        for msg in dump(ipr.get_addr, family=socket.AF_INET):
            if msg['index'] in ports:
                ports[msg['index']][2] = True
    return {ifindex: tuple(value) for ifindex, value in ports.items()}


def describe_change(namespace, name, before, after):
    where = 'the host namespace' if not namespace else "namespace '%s'" % namespace
    if before is None:
        return "port '%s' in %s: %s" % (name, where, ', '.join('%s %s' % (k, after[k]) for k in _ports.FACTS))
    changes = ['%s %s -> %s' % (key, before[key], after[key]) for key in _ports.FACTS if before[key] != after[key]]
    return "port '%s' in %s: %s" % (name, where, ', '.join(changes))


# -- the keeper ---------------------------------------------------------------------------------
class Keeper:
    """One pass (`keep()`) brings every router instance's port entry in line with the kernel and
    renews its lease; `run()` makes passes on events and every interval until told to stop."""

    def __init__(self, interval=INTERVAL, lease_seconds=_ports.LEASE_SECONDS, idle_exit=IDLE_EXIT_SECONDS,
                 log=None):
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.idle_exit = idle_exit
        self.log = log or (lambda text: None)
        self.sockets = {}      # namespace -> netlink socket bound to EVENT_GROUPS
        self.homes = {}        # pin_dir -> the namespace its instance was last found attached in
        self.orphans = {}      # pin_dir -> when its instance was first found attached nowhere
        self.kept = {'ports': 0, 'namespaces': 0, 'routers': 0}
        self.last_change = None  # (time.time(), what) of the last entry rewritten or removed
        self.stopping = False
        self.sticky = {}       # namespace -> full-check bits the kernel never resets (_local_sources.STICKY)
        self.local_views = {}  # namespace -> (time.monotonic(), wanted() of its local sources)
        self.local_tables = {}  # maps_dir -> the local source table last written (to log changes)

    def changed(self, text):
        self.log(text)
        self.last_change = (time.time(), text)

    def keep(self):
        """One pass; returns how many ports it vouched for."""
        found = routers()
        views = {}

        def view(namespace):
            if namespace not in views:
                try:
                    views[namespace] = read_ports(namespace)
                except Exception as exc:  # a namespace removed under us reads as empty
                    self.log('reading namespace %s failed: %s' % (namespace, exc))
                    views[namespace] = {}
            return views[namespace]

        kept, spaces, homes = 0, set(), {}
        for pin_dir, router in sorted(found.items()):
            entry = _ports.read_entry(router['entry'])
            # An entry nobody wrote, or one cleared: xdp_program writes it when it attaches.
            if entry is None:
                self.orphans.pop(pin_dir, None)
                continue
            home = self._home(pin_dir, router['prog_id'], view)
            if home is None:
                self._orphan(pin_dir, router['entry'])
                continue
            self.orphans.pop(pin_dir, None)
            namespace, (link, _prog_id, ipv4_addressed) = home
            try:
                wanted = _ports.wanted_port(namespace, link, ipv4_addressed)
            except Exception as exc:  # renamed or removed between the dump and the read
                self.log('reading port %s: %s' % (link['name'], exc))
                continue
            if _ports.facts(entry) != wanted:
                self.changed(describe_change(namespace, link['name'], _ports.facts(entry), wanted))
            wanted['vouched_until'] = _ports.lease_until(self.lease_seconds)
            try:
                _ports.write_entry(router['entry'], wanted)
            except Exception as exc:  # the pin went with its instance (state=absent)
                self.log('writing port %s: %s' % (link['name'], exc))
                continue
            kept += 1
            spaces.add(namespace)
            homes.setdefault(router['maps_dir'], set()).add(namespace)
        # A router is the instances that share a maps directory, as before the entries were per instance.
        self.kept = {'ports': kept, 'namespaces': len(spaces),
                     'routers': len({router['maps_dir'] for router in found.values()})}
        self._follow(spaces)
        for maps_dir, router_spaces in sorted(homes.items()):
            self._keep_local_sources(maps_dir, router_spaces)
        return kept

    def _local_view(self, namespace):
        """wanted() of a namespace's local sources: read again after its events, or when older
        than LOCAL_REFRESH_SECONDS."""
        cached = self.local_views.get(namespace)
        if cached and time.monotonic() - cached[0] < LOCAL_REFRESH_SECONDS:
            return cached[1]
        read_at = time.monotonic()
        view = _local_sources.wanted(*_local_sources.read_namespace(namespace), sticky=self.sticky.get(namespace, 0))
        # Only while the keeper follows the namespace: what it saw then is what the kernel has.
        if namespace in self.sockets:
            self.sticky[namespace] = self.sticky.get(namespace, 0) | (view['full_check'] & _local_sources.STICKY)
        self.local_views[namespace] = (read_at, view)
        return view

    def _keep_local_sources(self, maps_dir, spaces):
        """The router's local source table, from the namespaces its kept ports live in."""
        paths = _local_sources.tables_in(maps_dir)
        if not paths:
            return
        try:
            table = _local_sources.merge([self._local_view(namespace) for namespace in sorted(spaces, key=str)])
            until = _ports.lease_until(self.lease_seconds)
            _local_sources.write(paths, table, until, _ports.lease_end_in_jiffies(until))
        except Exception as exc:  # a namespace gone under us, a full table: no lease, the full check
            self.log('local source table of %s: %s' % (maps_dir, exc))
            self.local_tables.pop(maps_dir, None)
            return
        before = self.local_tables.get(maps_dir)
        summary = (len(table['entries']), table['full_check'])
        if before != summary:
            text = 'local sources of %s: %d addresses and non-unicast /32 routes; full check: %s' % (
                maps_dir, summary[0], _local_sources.describe(summary[1]))
            # The first fill is what the keeper found, not a change it followed (its status's "last change").
            if before is None:
                self.log(text)
            else:
                self.changed(text)
            self.local_tables[maps_dir] = summary

    def _orphan(self, pin_dir, entry):
        """An instance attached nowhere: its port is gone, runs another program, or its program
        is being replaced right now (xdp_program writes the entry, attaches, then records the
        new program). Its lease is not renewed, so the router stops trusting it; the entry is
        cleared (an array's cannot be removed) once it has stayed that way for ORPHAN_SECONDS,
        and the instance is then left alone until xdp_program writes it again."""
        first = self.orphans.setdefault(pin_dir, time.monotonic())
        if time.monotonic() - first >= ORPHAN_SECONDS:
            _ports.clear_entry(entry)
            self.orphans.pop(pin_dir, None)
            self.homes.pop(pin_dir, None)
            self.changed('the router instance of %s has been attached nowhere for %.0f s (its port gone or '
                         'replaced): entry cleared' % (pin_dir, ORPHAN_SECONDS))

    def _home(self, pin_dir, prog_id, view):
        """(namespace, port view) of the port the instance serves: where a link runs its program.
        The namespace it was found in before is asked first."""
        candidates = namespaces()
        last = self.homes.get(pin_dir, False)
        if last is not False and last in candidates:
            candidates.remove(last)
            candidates.insert(0, last)
        for namespace in candidates:
            for port in view(namespace).values():
                if port[1] == prog_id:
                    self.homes[pin_dir] = namespace
                    return namespace, port
        return None

    def _follow(self, spaces):
        """Event sockets in exactly the namespaces that hold kept ports."""
        for namespace in list(self.sockets):
            if namespace not in spaces:
                self.sockets.pop(namespace).close()
                # Not followed, not known: a namespace of that name later may be another one.
                self.sticky.pop(namespace, None)
                self.local_views.pop(namespace, None)
        for namespace in spaces - set(self.sockets):
            try:
                with in_netns(namespace):
                    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK |
                                         socket.SOCK_CLOEXEC, NETLINK_ROUTE)
                sock.bind((0, EVENT_GROUPS))
            except Exception as exc:
                self.log('following namespace %s failed: %s' % (namespace, exc))
                continue
            self.sockets[namespace] = sock

    def wait(self):
        """Until an event in a followed namespace, or the interval is up."""
        try:
            ready = select.select(list(self.sockets.values()), [], [], self.interval)[0]
        except InterruptedError:
            return
        names = {sock: namespace for namespace, sock in self.sockets.items()}
        for sock in ready:
            namespace = names.get(sock)
            # Anything may have changed the namespace's addresses, routes or rules: read them again.
            self.local_views.pop(namespace, None)
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    bits = _local_sources.event_reasons(data)
                    if bits:
                        self.sticky[namespace] = self.sticky.get(namespace, 0) | bits
            except BlockingIOError:
                pass
            except OSError as exc:
                # ENOBUFS: events were lost, among them perhaps one that set a sticky flag.
                # The flags the kernel keeps cannot be read back; the dump finds what is still
                # there, and the /32 entries cover what is not (see _local_sources).
                self.log('events of namespace %s: %s' % (namespace, exc))
        if ready:
            # Changes come in bursts (a port re-created is several messages): take them together.
            time.sleep(0.01)

    def status_line(self):
        """What it keeps, for `systemctl status`."""
        def count(number, noun):
            return '%d %s%s' % (number, noun, '' if number == 1 else 's')
        if self.last_change:
            last = '%s %s' % (time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.last_change[0])),
                              self.last_change[1])
        else:
            last = 'none since it started'
        return 'keeping %s of %s in %s; last change: %s' % (
            count(self.kept['ports'], 'port'), count(self.kept['routers'], 'router'),
            count(self.kept['namespaces'], 'namespace'), last)

    def run(self, status=None):
        idle_since = None
        while not self.stopping:
            kept = self.keep()
            if status:
                status(self.kept)
            # Pins left of a router that is gone keep nobody here: only ports on a router do.
            if kept:
                idle_since = None
            elif self.idle_exit is not None:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= self.idle_exit:
                    self.log('no router left to keep; leaving')
                    break
            self.wait()
        for sock in self.sockets.values():
            sock.close()
        self.sockets = {}


# -- a service manager's view --------------------------------------------------------------------
class Notifier:
    """sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET (a path, or an abstract
    address written with a leading '@'), so that a Type=notify unit is started once the first pass
    vouched for every port, and `systemctl status` shows what the keeper keeps."""

    def __init__(self, address, log=None):
        self.address = '\0' + address[1:] if address.startswith('@') else address
        self.log = log or (lambda text: None)
        self.ready = False
        self.last = None

    @classmethod
    def from_env(cls, log=None):
        address = os.environ.get('NOTIFY_SOCKET')
        return cls(address, log) if address else None

    def send(self, text):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(text.encode(), self.address)
        except OSError as exc:
            self.log('telling the service manager %r failed: %s' % (text, exc))

    def status(self, line):
        """READY=1 with the first status; later ones only when the line changed."""
        if line == self.last and self.ready:
            return
        self.send(('STATUS=%s' % line) + ('' if self.ready else '\nREADY=1'))
        self.ready, self.last = True, line

    def stopping(self):
        self.send('STOPPING=1')


# -- one per host -------------------------------------------------------------------------------
def _host_process():
    """The nearest process, this one or an ancestor, whose network namespace is not a named one
    (/run/netns): a module the netns connection runs inside a lab namespace (nsenter, and a
    private mount namespace) was started from one in the host's namespaces."""
    named = set()
    for name in list_netns():
        try:
            named.add(netns_inode(name))
        except OSError:
            pass
    pid = os.getpid()
    while pid > 1:
        try:
            if os.stat('/proc/%d/ns/net' % pid).st_ino not in named:
                return pid
            with open('/proc/%d/status' % pid) as handle:
                pid = int([line.split()[1] for line in handle if line.startswith('PPid:')][0])
        except (OSError, IndexError, ValueError):
            break
    return os.getpid()


def _host_namespace_fds():
    """{'net': fd, 'mnt': fd} of _host_process()'s namespaces where they differ from this
    process's, opened before the keeper is forked: the detached keeper's parent is gone, and
    with it the way back up the process tree."""
    pid = _host_process()
    fds = {}
    if pid == os.getpid():
        return fds
    for kind in ('net', 'mnt'):
        if os.stat('/proc/%d/ns/%s' % (pid, kind)).st_ino != os.stat('/proc/self/ns/%s' % kind).st_ino:
            fds[kind] = os.open('/proc/%d/ns/%s' % (pid, kind), os.O_RDONLY | os.O_CLOEXEC)
    return fds


def _enter(fds):
    """The keeper follows every namespace from the host's, whichever namespace the module that
    started it ran in (the netns connection runs modules inside a lab namespace)."""
    for kind, flag in (('net', CLONE_NEWNET), ('mnt', CLONE_NEWNS)):
        if kind in fds and libc().setns(fds[kind], flag) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "entering the host's %s namespace: %s" % (kind, os.strerror(err)))


def _write_record(record):
    tmp = '%s.%d' % (PID_FILE, os.getpid())
    with open(tmp, 'w') as handle:
        json.dump(record, handle)
    os.rename(tmp, PID_FILE)


def serve(log=None, status=None, interval=INTERVAL, lease_seconds=_ports.LEASE_SECONDS, idle_exit=IDLE_EXIT_SECONDS):
    """Be this host's keeper until SIGTERM / SIGINT, or until nothing is left to keep. Returns
    the exit status: 0, or EX_TEMPFAIL when another keeper holds the lock."""
    os.makedirs(STATE_DIR, exist_ok=True)
    lock = open(LOCK_FILE, 'a')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return EX_TEMPFAIL
    keeper = Keeper(interval=interval, lease_seconds=lease_seconds, idle_exit=idle_exit, log=log)

    def stop(_signum, _frame):
        keeper.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    notifier = Notifier.from_env(log)

    def report(kept):
        if notifier:
            notifier.status(keeper.status_line())
        if status:
            status(kept)

    _write_record({'pid': os.getpid(), 'version': keeper_version(), 'started': time.time()})
    if log:
        log('keeping the port entries of every router on this host (version %s, lease %.1f s)' % (
            keeper_version(), lease_seconds))
    try:
        keeper.run(status=report)
    finally:
        if notifier:
            notifier.stopping()
        try:
            with open(PID_FILE) as handle:
                if json.load(handle).get('pid') == os.getpid():
                    os.unlink(PID_FILE)
        except (OSError, ValueError):
            pass
        lock.close()
    return 0


def spawn(log_file=LOG_FILE):
    """Start a keeper in the background, detached from the caller (a module, whose output
    Ansible reads until it is closed), in the host's namespaces. Returns its pid once its first
    pass is done, or raises."""
    os.makedirs(STATE_DIR, exist_ok=True)
    host = _host_namespace_fds()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.setsid()
            if os.fork():
                os._exit(0)
            _enter(host)
            os.chdir('/')
            null = os.open(os.devnull, os.O_RDWR)
            out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, write_end)
            os.closerange(write_end + 1, 65536)
            sys.stdout = sys.stderr = os.fdopen(1, 'w', buffering=1)
            # A service manager that ran the caller is not this keeper's.
            os.environ.pop('NOTIFY_SOCKET', None)
            ready = [write_end]

            def started(_kept):
                if ready:
                    os.write(ready[0], b'%d\n' % os.getpid())
                    os.close(ready.pop())

            code = serve(log=_logger(sys.stdout), status=started)
        except BaseException as exc:  # the background keeper's own end; its log says why
            try:
                sys.stderr.write('keeper: %s\n' % exc)
                sys.stderr.flush()
            except Exception:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    for fd in host.values():
        os.close(fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as handle:
        answer = handle.read().strip()
    if answer.isdigit():
        return int(answer)
    current = running()
    if current:
        return current['pid']
    raise OSError(errno.ESRCH, 'the keeper did not start; see %s' % log_file)


def stop(timeout=5.0):
    """Stop the running keeper by its pid (SIGTERM, then SIGKILL). True when one was running."""
    current = running()
    if not current:
        return False
    os.kill(current['pid'], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running() is None:
            return True
        time.sleep(0.05)
    os.kill(current['pid'], signal.SIGKILL)
    return True


def ensure():
    """A keeper of today's version runs: None when one already did, else the new one's pid
    (an older one is stopped first; the leases bridge the moment between).

    One caller at a time: the router role attaches in many namespaces at once (forks), and
    callers that all found an older keeper would each stop it and start one, the later ones
    failing on the new keeper's lock before its record is there."""
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(os.path.join(STATE_DIR, 'keeper-ensure.lock'), 'w') as serial:
        fcntl.flock(serial, fcntl.LOCK_EX)
        current = running()
        if current and current.get('version') == keeper_version():
            return None
        if current:
            stop()
        return spawn()


def _logger(stream):
    def log(text):
        stream.write('%s keeper: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), text))
        stream.flush()
    return log


def main(argv=None):
    """`python3 -m ...module_utils._keeper`: the keeper in the foreground (a service manager's way)."""
    import argparse
    parser = argparse.ArgumentParser(prog='xdpkit-keeper', description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--interval', type=float, default=INTERVAL, help='seconds between full re-reads')
    parser.add_argument('--lease', type=float, default=_ports.LEASE_SECONDS, help='seconds an entry is vouched for')
    parser.add_argument('--stay', action='store_true', help='keep running when there is no router to keep')
    args = parser.parse_args(argv)
    code = serve(log=_logger(sys.stderr), interval=args.interval, lease_seconds=args.lease,
                 idle_exit=None if args.stay else IDLE_EXIT_SECONDS)
    if code == EX_TEMPFAIL:
        sys.stderr.write('another keeper runs on this host (%s)\n' % LOCK_FILE)
    return code


if __name__ == '__main__':
    raise SystemExit(main())
