"""Compile once: the same program with the same defines on several ports compiles with bcc once;
the other ports load the kept instructions on their own pins and behave as compiled ones."""

import glob
import os
import secrets
import struct
import time

import pytest
from bpf_run import pinned_map_id, program_map_ids
from conftest import in_ns, run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins, _bpf_sys, _compile, _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, get_link_by_index, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import read_counters
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

PORTS = (1, 2, 3)


@pytest.fixture
def router_ports(cleanup):
    """Namespace NAMEr with ports p1..p3 (10.67.N.1/24), each to veth0 in NAMEnN (10.67.N.2/24)."""
    names = cleanup
    create_netns(names('r'))
    for n in PORTS:
        create_netns(names('n%d' % n))
        VethManager({'name': 'p%d' % n, 'namespace': names('r'), 'addresses': ['10.67.%d.1/24' % n],
                     'state': 'present',
                     'peer': {'name': 'veth0', 'namespace': names('n%d' % n),
                              'addresses': ['10.67.%d.2/24' % n]}}).run()
    yield names
    # The kept instructions of this test's define go too (the suite leaves no state behind).
    for path in _entries_for(_marker(names)):
        _compile.forget(os.path.basename(path)[:-len('.json')])


def _marker(names):
    """A define no other test uses: this test's first load cannot find instructions kept by another."""
    return 'CACHE_TEST_%s' % names.prefix.upper()


def _stats_packets(pin_dir, action='XDP_PASS'):
    fd = _bpf_sys.obj_get(os.path.join(pin_dir, 'xdp_stats_map'))
    try:
        return read_counters(fd)[action]['packets']
    finally:
        os.close(fd)


def _entries_for(marker):
    """The kept entry files whose defines name this test's define."""
    return [path for path in glob.glob(os.path.join(_compile.COMPILED_DIR, '*.json'))
            if marker in open(path).read()]


def test_one_compile_for_three_ports_and_each_port_counts_on_its_own_pins(router_ports):
    names = router_ports
    router_ns = names('r')
    maps_dir = '%s/%s-maps' % (_bpf_pins.PIN_ROOT, names.prefix)
    defines = {_marker(names): secrets.randbelow(1 << 30)}

    def attach(port):
        return run_module('xdp_program', {'interface': 'p%d' % port, 'namespace': router_ns, 'program': 'xdp_router',
                                          'maps_dir': maps_dir, 'defines': defines})

    results = {port: attach(port) for port in PORTS}
    for result in results.values():
        assert result.get('changed') and not result.get('failed'), result
    assert [results[port]['compiled'] for port in PORTS] == [True, False, False], results
    assert results[1]['compile_seconds'] > 0 and results[2]['compile_seconds'] == 0
    assert len(_entries_for(_marker(names))) == 1, 'one kept entry for the one compile'

    # The same program (the kernel's tag hashes the instructions), each instance on its own
    # stats and port entry pins and all on the shared tables of maps_dir.
    tags = {results[port]['program']['tag'] for port in PORTS}
    assert len(tags) == 1, tags
    shared = {pinned_map_id(os.path.join(maps_dir, name)) for name in ('tx_ports', 'local_addrs', 'local_state')}
    assert not os.path.exists(os.path.join(maps_dir, 'ports')), 'no port table shared by the instances'
    own = {}
    for port in PORTS:
        result = results[port]
        used = program_map_ids(result['program']['prog_id'])
        own[port] = {pinned_map_id(os.path.join(result['pin_dir'], name)) for name in ('xdp_stats_map', 'port_entry')}
        assert shared <= used and own[port] <= used, (port, used, shared, own[port])
        # Each instance's entry holds its own port's facts: the MAC of the port it is attached to.
        entry = _ports.read_entry(os.path.join(result['pin_dir'], 'port_entry'))
        assert _ports.facts(entry) == result['program']['port'], (port, entry, result['program'])
    assert len(set().union(*own.values())) == 2 * len(PORTS), 'every port has a stats map and an entry of its own'
    assert len({results[port]['program']['port']['mac'] for port in PORTS}) == len(PORTS)
    assert results[3]['program']['port'] is not None, 'the port entry of a cached load is written'

    # Traffic into port 3 (loaded from the kept instructions) is counted by port 3's program
    # on port 3's pin, not by another port's.
    before = {port: _stats_packets(results[port]['pin_dir']) for port in PORTS}
    in_ns(names('n3'), 'ping', '-c', '20', '-i', '0.01', '-W', '1', '10.67.3.1')
    time.sleep(0.2)
    after = {port: _stats_packets(results[port]['pin_dir']) for port in PORTS}
    assert after[3] - before[3] >= 20, (before, after)
    assert after[2] - before[2] < 20 and after[1] - before[1] < 20, (before, after)

    # A re-run loads nothing and compiles nothing.
    again = attach(2)
    assert not again['changed'] and not again['compiled'], again


