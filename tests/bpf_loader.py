"""Load the collection's programs straight from bpf/ for BPF_PROG_RUN tests (no Ansible)."""

import os
import struct

from conftest import ROOT

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_source
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _compile
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._lease import PORT_ENTRY
from ansible_collections.xdpkit.forwarding.plugins.module_utils._reasons import REASON_NAMES, REASONS_MAP_NAME
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    ACTIONS,
    STATS_MAP_NAME,
    possible_cpus,
    read_counters,
)

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


# A lease that never runs out: the tests that give a router its port facts vouch for them.
VOUCHED_FOREVER = (1 << 64) - 1


def moved(before, after):
    """{reason: (packets, bytes) risen} of the reason counters that changed between two reads."""
    return {name: (after[name][0] - before[name][0], after[name][1] - before[name][1])
            for name in after if after[name] != before[name]}


class LoadedProgram:
    def __init__(self, name, pin_dir, maps_dir=None, defines=None):
        self.pin_dir = pin_dir
        self.maps_dir = maps_dir or pin_dir
        sources = _bpf_source.read_source_tree(os.path.join(ROOT, 'bpf', name + '.c'))
        text = _bpf_source.flatten_sources(name + '.c', sources)
        cflags = ['-DXDPKIT_PIN_DIR="%s"' % self.pin_dir, '-DXDPKIT_MAPS_DIR="%s"' % self.maps_dir]
        cflags += _bpf_source.define_flags(defines or {})
        for directory in (self.pin_dir, self.maps_dir):
            os.makedirs(directory, exist_ok=True)
        for map_name, size in _bpf_source.devmap_hash_declarations(text):
            _bpf_pins.ensure_devmap_hash(os.path.join(self.maps_dir, map_name), size)
        self.bpf, self.fn = _compile.compile_and_load(text, cflags, name, name + '.c')

    def run(self, frame, ingress_ifindex=0, repeat=1):
        """(action, bytes out) of one BPF_PROG_RUN."""
        action, out = sysbpf.prog_test_run(self.fn.fd, frame, repeat=repeat, ingress_ifindex=ingress_ifindex)[:2]
        return action, out

    def stats(self):
        fd = sysbpf.obj_get(os.path.join(self.pin_dir, STATS_MAP_NAME))
        try:
            counters = read_counters(fd)
        finally:
            os.close(fd)
        return {action: counters[action]['packets'] for action in ACTIONS}

    def reasons(self):
        """{reason: (packets, bytes)} summed over CPUs, slot 0 ('redirected', which must never be
        counted) included: read slot by slot here, where xdp_stats leaves that slot out."""
        fd = sysbpf.obj_get(os.path.join(self.pin_dir, REASONS_MAP_NAME))
        ncpus = possible_cpus()
        counts = {}
        try:
            for index, name in enumerate(REASON_NAMES):
                raw = sysbpf.map_lookup(fd, struct.pack('=I', index), 16 * ncpus)
                per_cpu = [struct.unpack_from('=QQ', raw, cpu * 16) for cpu in range(ncpus)]
                counts[name] = (sum(p for p, _b in per_cpu), sum(b for _p, b in per_cpu))
        finally:
            os.close(fd)
        return counts

    def map_fd(self, name):
        return sysbpf.obj_get(os.path.join(self.maps_dir, name))

    def set_port(self, key_ifindex, value_ifindex, map_name='tx_ports'):
        fd = self.map_fd(map_name)
        try:
            sysbpf.map_update(fd, struct.pack('=I', key_ifindex), struct.pack('=I', value_ifindex))
        finally:
            os.close(fd)

    def port_entry_path(self):
        return os.path.join(self.pin_dir, PORT_ENTRY)

    def set_port_facts(self, mac, rp_filter=0, accept_local=0, vouched_until=VOUCHED_FOREVER):
        """The entry xdp_program would write for the port this instance is attached to (tests set
        the rules directly). The tests stand in for the keeper: the entry is vouched for until told
        otherwise."""
        _ports.write_entry(self.port_entry_path(), {'mac': mac, 'rp_filter': rp_filter, 'accept_local': accept_local,
                                                    'vouched_until': vouched_until})

    def close(self):
        self.bpf.cleanup()
