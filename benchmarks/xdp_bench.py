"""Forwarding rate of each XDP mode against the kernel, side by side, and control-plane cost.

    scripts/benchmark                          # the full run, results in benchmarks/results/
    scripts/benchmark --packets 2000 --runs 1 --sizes 64 --control-plane quick --out /tmp/b

The test bed is built with the collection's own playbook and modules: a generator namespace
and a sink namespace, each joined to the host by a veth pair; the host forwards between them.

    [gen ns: g0] ==veth== [host: PREFIX-g | forwarder | PREFIX-s] ==veth== [sink ns: s0]

The generator is bpf/xdp_trafficgen.c run by BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES in
the generator namespace: real frames, transmitted with XDP_TX out of g0. The sink is
bpf/xdp_sink.c on s0, which counts and drops. Delivered = the sink's count; loss = sent -
delivered. Rates are delivered packets over the generator's wall time. Absolute numbers on
a shared VM are noisy: compare the modes within one run.

Runs as root under the project venv's Python (which sees Debian's bcc and pyroute2).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, '.collections'))
# The tests' frame builders (and the generator's defines) are not part of the shipped collection.
sys.path.insert(0, os.path.join(ROOT, 'tests'))

import packets  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_source  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _compile  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _local_sources  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._lease import PORT_ENTRY  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (  # noqa: E402
    find_stats_map,
    interface_program,
    read_counters,
)

# Modes run interleaved (each run visits every mode in turn), so a slow minute of the VM
# touches every mode alike; each family's router is compared with the kernel of that family.
MODES = ('kernel4', 'kernel6', 'hardcoded', 'map', 'fib4', 'fib6', 'limit')
# One CPU for the generator and the whole forwarding path: nothing is lost, so each mode's
# per-packet cost is 1/delivered - 1/limit. The router before parity (benchmarks/baseline/)
# runs beside the current one, so the cost of parity is measured on the same run.
# *_strict: rp_filter=1 on the forwarding port, as on a real router; Linux then validates every
# source with a second FIB lookup, as the router always does.
# fib4_floor: the least a bpf_fib_lookup() router can do (benchmarks/baseline/xdp_router_floor.c),
# so kernel4 / fib4_floor is the most any such router can reach here.
# fib4 runs with rp_filter 0 and accept_local 0 (Linux's default), where Linux checks only
# whether the source is one of its addresses and the router does the same (the local table);
# fib4_floor_addr: the floor plus that address check, the least such a router can cost.
# *_nocount: the router built with XDPKIT_REASON_COUNTERS=0 (no reason counters), beside the
# counting build in every run: what counting costs (COUNTING_FRAMES, by BPF_PROG_RUN).
# With --previous-router, *_prev modes run that source (another revision's router) beside.
ONE_CPU_MODES = ('limit', 'kernel4', 'kernel6', 'fib4', 'fib6', 'fib4_before', 'fib6_before', 'kernel4_strict',
                 'fib4_strict', 'fib4_floor', 'fib4_floor_addr', 'fib4_nocount', 'fib6_nocount')
# The frames the counting cost is measured on: forwarded (IPv4, IPv6) and handed over with a
# counted reason (IPv4 TTL 1: time exceeded is the kernel's). Measured in every run of each
# router mode, counting or not, so that both builds see the same minutes of the VM.
COUNTING_FRAMES = ('forwarded4', 'forwarded6', 'handed_over4')
COUNTING_TARGET_NS = 5
PREVIOUS_MODES = ('fib4_prev', 'fib4_strict_prev')
BASELINE_ROUTER = os.path.join(HERE, 'baseline', 'xdp_router.c')
FLOOR_ROUTER = os.path.join(HERE, 'baseline', 'xdp_router_floor.c')
FLOOR_ADDR_ROUTER = os.path.join(HERE, 'baseline', 'xdp_router_floor_addr.c')
GEN_MAC = '02:bb:00:00:01:02'
HOST_G_MAC = '02:bb:00:00:01:01'
HOST_S_MAC = '02:bb:00:00:02:01'
# The sink's MAC is the forwarding port's own (two links of different segments may share one):
# BPF_PROG_RUN repeats on one buffer, and the router writes the next hop's MAC into it, which
# must again be the port's own address for the next repetition to be routed (PACKET_HOST).
SINK_MAC = HOST_G_MAC
NET4 = ('10.201.1', '10.201.2')
NET6 = ('fd00:201:1', 'fd00:201:2')
PROGRAMS = ('xdp_pass', 'xdp_redirect', 'xdp_redirect_map', 'xdp_router', 'xdp_sink', 'xdp_trafficgen')


def log(*args):
    if sys.stderr.isatty():
        sys.stderr.write('\r\033[K')  # over a progress line
    print('[bench]', *args, file=sys.stderr, flush=True)


def progress(done, total, what):
    """Where a long run is: one line redrawn in place on a terminal, plain lines otherwise."""
    text = '[bench] %3d%% (%d/%d) %s' % (100 * done // max(total, 1), done, total, what)
    if sys.stderr.isatty():
        sys.stderr.write('\r\033[K' + text)
        sys.stderr.flush()
    else:
        print(text, file=sys.stderr, flush=True)


# -- Ansible: the collection's own playbook and modules ----------------------------------------
def ansible_env():
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               PATH=os.path.join(ROOT, '.venv', 'bin') + os.pathsep + env.get('PATH', ''))
    return env


def module(name, **args):
    """Run xdpkit.forwarding.NAME on localhost; raise with Ansible's output on failure."""
    proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible'), 'localhost', '-m',
                           'xdpkit.forwarding.' + name, '-a', json.dumps(args)],
                          cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = proc.stdout[-3000:] + proc.stderr[-2000:]
        raise RuntimeError('xdpkit.forwarding.%s %s failed:\n%s' % (name, args, output))


def playbook(path, extra_vars, label, compiles=None):
    """Seconds the playbook took; with `compiles` (a dict), also its bcc compiles and their seconds."""
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump(extra_vars, handle)
    report = handle.name + '.compiles'
    env = ansible_env()
    env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, 'benchmarks', 'callback_plugins'),
               ANSIBLE_CALLBACKS_ENABLED='compile_count', XDPKIT_COMPILE_REPORT=report)
    try:
        start = time.perf_counter()
        proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), path, '-e', '@' + handle.name],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if compiles is not None and os.path.exists(report):
            with open(report) as stream:
                compiles.update(json.load(stream))
    finally:
        for leftover in (handle.name, report):
            if os.path.exists(leftover):
                os.unlink(leftover)
    if proc.returncode != 0:
        raise RuntimeError('%s failed:\n%s%s' % (label, proc.stdout[-4000:], proc.stderr[-2000:]))
    return elapsed