def test_an_unusable_kept_entry_is_compiled_again(router_ports):
    names = router_ports
    marker = _marker(names)
    args = {'interface': 'p1', 'namespace': names('r'), 'program': 'xdp_pass', 'defines': {marker: 1}}
    first = run_module('xdp_program', args)
    assert first['compiled'], first
    [entry] = _entries_for(marker)
    with open(entry, 'w') as handle:
        handle.write('{"format": 1, "insns": "not base64!"}')

    other = run_module('xdp_program', dict(args, interface='p2'))
    assert other['changed'] and other['compiled'], 'a broken entry is compiled again, not loaded: %s' % other
    [entry] = _entries_for(marker)
    assert _compile.read_entry(os.path.basename(entry)[:-5]) is not None, 'and kept again, whole'
    in_ns(names('n2'), 'ping', '-c', '3', '-i', '0.05', '-W', '1', '10.67.2.1')
    assert _stats_packets(other['pin_dir']) >= 3


def _attached(namespace, interface):
    with iproute(namespace) as ipr:
        return attached_program(ipr, get_link(ipr, interface)['ifindex'])


def _egress_ports(namespace, maps_dir):
    """Names of the ports in the router's tx_ports (key and value the same ifindex)."""
    fd = _bpf_sys.obj_get(os.path.join(maps_dir, 'tx_ports'))
    try:
        with iproute(namespace) as ipr:
            names = {}
            for key in _bpf_sys.map_keys(fd, 4):
                value = _bpf_sys.map_lookup(fd, key, 4)
                assert value == key, (key, value)
                names[get_link_by_index(ipr, struct.unpack('=I', key)[0])['name']] = True
        return set(names)
    finally:
        os.close(fd)