# -- the test bed ------------------------------------------------------------------------------
class Bed:
    def __init__(self, prefix, previous_router=None):
        self.prefix = prefix
        self.nocount_dir = None
        self.previous_router = previous_router
        self.gen_ns, self.sink_ns = prefix + '-gen', prefix + '-sink'
        self.port_g, self.port_s = prefix + '-g', prefix + '-s'
        self.maps_dir = '/sys/fs/bpf/xdpkit/%s-maps' % prefix
        self.previous_maps_dir = '/sys/fs/bpf/xdpkit/%s-prev-maps' % prefix

    def topology(self, state):
        return {
            'state': state, 'lab_ping_checks': [],
            'lab_topology_namespaces': [self.gen_ns, self.sink_ns],
            'lab_topology_links': [
                {'name': self.port_g, 'mac': HOST_G_MAC, 'addresses': [NET4[0] + '.1/24', NET6[0] + '::1/64'],
                 'peer': {'name': 'g0', 'namespace': self.gen_ns, 'mac': GEN_MAC,
                          'addresses': [NET4[0] + '.2/24', NET6[0] + '::2/64']}},
                {'name': self.port_s, 'mac': HOST_S_MAC, 'addresses': [NET4[1] + '.1/24', NET6[1] + '::1/64'],
                 'peer': {'name': 's0', 'namespace': self.sink_ns, 'mac': SINK_MAC,
                          'addresses': [NET4[1] + '.2/24', NET6[1] + '::2/64']}},
            ],
            'lab_topology_routes': [
                {'namespace': self.gen_ns, 'dest': 'default', 'gateway': NET4[0] + '.1'},
                {'namespace': self.gen_ns, 'dest': 'default', 'gateway': NET6[0] + '::1'},
            ],
            # The sink drops ARP and ND too: without permanent entries the host's neighbours
            # would stay FAILED and the FIB lookup would send every frame to the kernel.
            'lab_topology_neighbours': [
                {'address': NET4[1] + '.2', 'mac': SINK_MAC, 'device': self.port_s},
                {'address': NET6[1] + '::2', 'mac': SINK_MAC, 'device': self.port_s},
            ],
            'lab_topology_sysctls': [
                {'name': 'net.ipv4.conf.all.forwarding', 'value': '1'},
                {'name': 'net.ipv6.conf.all.forwarding', 'value': '1'},
            ],
        }

    def up(self):
        playbook('playbooks/lab.yml', self.topology('present'), 'building the test bed')
        with iproute() as ipr:
            self.ifindex_g = get_link(ipr, self.port_g)['ifindex']
            self.ifindex_s = get_link(ipr, self.port_s)['ifindex']
        with iproute(self.gen_ns) as ipr:
            self.ifindex_g0 = get_link(ipr, 'g0')['ifindex']
        module('xdp_program', interface='s0', namespace=self.sink_ns, program='xdp_sink')

    def down(self):
        for args in ({'interface': self.port_g, 'maps_dir': self.maps_dir},
                     {'interface': 's0', 'namespace': self.sink_ns}):
            try:
                module('xdp_program', state='absent', **args)
            except RuntimeError as exc:
                log('teardown:', exc)
        playbook('playbooks/lab.yml', self.topology('absent'), 'removing the test bed')
        _bpf_pins.remove_pins(self.maps_dir)
        _bpf_pins.remove_pins(self.previous_maps_dir)
        if self.nocount_dir:
            shutil.rmtree(self.nocount_dir, ignore_errors=True)

    def nocount_router(self):
        """The router's own source with XDPKIT_REASON_COUNTERS=0: xdp_program refuses XDPKIT_*
        defines, so the define goes in front of bpf/xdp_router.c in a file beside copies of it
        and its headers (the same text as -DXDPKIT_REASON_COUNTERS=0)."""
        if not self.nocount_dir:
            self.nocount_dir = tempfile.mkdtemp(prefix='xdpkit-nocount-')
            for name in os.listdir(os.path.join(ROOT, 'bpf')):
                if name == 'xdp_router.c' or name.endswith('.h'):
                    shutil.copy(os.path.join(ROOT, 'bpf', name), self.nocount_dir)
            with open(os.path.join(self.nocount_dir, 'xdp_router_nocount.c'), 'w') as handle:
                handle.write('/* The benchmark\'s baseline: xdp_router without reason counters. */\n'
                             '#define XDPKIT_REASON_COUNTERS 0\n#include "xdp_router.c"\n')
        return os.path.join(self.nocount_dir, 'xdp_router_nocount.c')

    def configure(self, mode):
        """Put mode's forwarder on the host port facing the generator."""
        port = {'interface': self.port_g, 'maps_dir': self.maps_dir}
        # The port is the bench's own: its rp_filter can change without touching the host's.
        with open('/proc/sys/net/ipv4/conf/%s/rp_filter' % self.port_g, 'w') as handle:
            handle.write('1' if '_strict' in mode else '0')
        original, mode = mode, mode.replace('_strict', '')
        if mode.startswith('kernel'):
            module('xdp_program', program='xdp_pass', **port)
        elif mode == 'limit':
            module('xdp_program', program='xdp_sink', **port)
        elif mode == 'hardcoded':
            module('xdp_program', program='xdp_redirect',
                   defines={'DEST_IFINDEX': self.ifindex_s, 'DEST_MAC': SINK_MAC}, **port)
        elif mode == 'map':
            module('xdp_program', program='xdp_redirect_map', **port)
            module('xdp_map', path=self.maps_dir + '/tx_ports', exclusive=True,
                   entries=[{'key': self.port_g, 'value': self.port_s}])
            module('xdp_map', path=self.maps_dir + '/mac_table', exclusive=True,
                   entries=[{'key': GEN_MAC, 'value': SINK_MAC}])
        else:
            # The host's own netfilter state is part of what is measured, not a reason to stop.
            if mode.endswith('_before'):
                module('xdp_program', src=BASELINE_ROUTER, function='xdp_router', netfilter='bypass', **port)
            elif mode.endswith('_prev'):
                port['maps_dir'] = self.previous_maps_dir
                module('xdp_program', src=self.previous_router, function='xdp_router', netfilter='bypass', **port)
                self.fill_previous_tables('_strict' in original)
            elif mode.endswith('_floor_addr'):
                module('xdp_program', src=FLOOR_ADDR_ROUTER, function='xdp_router_floor_addr', netfilter='bypass',
                       **port)
            elif mode.endswith('_floor'):
                module('xdp_program', src=FLOOR_ROUTER, function='xdp_router_floor', netfilter='bypass', **port)
            elif mode.endswith('_nocount'):
                module('xdp_program', src=self.nocount_router(), function='xdp_router', netfilter='bypass', **port)
            else:
                module('xdp_program', program='xdp_router', netfilter='bypass', **port)
            module('xdp_map', path=port['maps_dir'] + '/tx_ports', exclusive=True,
                   entries=[{'key': self.port_s, 'value': self.port_s}])

    def fill_previous_tables(self, strict):
        """A previous router of a release before the per-instance port entry keeps its port facts in
        a hash shared through its maps directory (its own layout), which today's xdp_program and
        keeper do not write: the bench writes them, and its local source table, with leases that
        never run out (a lease costs the same whatever its end). Its own maps directory keeps them
        apart from today's router's tables of another layout."""
        path = os.path.join(self.previous_maps_dir, 'ports')
        if not os.path.exists(path):
            return
        forever = (1 << 64) - 1
        fd = sysbpf.obj_get(path)
        try:
            size = sysbpf.map_info(fd)['value_size']
            value = struct.pack('=6sBBQ', bytes.fromhex(HOST_G_MAC.replace(':', '')), int(strict), 0, forever)
            sysbpf.map_update(fd, struct.pack('=I', self.ifindex_g), value + b'\xff' * (size - len(value)))
        finally:
            os.close(fd)
        addrs, state = (os.path.join(self.previous_maps_dir, name) for name in ('local_addrs', 'local_state'))
        if not os.path.exists(state):
            return
        table = _local_sources.wanted(*_local_sources.read_namespace(None))
        fd = sysbpf.obj_get(addrs)
        try:
            for address, kind in table['entries'].items():
                sysbpf.map_update(fd, socket.inet_aton(address), struct.pack('=I', kind))
        finally:
            os.close(fd)
        fd = sysbpf.obj_get(state)
        try:
            size = sysbpf.map_info(fd)['value_size']
            value = struct.pack('=QII', forever, table['full_check'], len(table['entries']))
            sysbpf.map_update(fd, struct.pack('=I', 0), value + b'\xff' * (size - len(value)))
        finally:
            os.close(fd)

    def counter(self, namespace, interface, action):
        program = interface_program(namespace, interface)
        fd = find_stats_map(program['id'])
        try:
            return read_counters(fd)[action]['packets']
        finally:
            os.close(fd)


# -- host settings -----------------------------------------------------------------------------
def _proc_sys(path):
    try:
        with open('/proc/sys/' + path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _gro(namespace, interface):
    from pyroute2 import Ethtool
    with in_netns(namespace):
        ethtool = Ethtool()
        try:
            return ethtool.get_features(interface).features['rx-gro'].enable
        except Exception as exc:  # the record says what could not be read rather than failing the run
            return 'unknown (%s)' % exc
        finally:
            ethtool.close()


def host_settings(bed):
    """The settings that change what the kernel path costs, as they are when the run starts:
    source validation, netfilter (rules and conntrack) and GRO on the forwarding path."""
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netfilter import (
        bypassed_chains,
        describe_chain,
    )
    try:
        chains = [describe_chain(chain) for chain in bypassed_chains(None)]
    except Exception as exc:  # recorded, not fatal
        chains = ['unknown (%s)' % exc]
    return {
        'rp_filter': {name: _proc_sys('net/ipv4/conf/%s/rp_filter' % name)
                      for name in ('all', 'default', bed.port_g, bed.port_s)},
        'rp_filter_note': 'the *_strict modes set rp_filter=1 on %s, the others 0' % bed.port_g,
        'netfilter_chains_with_rules': chains,
        'conntrack': {'loaded': _proc_sys('net/netfilter/nf_conntrack_count') is not None,
                      'entries': _proc_sys('net/netfilter/nf_conntrack_count')},
        'gro': {bed.port_g: _gro(None, bed.port_g), bed.port_s: _gro(None, bed.port_s),
                's0 (sink)': _gro(bed.sink_ns, 's0')},
    }


def describe_settings(settings):
    rp = settings['rp_filter']
    conntrack = settings['conntrack']
    return 'rp_filter %s (%s); netfilter chains with rules: %s; conntrack %s; GRO %s' % (
        ', '.join('%s=%s' % kv for kv in rp.items()), settings['rp_filter_note'],
        ', '.join(settings['netfilter_chains_with_rules']) or 'none',
        'loaded, %s entries' % conntrack['entries'] if conntrack['loaded'] else 'not loaded',
        ', '.join('%s %s' % (name, 'on' if on is True else 'off' if on is False else on)
                  for name, on in settings['gro'].items()))


# -- CPU placement -----------------------------------------------------------------------------
def write_sysfs_in_netns(namespace, relative, value):
    """/sys/class/net shows the namespace sysfs was mounted in: a child in its own mount
    namespace enters the network namespace, mounts a fresh sysfs and writes there."""
    import ctypes
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
                os._exit(2)
            libc.mount(b'none', b'/', None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
            fd = os.open('/run/netns/' + namespace, os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:
                os._exit(3)
            if libc.mount(b'sysfs', b'/sys', b'sysfs', 0, None) != 0:
                os._exit(4)
            with open('/sys/' + relative, 'w') as handle:
                handle.write(value)
            code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


def place_cpus():
    """Generator on the first CPU; NAPI work, once threaded, on the second."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    return {'cpus': len(cpus), 'generator_cpu': cpus[0], 'threaded_napi': False,
            'napi_cpu': cpus[1] if len(cpus) > 1 else None}


def unthread_napi(bed):
    """NAPI back in softirq on the CPU that sent the frame: the one-CPU measurement."""
    try:
        with open('/sys/class/net/%s/threaded' % bed.port_g, 'w') as handle:
            handle.write('0')
    except OSError as exc:
        log('threaded NAPI could not be turned off on %s: %s' % (bed.port_g, exc))
    write_sysfs_in_netns(bed.sink_ns, 'class/net/s0/threaded', '0')


def thread_napi(bed, how):
    """Threaded NAPI for the forwarding port and the sink, so the forwarder and the sink run
    in kthreads the scheduler can put on another CPU than the generator. A veth has NAPI only
    while an XDP program is attached, so this follows every configure()."""
    if how['napi_cpu'] is None:
        return
    try:
        with open('/sys/class/net/%s/threaded' % bed.port_g, 'w') as handle:
            handle.write('1')
    except OSError as exc:
        log('threaded NAPI not available on %s: %s' % (bed.port_g, exc))
        return
    sink = write_sysfs_in_netns(bed.sink_ns, 'class/net/s0/threaded', '1')
    how['threaded_napi'] = True if sink else 'forwarding port only'
    how['napi_threads'] = pin_napi_threads(bed, how['napi_cpu'])


def pin_napi_threads(bed, cpu):
    """NAPI kthreads appear when a program is attached; pin the current ones to `cpu`."""
    pinned = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/comm' % pid) as handle:
                comm = handle.read().strip()
        except OSError:
            continue
        if comm.startswith('napi/%s-' % bed.port_g[:10]) or comm.startswith('napi/s0-'):
            try:
                os.sched_setaffinity(int(pid), {cpu})
                pinned.append(comm)
            except OSError:
                pass
    return pinned


# -- traffic -----------------------------------------------------------------------------------
def generator_addresses(family):
    """(source, destination) of the generator's frames."""
    if family == 4:
        return NET4[0] + '.2', NET4[1] + '.2'
    return NET6[0] + '::2', NET6[1] + '::2'


class Generator:
    def __init__(self, bed, family):
        self.bed = bed
        defines = packets.generator_defines(GEN_MAC, HOST_G_MAC, *generator_addresses(family))
        pin_dir = '/sys/fs/bpf/xdpkit/%s-gen%d' % (bed.prefix, family)
        self.pin_dir = pin_dir
        os.makedirs(pin_dir, exist_ok=True)
        sources = _bpf_source.read_source_tree(os.path.join(ROOT, 'bpf', 'xdp_trafficgen.c'))
        text = _bpf_source.flatten_sources('xdp_trafficgen.c', sources)
        cflags = ['-DXDPKIT_PIN_DIR="%s"' % pin_dir] + _bpf_source.define_flags(defines)
        self.bpf, self.fn = _compile.compile_and_load(text, cflags, 'xdp_trafficgen', 'xdp_trafficgen.c')

    def send(self, size, packets):
        """Transmit `packets` frames of `size` bytes from g0; return the wall time."""
        frame = bytes(size)
        start = time.perf_counter()
        with in_netns(self.bed.gen_ns):
            sysbpf.prog_test_run(self.fn.fd, frame, repeat=packets, ingress_ifindex=self.bed.ifindex_g0,
                                 flags=sysbpf.BPF_F_TEST_XDP_LIVE_FRAMES)
        return time.perf_counter() - start

    def close(self):
        self.bpf.cleanup()
        _bpf_pins.remove_pins(self.pin_dir)


def settle(read, timeout=2.0):
    """The last frames are still in flight when the generator returns: wait for the count."""
    last, stable, deadline = read(), 0, time.monotonic() + timeout
    while stable < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
        now = read()
        stable = stable + 1 if now == last else 0
        last = now
    return last


def measure(bed, generator, mode, size, packets, min_seconds=0.0):
    """One point: bursts of `packets` frames until the generator has sent for at least
    `min_seconds`, so that a scheduler hiccup is a small part of any point."""
    # The limit is counted where the generator's frames are dropped, the rest at the sink.
    where = (None, bed.port_g) if mode == 'limit' else (bed.sink_ns, 's0')

    def read():
        return bed.counter(where[0], where[1], 'XDP_DROP')

    before = read()
    elapsed, sent = 0.0, 0
    while True:
        elapsed += generator.send(size, packets)
        sent += packets
        if elapsed >= min_seconds:
            break
    delivered = settle(read) - before
    return {'pps': delivered / elapsed, 'delivered': delivered, 'sent': sent, 'lost': sent - delivered,
            'seconds': elapsed}


def one_cpu_costs(bed, generators, packets, runs, cost_repeat, min_seconds):
    """Delivered Mpps at 64 bytes with everything on the generator's CPU, modes interleaved
    run by run; per-packet cost of each forwarding path beyond the generator's own."""
    modes = one_cpu_modes(bed)
    samples = {mode: [] for mode in modes}
    counting = {build: {frame: [] for frame in COUNTING_FRAMES} for build in ('counting', 'without')}
    cost = {}
    for run in range(runs):
        for mode in modes:
            bed.configure(mode)
            unthread_napi(bed)
            generator = generators[6 if '6' in mode else 4]
            if mode in ('fib4', 'fib6', 'fib4_nocount', 'fib6_nocount'):
                build = counting['without' if mode.endswith('_nocount') else 'counting']
                for frame in COUNTING_FRAMES:
                    build[frame].append(program_cost(bed, frame, cost_repeat, ttl=1 if 'handed' in frame else 255))
            if run == 0:
                measure(bed, generator, mode, 64, min(packets, 10000))
                if mode.startswith('fib'):
                    cost[mode] = program_cost(bed, mode.replace('_strict', ''), cost_repeat)
                if mode == 'fib4':
                    cost['fib4_without_source_check'] = without_source_check(bed, cost_repeat)
            samples[mode].append(measure(bed, generator, mode, 64, packets, min_seconds))
    result = {'modes': {}, 'cost': cost, 'counting': counting_cost(counting)}
    for mode, points in samples.items():
        mpps = statistics.median(p['pps'] for p in points) / 1e6
        loss = statistics.median(p['lost'] / p['sent'] for p in points)
        result['modes'][mode] = {'median_mpps': mpps, 'median_loss': loss, 'samples': points}
    limit = result['modes']['limit']['median_mpps']
    for mode, point in result['modes'].items():
        if mode != 'limit' and point['median_mpps'] > 0:
            point['path_ns'] = 1e3 / point['median_mpps'] - 1e3 / limit
    ratios = {}
    for kernel_mode, routers in (('kernel4', ('fib4', 'fib4_before', 'fib4_floor', 'fib4_floor_addr', 'fib4_prev')),
                                 ('kernel6', ('fib6', 'fib6_before')),
                                 ('kernel4_strict', ('fib4_strict', 'fib4_strict_prev')),
                                 # The router over the least a router with Linux's address check costs.
                                 ('fib4', ('fib4_floor_addr',)), ('fib4_strict', ('fib4_strict_prev',)),
                                 ('fib4_prev', ('fib4',))):
        kernel = result['modes'].get(kernel_mode, {}).get('path_ns')
        for router in routers:
            path = result['modes'].get(router, {}).get('path_ns')
            if kernel and path and path > 0:
                ratios['%s_over_%s' % (kernel_mode, router)] = kernel / path
    result['ratios'] = ratios
    return result


def counting_cost(samples):
    """What the reason counters cost per packet: median BPF_PROG_RUN ns of the counting build
    minus that of the build without, per frame; `ns` is the larger of the forwarded ones."""
    result = {}
    for frame in COUNTING_FRAMES:
        medians = {build: statistics.median(s['ns_per_packet'] for s in samples[build][frame])
                   for build in ('counting', 'without')}
        result[frame] = dict(medians, ns=medians['counting'] - medians['without'], samples=len(
            samples['counting'][frame]), actions=sorted({a for build in samples.values() for s in build[frame]
                                                         for a in s['actions']}),
            ns_per_packet={build: [s['ns_per_packet'] for s in samples[build][frame]] for build in samples})
    result['forwarded_ns'] = max(result['forwarded4']['ns'], result['forwarded6']['ns'])
    result['handed_over_ns'] = result['handed_over4']['ns']
    result['summary'] = describe_counting(result)
    log(result['summary'])
    return result


def describe_counting(counting):
    return ('counting costs %.1f ns per packet (forwarded) / %.1f ns (handed over), target <= %d ns '
            '(forwarded IPv4 %.1f, IPv6 %.1f; handed over: IPv4 TTL 1; BPF_PROG_RUN, median of %d samples '
            'of each build, interleaved)' % (
                counting['forwarded_ns'], counting['handed_over_ns'], COUNTING_TARGET_NS,
                counting['forwarded4']['ns'], counting['forwarded6']['ns'], counting['forwarded4']['samples']))


def configuration(mode):
    """The forwarding port's IPv4 source-check settings a mode runs with, for the tables."""
    if mode == 'limit' or '6' in mode:
        return '-'
    return 'rp_filter %d, accept_local 0' % (1 if '_strict' in mode else 0)


def one_cpu_modes(bed):
    return ONE_CPU_MODES + (PREVIOUS_MODES if bed.previous_router else ())


def without_source_check(bed, repeat):
    """The router's ns/packet with IPv4 source validation off (rp_filter 0, accept_local 1 on its
    port, the one setting under which Linux checks nothing either): the difference to fib4 is
    what the reverse lookup costs. The settings are changed on the port itself and the keeper
    brings them to the router, as it would on a real host; they are put back after."""
    entry = os.path.join(_bpf_pins.default_pin_dir(None, bed.port_g), PORT_ENTRY)
    path = '/proc/sys/net/ipv4/conf/%s/accept_local' % bed.port_g

    def set_accept_local(value):
        with open(path, 'w') as handle:
            handle.write(value)
        deadline = time.monotonic() + 5
        while _ports.read_entry(entry)['accept_local'] != int(value):
            if time.monotonic() > deadline:
                raise RuntimeError('the keeper did not bring accept_local=%s to the port entry' % value)
            time.sleep(0.02)

    with open(path) as handle:
        saved = handle.read().strip()
    set_accept_local('1')
    try:
        return program_cost(bed, 'fib4', repeat)
    finally:
        set_accept_local(saved)


def program_cost(bed, mode, repeat, ttl=255):
    """ns per packet of mode's forwarder on a fixed 64-byte frame, from BPF_PROG_RUN.

    Repeated runs reuse one buffer, which the router changes (TTL): start at TTL 255 and run
    in slices of 250, so every run takes the forwarding path, never the TTL <= 1 one. With
    `ttl` 1 the frame takes that one every time: the router hands it over untouched."""
    program = interface_program(None, bed.port_g)
    # The generator's datagram (ports 9, zeros, its checksum), as the generator sends it.
    if '6' in mode:
        src, dst = generator_addresses(6)
        l3 = packets.ipv6(src, dst, packets.udp(9, 9, bytes(10), src, dst), hlim=ttl, flow=0)
        proto = packets.ETH_P_IPV6
    else:
        src, dst = generator_addresses(4)
        l3 = packets.ipv4(src, dst, packets.udp(9, 9, bytes(18), src, dst), ttl=ttl, ident=0)
        proto = packets.ETH_P_IP
    frame = packets.ether(HOST_G_MAC, GEN_MAC, proto, l3)
    fd = sysbpf.prog_fd_by_id(program['id'])
    total_ns, runs, actions = 0, 0, set()
    try:
        while runs < repeat:
            batch = min(250, repeat - runs)
            action, _out, duration = sysbpf.prog_test_run(fd, frame, repeat=batch, ingress_ifindex=bed.ifindex_g)
            total_ns += duration * batch
            runs += batch
            actions.add(action)
    finally:
        os.close(fd)
    return {'program': program['name'], 'ns_per_packet': round(total_ns / runs, 1), 'actions': sorted(actions)}


# -- hand-overs --------------------------------------------------------------------------------
class Stream:
    """A steady stream from the generator, on the generator's CPU, in a thread of its own, so
    that the main thread can change the forwarder meanwhile (ctypes lets go of the GIL for the
    bpf() call). Everything else runs on the other CPU."""

    def __init__(self, generator, cpu, burst=20000):
        self.generator, self.cpu, self.burst = generator, cpu, burst
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        os.sched_setaffinity(0, {self.cpu})
        while not self.stop.is_set():
            self.generator.send(64, self.burst)
            self.sent += self.burst

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join()


def handover(bed, generator, replaces):
    """Frames lost while xdp_program changes the forwarder under a steady IPv4 stream: the
    router replaced by a changed program `replaces` times (each replace swaps one define, so
    every one is a real program change, loaded from the kept instructions), and, for reference,
    the steady stream alone, the first attach (xdp_pass, the kernel path, replaced by the
    router) and the detach (the router replaced by xdp_pass: a veth without any program drops
    what the generator sends, so that is what taking the router off means on this bed)."""
    cpus = sorted(os.sched_getaffinity(0))
    gen_cpu, other = cpus[0], set(cpus[1:]) or {cpus[0]}
    port = {'interface': bed.port_g, 'maps_dir': bed.maps_dir}

    programs = []

    def router(generation):
        module('xdp_program', program='xdp_router', netfilter='bypass', defines={'BENCH_GENERATION': generation},
               **port)
        programs.append(interface_program(None, bed.port_g)['id'])

    def phase(name, change, count=1):
        before = bed.counter(bed.sink_ns, 's0', 'XDP_DROP')
        with Stream(generator, gen_cpu) as stream:
            time.sleep(0.5)
            for index in range(count):
                change(index)
            time.sleep(0.5)
        delivered = settle(lambda: bed.counter(bed.sink_ns, 's0', 'XDP_DROP')) - before
        lost = stream.sent - delivered
        log('hand-over %-13s %2d change(s): %d sent, %d lost' % (name, count, stream.sent, lost))
        return {'changes': count, 'sent': stream.sent, 'delivered': delivered, 'lost': lost,
                'lost_per_change': lost / count if count else lost}

    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, other)
    try:
        bed.configure('kernel4')
        unthread_napi(bed)
        result = {'first_attach': phase('first attach', lambda _i: bed.configure('fib4'))}
        router(0)
        router(1)   # both generations compiled and kept before the measured replaces
        result['steady'] = dict(phase('steady', lambda _i: time.sleep(2)), changes=0)
        del programs[:]
        result['replace'] = phase('replace', lambda i: router(i % 2), count=replaces)
        # Each replace put a new program there (an unchanged one would measure nothing).
        result['replace']['programs'] = len(set(programs))
        result['detach'] = phase('detach', lambda _i: module('xdp_program', program='xdp_pass', **port))
    finally:
        os.sched_setaffinity(0, saved)
    return result


# -- control plane -----------------------------------------------------------------------------
def compile_seconds(prefix):
    seconds = {}
    for name in PROGRAMS:
        pin_dir = '/sys/fs/bpf/xdpkit/%s-compile-%s' % (prefix, name)
        os.makedirs(pin_dir, exist_ok=True)
        defines = {'DEST_IFINDEX': 1, 'DEST_MAC': SINK_MAC} if name == 'xdp_redirect' else {}
        if name == 'xdp_trafficgen':
            defines = packets.generator_defines(GEN_MAC, HOST_G_MAC, *generator_addresses(4))
        sources = _bpf_source.read_source_tree(os.path.join(ROOT, 'bpf', name + '.c'))
        text = _bpf_source.flatten_sources(name + '.c', sources)
        cflags = ['-DXDPKIT_PIN_DIR="%s"' % pin_dir] + _bpf_source.define_flags(defines)
        try:
            for map_name, size in _bpf_source.devmap_hash_declarations(text):
                _bpf_pins.ensure_devmap_hash(os.path.join(pin_dir, map_name), size)
            start = time.perf_counter()
            bpf, _fn = _compile.compile_and_load(text, cflags, name, name + '.c')
            seconds[name] = round(time.perf_counter() - start, 3)
            bpf.cleanup()
        finally:
            _bpf_pins.remove_pins(pin_dir)
    return seconds


def pairs_topology(prefix, pairs, state):
    links, namespaces = [], []
    for i in range(pairs):
        ns = '%s-p%d' % (prefix, i)
        namespaces.append(ns)
        links.append({'name': '%s-h%d' % (prefix, i), 'addresses': ['10.220.%d.1/24' % i],
                      'peer': {'name': 'veth0', 'namespace': ns, 'addresses': ['10.220.%d.2/24' % i]}})
    routes = [{'namespace': ns, 'dest': 'default', 'gateway': '10.220.%d.1' % i} for i, ns in enumerate(namespaces)]
    return {'state': state, 'lab_ping_checks': [], 'lab_topology_namespaces': namespaces,
            'lab_topology_links': links, 'lab_topology_routes': routes, 'lab_topology_sysctls': []}


def control_plane(prefix, level, pair_counts, site_cycles=3):
    result = {'compile_seconds': compile_seconds(prefix)}
    if level == 'full':
        # Whole cycles (converge from nothing, re-run, teardown), the median of each reported: one
        # sample of a few seconds moves by 10-20% on a shared VM.
        site = {'xdpkit_name_prefix': prefix + 'x'}
        samples = {'from_nothing': [], 'rerun': [], 'teardown': []}
        converge, rerun = {}, {}
        for cycle in range(site_cycles):
            samples['from_nothing'].append(round(playbook('site.yml', site, 'site.yml', converge), 2))
            samples['rerun'].append(round(playbook('site.yml', site, 'site.yml again', rerun), 2))
            samples['teardown'].append(round(playbook('site.yml', dict(site, state='absent'), 'teardown'), 2))
            log('site.yml cycle %d: converge %.1f s, re-run %.1f s, teardown %.1f s' % (
                cycle + 1, samples['from_nothing'][-1], samples['rerun'][-1], samples['teardown'][-1]))
        result['site_yml_seconds'] = {key: round(statistics.median(values), 1) for key, values in samples.items()}
        result['site_yml_samples'] = samples
        result['site_yml_compiles'] = {'from_nothing': converge, 'rerun': rerun}
    result['converge_seconds_by_pairs'] = {}
    for pairs in pair_counts:
        up = playbook('playbooks/lab.yml', pairs_topology(prefix, pairs, 'present'), '%d pairs' % pairs)
        down = playbook('playbooks/lab.yml', pairs_topology(prefix, pairs, 'absent'), '%d pairs down' % pairs)
        result['converge_seconds_by_pairs'][str(pairs)] = {'converge': round(up, 1), 'teardown': round(down, 1)}
    return result


# -- output ------------------------------------------------------------------------------------
def markdown(results):
    lines = ['# xdpkit forwarding benchmark', '',
             '%s on %s (%s, kernel %s, %d CPUs). %s' % (
                 results['date'], results['machine']['hostname'], results['machine']['cpu'],
                 results['machine']['kernel'], results['machine']['cpus'], results['how']['summary']), '',
             'Delivered Mpps at the sink, median of %d runs (min - max), modes interleaved run by run; each point '
             'sends bursts of %d packets for at least %.1f s. Loss is the median share of sent packets that did not '
             'arrive.' % (results['runs'], results['packets'], results.get('min_seconds', 0)), '',
             '| mode | ' + ' | '.join('%d B' % s for s in results['sizes']) + ' | loss at %d B | ns/packet |'
             % results['sizes'][0],
             '|---|' + '---|' * (len(results['sizes']) + 2)]
    for mode in MODES:
        cells = []
        for size in results['sizes']:
            point = results['rates'][mode][str(size)]
            cells.append('%.3f (%.3f - %.3f)' % (point['median_mpps'], point['min_mpps'], point['max_mpps']))
        loss = results['rates'][mode][str(results['sizes'][0])]['median_loss']
        cost = results['cost'].get(mode)
        cost_text = '%.0f (%s)' % (cost['ns_per_packet'], cost['program']) if cost else ''
        lines.append('| %s | %s | %.1f%% | %s |' % (mode, ' | '.join(cells), 100 * loss, cost_text))
    headline = results.get('headline')
    if headline:
        lines += ['', '**fib / kernel at %d bytes: %.2fx** (IPv4, fib4 / kernel4); IPv6: %.2fx (fib6 / kernel6).' % (
            results['sizes'][0], headline['fib4_over_kernel4'], headline['fib6_over_kernel6'])]
    settings = results.get('host_settings')
    if settings:
        lines += ['', 'Host settings that change the kernel path\'s cost, at the start of the run: ' +
                  describe_settings(settings) + '.']
    one = results.get('one_cpu')
    if one:
        lines += ['', '## One CPU: the cost of each forwarding path', '',
                  'Generator and the whole forwarding path on CPU %d (NAPI in softirq), 64 B, median of %d runs '
                  '(modes interleaved). Per-packet cost of the path beyond the generator = 1/delivered - 1/limit.'
                  % (results['how']['generator_cpu'], results['runs']), '',
                  '| mode | IPv4 source check settings | delivered Mpps | loss | path ns/packet | '
                  'program ns/packet (BPF_PROG_RUN) |',
                  '|---|---|---|---|---|---|']
        for mode in [m for m in ONE_CPU_MODES + PREVIOUS_MODES if m in one['modes']]:
            point = one['modes'][mode]
            cost = one['cost'].get(mode)
            lines.append('| %s | %s | %.3f | %.1f%% | %s | %s |' % (
                mode, configuration(mode), point['median_mpps'], 100 * point['median_loss'],
                '%.0f' % point['path_ns'] if 'path_ns' in point else '-',
                '%.0f' % cost['ns_per_packet'] if cost else '-'))
        if 'fib4_without_source_check' in one['cost']:
            with_check = one['cost']['fib4']['ns_per_packet']
            without = one['cost']['fib4_without_source_check']['ns_per_packet']
            lines += ['', 'IPv4 source validation with rp_filter 0 (the address check; the reverse FIB lookup before '
                      'the local source table) costs %.0f ns of the router\'s %.0f ns '
                      '(%.0f ns with it off, as Linux with rp_filter 0 and accept_local 1 checks nothing either).' % (
                          with_check - without, with_check, without)]
        r = one['ratios']
        lines += ['', '**Kernel / router per-packet cost, IPv4: %.2fx** (before parity: %.2fx); IPv6: %.2fx '
                  '(before: %.2fx); IPv4 with rp_filter=1 on both: %.2fx.' % (
                      r.get('kernel4_over_fib4', 0), r.get('kernel4_over_fib4_before', 0),
                      r.get('kernel6_over_fib6', 0), r.get('kernel6_over_fib6_before', 0),
                      r.get('kernel4_strict_over_fib4_strict', 0))]
        if 'fib4_over_fib4_floor_addr' in r:
            costs = one['cost']
            lines += ['', 'With rp_filter 0 and accept_local 0 (fib4, Linux\'s default) the router checks a source as '
                      'Linux does there: is it one of the namespace\'s addresses. Router / (floor + that check): '
                      '%.2fx per packet of path (%.0f / %.0f ns), %.2fx of BPF_PROG_RUN (%.0f / %.0f ns).' % (
                          r['fib4_over_fib4_floor_addr'], one['modes']['fib4']['path_ns'],
                          one['modes']['fib4_floor_addr']['path_ns'],
                          costs['fib4']['ns_per_packet'] / costs['fib4_floor_addr']['ns_per_packet'],
                          costs['fib4']['ns_per_packet'], costs['fib4_floor_addr']['ns_per_packet'])]
        if 'fib4_strict_over_fib4_strict_prev' in r:
            lines += ['', 'Beside the router of --previous-router (%s): fib4 %.2fx of its cost (rp_filter 0), '
                      'fib4_strict %.2fx (rp_filter 1); kernel4 / fib4_prev = %.2fx.' % (
                          results.get('previous_router'), 1 / r['fib4_prev_over_fib4'],
                          r['fib4_strict_over_fib4_strict_prev'], r.get('kernel4_over_fib4_prev', 0))]
        if 'counting' in one:
            lines += ['', 'Reason counters (xdp_router against itself built with XDPKIT_REASON_COUNTERS=0, the '
                      '*_nocount modes): ' + describe_counting(one['counting']) + '.']
        if 'kernel4_over_fib4_floor' in r:
            lines += ['', 'The floor under any router on bpf_fib_lookup() (fib4_floor: one lookup, MACs, TTL, '
                      'redirect; no checks, no counters): kernel4 / fib4_floor = %.2fx, the most such a router can '
                      'reach on this machine.' % r['kernel4_over_fib4_floor']]
    ho = results.get('handover')
    if ho:
        lines += ['', '## Hand-overs', '',
                  'A steady IPv4 stream (64 B, generator and forwarding path on one CPU) while xdp_program changes '
                  'the program on the forwarding port; lost = sent - delivered at the sink.', '',
                  '| phase | changes | sent | lost | lost per change |', '|---|---|---|---|---|']
        for name, label in (('steady', 'steady stream, no change'), ('replace', 'router replaced by a changed router'),
                            ('first_attach', 'first attach (kernel path -> router)'),
                            ('detach', 'detach (router -> kernel path)')):
            point = ho[name]
            per_change = '%.1f' % point['lost_per_change'] if point['changes'] else '-'
            cells = (label, point['changes'], point['sent'], point['lost'], per_change)
            lines.append('| %s | %d | %d | %d | %s |' % cells)
    cp = results['control_plane']
    lines += ['', '## Control plane', '', 'bcc compile seconds: ' + ', '.join(
        '%s %.2f' % kv for kv in sorted(cp['compile_seconds'].items()))]
    if 'site_yml_seconds' in cp:
        s = cp['site_yml_seconds']
        samples = cp.get('site_yml_samples')
        lines.append('site.yml, median of %d cycles: %.1f s from nothing, %.1f s re-run (no changes; %.0f%% of the '
                     'converge, goal at most 25%%), %.1f s teardown.' % (
                         len(samples['rerun']) if samples else 1, s['from_nothing'], s['rerun'],
                         100 * s['rerun'] / s['from_nothing'], s['teardown']))
        if samples:
            lines.append('Each cycle (converge / re-run / teardown s, re-run share): ' + '; '.join(
                '%.1f / %.1f / %.1f (%.0f%%)' % (c, r, t, 100 * r / c) for c, r, t in zip(
                    samples['from_nothing'], samples['rerun'], samples['teardown'], strict=True)) + '.')
        c = cp.get('site_yml_compiles')
        if c:
            lines.append('bcc compiles: %d in the converge (%.1f s of %d program loads), %d in the re-run.' % (
                c['from_nothing'].get('compiles', 0), c['from_nothing'].get('compile_seconds', 0),
                c['from_nothing'].get('loads', 0), c['rerun'].get('compiles', 0)))
    lines.append('Lab converge by namespace pairs: ' + ', '.join(
        '%s pair(s) %.1f s (teardown %.1f s)' % (k, v['converge'], v['teardown'])
        for k, v in cp['converge_seconds_by_pairs'].items()))
    return '\n'.join(lines) + '\n'


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    sizes = results['sizes']
    width = 0.8 / len(MODES)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for i, mode in enumerate(MODES):
        med = [results['rates'][mode][str(s)]['median_mpps'] for s in sizes]
        low = [m - results['rates'][mode][str(s)]['min_mpps'] for m, s in zip(med, sizes, strict=True)]
        high = [results['rates'][mode][str(s)]['max_mpps'] - m for m, s in zip(med, sizes, strict=True)]
        xs = [j + (i - (len(MODES) - 1) / 2) * width for j in range(len(sizes))]
        ax.bar(xs, med, width, yerr=[low, high], capsize=2, label=mode)
    ax.set_xticks(range(len(sizes)), ['%d B' % s for s in sizes])
    ax.set_ylabel('delivered Mpps (median, min-max)')
    ax.set_title('XDP forwarding vs kernel, %s, %s' % (results['machine']['hostname'], results['date'][:10]))
    ax.legend(ncols=3, fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine():
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as handle:
            cpu = next(line.split(':', 1)[1].strip() for line in handle if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'hostname': platform.node(), 'kernel': platform.release(), 'cpu': cpu, 'cpus': os.cpu_count()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--packets', type=int, default=1000000, help='packets per run')
    parser.add_argument('--runs', type=int, default=5, help='runs per point (the median is reported)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 512, 1500], help='frame sizes in bytes')
    parser.add_argument('--min-seconds', type=float, default=1.0,
                        help='each point sends bursts of --packets until the generator has run this long')
    parser.add_argument('--cost-repeat', type=int, default=1000000, help='BPF_PROG_RUN repeat for ns/packet')
    parser.add_argument('--control-plane', choices=['full', 'quick', 'none'], default='full',
                        help='full: site.yml and 1/8/32 namespace pairs; quick: compile times and 1 pair')
    parser.add_argument('--site-cycles', type=int, default=3,
                        help='site.yml cycles (converge, re-run, teardown) of the full control plane; medians reported')
    parser.add_argument('--handover', type=int, default=20,
                        help='router replaces under a steady stream (frames lost per replace); 0 skips them')
    parser.add_argument('--previous-router', help='an xdp_router.c of another revision (its xdpkit.h beside it), run '
                        'beside the current one in the one-CPU section (fib4_prev, fib4_strict_prev)')
    parser.add_argument('--prefix', default='bench', help='prefix of namespace and link names')
    parser.add_argument('--out', default=os.path.join(HERE, 'results'), help='output directory')
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error('run as root (namespaces, XDP, BPF_PROG_RUN)')
    if min(args.sizes) < 64 or max(args.sizes) > 1514:
        parser.error('frame sizes must be between 64 and 1514 bytes')

    bed = Bed(args.prefix, args.previous_router and os.path.abspath(args.previous_router))
    results = {'previous_router': bed.previous_router,
               'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
               'machine': machine(), 'packets': args.packets, 'runs': args.runs, 'sizes': args.sizes,
               'min_seconds': args.min_seconds,
               'rates': {}, 'cost': {}}
    generators = {}
    log('building the test bed')
    bed.up()
    try:
        how = place_cpus()
        generators = {4: Generator(bed, 4), 6: Generator(bed, 6)}
        results['host_settings'] = host_settings(bed)
        samples = {mode: {size: [] for size in args.sizes} for mode in MODES}
        steps, step = args.runs * len(MODES), 0
        for run in range(args.runs):
            for mode in MODES:
                progress(step, steps, 'run %d of %d, %s' % (run + 1, args.runs, mode))
                step += 1
                bed.configure(mode)
                thread_napi(bed, how)
                generator = generators[6 if mode.endswith('6') else 4]
                # One short run first: the kernel resolves nothing here (neighbours are
                # permanent), but page pools and NAPI threads warm up.
                measure(bed, generator, mode, args.sizes[0], min(args.packets, 10000))
                for size in args.sizes:
                    samples[mode][size].append(measure(bed, generator, mode, size, args.packets, args.min_seconds))
                if run == 0:
                    results['cost'][mode] = program_cost(bed, mode, args.cost_repeat)
        for mode in MODES:
            results['rates'][mode] = {}
            for size in args.sizes:
                points = samples[mode][size]
                mpps = [s['pps'] / 1e6 for s in points]
                results['rates'][mode][str(size)] = {
                    'median_mpps': statistics.median(mpps), 'min_mpps': min(mpps), 'max_mpps': max(mpps),
                    'median_loss': statistics.median(s['lost'] / s['sent'] for s in points), 'samples': points}
                log('%-9s %4d B: %.3f Mpps (%.3f - %.3f)' % (mode, size, statistics.median(mpps), min(mpps), max(mpps)))
        log('one CPU: generator and forwarding path together, modes interleaved')
        results['one_cpu'] = one_cpu_costs(bed, generators, args.packets, args.runs, args.cost_repeat,
                                           args.min_seconds)
        if args.handover:
            log('hand-overs: %d router replaces under a steady stream' % args.handover)
            results['handover'] = handover(bed, generators[4], args.handover)
        how['summary'] = 'Generator pinned to CPU %d; %s.' % (
            how['generator_cpu'], 'threaded NAPI for the forwarding port and the sink, pinned to CPU %s'
            % how['napi_cpu'] if how['threaded_napi'] else 'NAPI in softirq on the generator\'s CPU')
        results['how'] = how
    finally:
        for generator in generators.values():
            generator.close()
        log('removing the test bed')
        bed.down()
    first = str(args.sizes[0])
    kernel4, kernel6 = (results['rates'][mode][first]['median_mpps'] for mode in ('kernel4', 'kernel6'))
    if kernel4 > 0 and kernel6 > 0:
        results['headline'] = {
            'fib4_over_kernel4': results['rates']['fib4'][first]['median_mpps'] / kernel4,
            'fib6_over_kernel6': results['rates']['fib6'][first]['median_mpps'] / kernel6}
    log('control plane (%s)' % args.control_plane)
    if args.control_plane == 'none':
        results['control_plane'] = {'compile_seconds': {}, 'converge_seconds_by_pairs': {}}
    else:
        results['control_plane'] = control_plane(args.prefix, args.control_plane,
                                                 [1, 8, 32] if args.control_plane == 'full' else [1],
                                                 args.site_cycles)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'benchmark.json'), 'w') as handle:
        json.dump(results, handle, indent=1)
    with open(os.path.join(args.out, 'benchmark.md'), 'w') as handle:
        handle.write(markdown(results))
    plot(results, os.path.join(args.out, 'benchmark.png'))
    print(markdown(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