def test_interfaces_in_one_run_are_checked_first_then_attached_with_one_compile(router_ports):
    names = router_ports
    router_ns = names('r')
    maps_dir = '%s/%s-maps' % (_bpf_pins.PIN_ROOT, names.prefix)
    args = {'interfaces': ['p1', 'p2', {'interface': 'p3', 'namespace': router_ns, 'node': 'ignored'}],
            'namespace': router_ns, 'program': 'xdp_router', 'maps_dir': maps_dir,
            'defines': {_marker(names): secrets.randbelow(1 << 30)},
            'receivers': [{'interface': 'veth0', 'namespace': names('n%d' % n)} for n in PORTS]}

    # Another tool's program on the last port: the whole run is refused before the first port
    # gets anything.
    from bcc import BPF

    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns
    bpf = BPF(text=b'#include <uapi/linux/bpf.h>\nint other_tool(struct xdp_md *ctx) { return XDP_PASS; }\n')
    with in_netns(router_ns):
        BPF.attach_xdp(b'p3', bpf.load_func(b'other_tool', BPF.XDP), 1 << 2)
    bpf.cleanup()
    refused = run_module('xdp_program', args)
    assert refused.get('failed') and "'p3'" in refused['msg'] and 'other_tool' in refused['msg'], refused
    assert _attached(router_ns, 'p1') is None and _attached(router_ns, 'p2') is None, 'nothing changed'
    assert not _entries_for(_marker(names)), 'nothing compiled'
    assert all(_attached(names('n%d' % n), 'veth0') is None for n in PORTS), 'no receiver either'

    checked = run_module('xdp_program', dict(args, force=True), check=True)
    assert checked['changed'] and len(checked['programs']) == 3 and _attached(router_ns, 'p1') is None

    made = run_module('xdp_program', dict(args, force=True), diff=True)
    assert made['changed'] and not made.get('failed'), made
    assert [p['compiled'] for p in made['programs']] == [True, False, False], made['programs']
    assert made['compiled'] and made['programs'][0]['compile_seconds'] > 0
    every = made['programs'] + made['receivers']
    assert made['compile_seconds'] == pytest.approx(sum(r['compile_seconds'] for r in every))
    assert [p['program']['interface'] for p in made['programs']] == ['p1', 'p2', 'p3']
    assert len(made['diff']['after']['programs']) == 3 and len(made['diff']['after']['receivers']) == 3
    for port, result in zip(PORTS, made['programs'], strict=True):
        assert _attached(router_ns, 'p%d' % port)['prog_id'] == result['program']['prog_id']
        assert result['pin_dir'].endswith('%s@p%d' % (router_ns, port))
    # The veth ends behind the ports got xdp_pass in the same run.
    assert [r['program']['name'] for r in made['receivers']] == ['xdp_pass'] * 3
    for n, result in zip(PORTS, made['receivers'], strict=True):
        assert _attached(names('n%d' % n), 'veth0')['prog_id'] == result['program']['prog_id']
    # tx_ports holds exactly the ports the router is attached to.
    assert _egress_ports(router_ns, maps_dir) == {'p1', 'p2', 'p3'}

    # Traffic into port 2 is counted on port 2's own pin.
    before = _stats_packets(made['programs'][1]['pin_dir'])
    in_ns(names('n2'), 'ping', '-c', '10', '-i', '0.01', '-W', '1', '10.67.2.1')
    time.sleep(0.2)
    assert _stats_packets(made['programs'][1]['pin_dir']) - before >= 10

    again = run_module('xdp_program', args)
    assert not again['changed'] and not again['compiled'], again

    bad = run_module('xdp_program', dict(args, interfaces=['p1', 'p1']))
    assert bad.get('failed') and 'given twice' in bad['msg'], bad

    # A port detached alone leaves the egress ports; one removed behind our back comes back.
    one = run_module('xdp_program', {'interface': 'p3', 'namespace': router_ns, 'maps_dir': maps_dir,
                                     'state': 'absent'})
    assert one['changed'] and _egress_ports(router_ns, maps_dir) == {'p1', 'p2'}
    fd = _bpf_sys.obj_get(os.path.join(maps_dir, 'tx_ports'))
    try:
        with iproute(router_ns) as ipr:
            _bpf_sys.map_delete(fd, struct.pack('=I', get_link(ipr, 'p2')['ifindex']))
    finally:
        os.close(fd)
    back = run_module('xdp_program', dict(args, interfaces=['p1', 'p2'], receivers=[]))
    assert back['changed'] and [p['changed'] for p in back['programs']] == [False, True], back
    assert _egress_ports(router_ns, maps_dir) == {'p1', 'p2'}

    gone = run_module('xdp_program', {'interfaces': ['p1', 'p2', 'p3'], 'namespace': router_ns, 'maps_dir': maps_dir,
                                      'receivers': args['receivers'], 'state': 'absent'})
    assert gone['changed'] and not gone.get('failed'), gone
    assert all(_attached(router_ns, 'p%d' % port) is None for port in PORTS)
    assert all(_attached(names('n%d' % n), 'veth0') is None for n in PORTS)
    assert not os.path.exists(maps_dir)
