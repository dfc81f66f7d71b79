"""xdp_program's guards on a real router: it never takes over another tool's program, never
attaches a forwarding program over netfilter rules or traffic control it would skip, and keeps
the router's port table (MAC, rp_filter, accept_local) in step with the kernel."""

import ctypes
import os
import struct

import pytest
from conftest import ROOT, in_ns, run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins, _bpf_source, _keeper, _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._lease import PORT_ENTRY
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns, in_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import HandOverRace, attached_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_program import XdpProgramManager


@pytest.fixture
def router_ns(cleanup, bpf_dir):
    """Namespace NAMEr with port r0 (10.67.0.1/24) whose peer g0 lives in NAMEg."""
    names = cleanup
    create_netns(names('r'))
    create_netns(names('g'))
    VethManager({'name': 'r0', 'namespace': names('r'), 'addresses': ['10.67.0.1/24'], 'state': 'present',
                 'peer': {'name': 'g0', 'namespace': names('g'), 'addresses': ['10.67.0.2/24']}}).run()
    names.maps_dir = bpf_dir.replace('xdpkit-test', 'xdpkit') + '-maps'
    yield names
    run_module('xdp_program', {'interface': 'r0', 'namespace': names('r'), 'maps_dir': names.maps_dir,
                               'state': 'absent', 'force': True})


def router_args(names, **extra):
    return dict({'interface': 'r0', 'namespace': names('r'), 'program': 'xdp_router', 'maps_dir': names.maps_dir},
                **extra)


def attached(names, ifname='r0'):
    with iproute(names('r')) as ipr:
        return attached_program(ipr, get_link(ipr, ifname)['ifindex'])


def attach_foreign(names, ifname='r0'):
    """What `ip link set r0 xdp obj ...` does: a program xdpkit knows nothing about."""
    from bcc import BPF

    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns
    bpf = BPF(text=b'#include <uapi/linux/bpf.h>\nint other_tool(struct xdp_md *ctx) { return XDP_PASS; }\n')
    with in_netns(names('r')):
        BPF.attach_xdp(ifname.encode(), bpf.load_func(b'other_tool', BPF.XDP), 1 << 2)
    bpf.cleanup()
    return attached(names, ifname)['prog_id']


def test_another_tools_program_is_neither_replaced_nor_detached_without_force(router_ns):
    names = router_ns
    foreign = attach_foreign(names)
    for args in (router_args(names), {'interface': 'r0', 'namespace': names('r'), 'state': 'absent'}):
        for check in (True, False):
            result = run_module('xdp_program', args, check=check)
            assert result.get('failed'), result
            assert 'id %d' % foreign in result['msg'] and 'other_tool' in result['msg'], result['msg']
            assert 'force: true' in result['msg'] and 'native mode' in result['msg']
            assert attached(names)['prog_id'] == foreign, 'the refusal changed nothing'

    forced = run_module('xdp_program', router_args(names, force=True), diff=True)
    assert forced['changed'] and forced['diff']['before']['prog_id'] == foreign
    assert forced['diff']['before']['managed'] is False
    assert attached(names)['prog_id'] == forced['program']['prog_id'] != foreign
    # From now on it is ours: a re-run needs no force and changes nothing.
    assert not run_module('xdp_program', router_args(names))['changed']


def test_our_program_is_still_ours_after_its_pins_are_lost(router_ns):
    names = router_ns
    first = run_module('xdp_program', router_args(names))
    # The pins go (bpffs remounted, an operator's rm -r): the attached program is still ours.
    from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_pins
    _bpf_pins.remove_pins(first['pin_dir'])
    again = run_module('xdp_program', router_args(names))
    assert again['changed'] and not again.get('failed'), again
    assert again['program']['prog_id'] != first['program']['prog_id']


@pytest.mark.parametrize('firewall', [
    ['nft', 'add table inet fw', 'add chain inet fw fwd_chain { type filter hook forward priority 0; policy drop; }'],
    ['nft', 'add table ip nat', 'add chain ip nat post { type nat hook postrouting priority 100; }',
     'add rule ip nat post oifname "r0" masquerade'],
    ['iptables-nft', '-A FORWARD -s 10.67.0.0/24 -j ACCEPT'],
    ['iptables-legacy', '-t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080'],
    ['ip6tables-legacy', '-P FORWARD DROP'],
], ids=['nft-forward-drop', 'nft-masquerade', 'iptables-nft-forward', 'iptables-legacy-nat', 'ip6tables-legacy'])
def test_forwarding_programs_refuse_to_skip_netfilter_unless_told(router_ns, firewall):
    names = router_ns
    tool, commands = firewall[0], firewall[1:]
    for command in commands:
        argv = [tool] + (command.split() if tool != 'nft' else [command])
        in_ns(names('r'), *argv)
    refused = run_module('xdp_program', router_args(names))
    assert refused.get('failed'), refused
    assert 'netfilter: bypass' in refused['msg'] and 'skip these chains' in refused['msg'], refused['msg']
    source = 'iptables-legacy' if tool.endswith('-legacy') else 'nftables'
    assert source in refused['msg'], refused['msg']
    assert attached(names) is None and not os.path.exists(names.maps_dir), 'nothing half-made'

    # Programs that never forward past the stack are not affected.
    assert not run_module('xdp_program', {'interface': 'g0', 'namespace': names('g'), 'program': 'xdp_pass',
                                          'pin_dir': names.maps_dir + '-pass'}).get('failed')
    run_module('xdp_program', {'interface': 'g0', 'namespace': names('g'), 'pin_dir': names.maps_dir + '-pass',
                               'state': 'absent'})

    bypassed = run_module('xdp_program', router_args(names, netfilter='bypass'))
    assert bypassed['changed'] and attached(names)['prog_id'] == bypassed['program']['prog_id']
    # An attached router is checked again on every run: the rules are still there.
    assert run_module('xdp_program', router_args(names)).get('failed')


class ProgAttachAttr(ctypes.Structure):
    """BPF_PROG_ATTACH; for tcx `target` is the ifindex."""
    _fields_ = [('target', ctypes.c_uint32), ('attach_bpf_fd', ctypes.c_uint32), ('attach_type', ctypes.c_uint32),
                ('attach_flags', ctypes.c_uint32)]


def attach_tcx(names, ifname, attach_type):
    """Another tool's tc BPF program on a port through tcx (what Cilium and bpftool do on 6.6+):
    `r0 = TC_ACT_OK; exit`. It goes with the namespace."""
    insns = struct.pack('<BBhi', 0xb7, 0, 0, 0) + struct.pack('<BBhi', 0x95, 0, 0, 0)
    fd = sysbpf.prog_load(3, insns, 'GPL', 'other_tc')  # BPF_PROG_TYPE_SCHED_CLS
    try:
        with iproute(names('r')) as ipr:
            ifindex = get_link(ipr, ifname)['ifindex']
        with in_netns(names('r')):
            sysbpf.bpf(8, ProgAttachAttr(target=ifindex, attach_bpf_fd=fd, attach_type=attach_type))  # BPF_PROG_ATTACH
    finally:
        os.close(fd)


@pytest.mark.parametrize('traffic_control, named', [
    (['qdisc add dev r0 root handle 1: tbf rate 10mbit burst 10kb latency 50ms'], 'qdisc tbf 1: (root) on r0'),
    (['qdisc add dev r0 clsact', 'filter add dev r0 ingress pref 10 protocol all u32 match u32 0 0 classid 1:1'],
     'ingress filter u32 pref 10 on r0'),
    (['qdisc add dev r0 ingress', 'filter add dev r0 parent ffff: pref 3 protocol ip u32 match u32 0 0 classid 1:1'],
     'ingress filter u32 pref 3 on r0'),
    (['qdisc add dev r0 clsact', 'filter add dev r0 egress pref 5 protocol all u32 match u32 0 0 classid 1:1'],
     'egress filter u32 pref 5 on r0'),
    ('tcx-ingress', 'tcx ingress program id'),
    ('tcx-egress', 'tcx egress program id'),
], ids=['egress-shaping', 'clsact-ingress-filter', 'ingress-qdisc-filter', 'clsact-egress-filter', 'tcx-ingress',
        'tcx-egress'])
def test_forwarding_programs_refuse_to_skip_traffic_control_unless_told(router_ns, traffic_control, named):
    names = router_ns
    if isinstance(traffic_control, str):
        attach_tcx(names, 'r0', sysbpf.BPF_TCX_INGRESS if traffic_control.endswith('ingress')
                   else sysbpf.BPF_TCX_EGRESS)
    else:
        for command in traffic_control:
            in_ns(names('r'), 'tc', *command.split())
    refused = run_module('xdp_program', router_args(names))
    assert refused.get('failed'), refused
    assert 'traffic_control: bypass' in refused['msg'] and named in refused['msg'], refused['msg']
    assert attached(names) is None and not os.path.exists(names.maps_dir), 'nothing half-made'
    # In check mode too, and with netfilter bypassed: the two are separate promises.
    assert run_module('xdp_program', router_args(names, netfilter='bypass'), check=True).get('failed')

    bypassed = run_module('xdp_program', router_args(names, traffic_control='bypass'))
    assert bypassed['changed'] and attached(names)['prog_id'] == bypassed['program']['prog_id']
    # An attached router is checked again on every run: the tc objects are still there.
    assert 'traffic_control: bypass' in run_module('xdp_program', router_args(names))['msg']


def test_the_fixed_egress_port_of_xdp_redirect_is_checked_too(router_ns):
    """Frames xdp_redirect sends out of DEST_IFINDEX skip that port's qdisc (here: lo's)."""
    names = router_ns
    in_ns(names('r'), 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'handle', '2:', 'tbf', 'rate', '1mbit', 'burst',
          '10kb', 'latency', '50ms')
    args = {'interface': 'r0', 'namespace': names('r'), 'program': 'xdp_redirect', 'pin_dir': names.maps_dir,
            'defines': {'DEST_IFINDEX': 1, 'DEST_MAC': '0x020000000001'}}
    refused = run_module('xdp_program', args)
    assert refused.get('failed') and 'qdisc tbf 2: (root) on lo' in refused['msg'], refused
    assert attached(names) is None
    in_ns(names('r'), 'tc', 'qdisc', 'del', 'dev', 'lo', 'root')
    assert run_module('xdp_program', args)['changed']
    run_module('xdp_program', dict(args, state='absent'))


def map_view(path):
    fd = sysbpf.obj_get(path)
    try:
        return {struct.unpack('=I', key)[0]: struct.unpack('=I', sysbpf.map_lookup(fd, key, 4))[0]
                for key in sysbpf.map_keys(fd, 4)}
    finally:
        os.close(fd)


def test_port_map_entries_are_checked_where_they_send_frames(router_ns):
    """A port map value is a redirect target: frames sent there skip its qdisc and tc egress, whether
    xdp_program's map_entries or xdp_map wrote the entry. MAC tables are not ports."""
    names = router_ns
    VethManager({'name': 'r1', 'namespace': names('r'), 'state': 'present',
                 'peer': {'name': 'g1', 'namespace': names('g')}}).run()
    in_ns(names('r'), 'tc', 'qdisc', 'add', 'dev', 'r1', 'root', 'handle', '3:', 'tbf', 'rate', '1mbit', 'burst',
          '10kb', 'latency', '50ms')
    with iproute(names('r')) as ipr:
        r0, r1 = get_link(ipr, 'r0')['ifindex'], get_link(ipr, 'r1')['ifindex']
    tx_ports = os.path.join(names.maps_dir, 'tx_ports')
    program = {'interface': 'r0', 'namespace': names('r'), 'program': 'xdp_redirect_map',
               'maps_dir': names.maps_dir,
               'map_entries': [{'name': 'tx_ports', 'entries': [{'key': 'r0', 'value': 'r1'}]}]}
    for check in (True, False):
        refused = run_module('xdp_program', program, check=check)
        assert refused.get('failed'), refused
        assert 'qdisc tbf 3: (root) on r1' in refused['msg'] and 'traffic_control: bypass' in refused['msg'], \
            refused['msg']
        assert attached(names) is None and not os.path.exists(names.maps_dir), 'refused before anything changed'

    bypassed = run_module('xdp_program', dict(program, traffic_control='bypass'))
    assert bypassed['changed'] and attached(names) is not None
    assert map_view(tx_ports) == {r0: r1}

    # xdp_map: by name or by ifindex, one map or several, check mode or not; nothing written.
    one = {'path': tx_ports, 'namespace': names('r'), 'entries': [{'key': 'r1', 'value': str(r1)}]}
    several = {'maps': [{'path': tx_ports, 'entries': [{'key': 'r1', 'value': 'r1'}]}], 'namespace': names('r')}
    for args in (one, several):
        for check in (True, False):
            refused = run_module('xdp_map', args, check=check)
            assert refused.get('failed') and 'qdisc tbf 3: (root) on r1' in refused['msg'], refused
    assert map_view(tx_ports) == {r0: r1}, 'the refusals wrote nothing'
    mac_table = {'path': os.path.join(names.maps_dir, 'mac_table'), 'namespace': names('r'),
                 'entries': [{'key': '02:00:00:00:00:01', 'value': '02:00:00:00:00:02'}]}
    assert run_module('xdp_map', mac_table)['changed']
    assert run_module('xdp_map', dict(one, traffic_control='bypass'))['changed']
    assert map_view(tx_ports) == {r0: r1, r1: r1}

    in_ns(names('r'), 'tc', 'qdisc', 'del', 'dev', 'r1', 'root')
    assert not run_module('xdp_map', one)['changed'], 'without the qdisc the default applies cleanly'


def test_default_qdiscs_and_filterless_clsact_do_not_stop_the_router(router_ns):
    """The kernel's own qdiscs (handle 0) only queue, and a clsact with nothing in it does nothing."""
    names = router_ns
    in_ns(names('r'), 'tc', 'qdisc', 'add', 'dev', 'r0', 'clsact')
    assert run_module('xdp_program', router_args(names))['changed']


def test_input_and_output_rules_do_not_stop_the_router(router_ns):
    names = router_ns
    in_ns(names('r'), 'nft', 'add table inet host')
    in_ns(names('r'), 'nft', 'add chain inet host inbound { type filter hook input priority 0; policy drop; }')
    in_ns(names('r'), 'nft', 'add rule inet host inbound tcp dport 22 accept')
    assert run_module('xdp_program', router_args(names))['changed']


def entry_path(names, ifname='r0'):
    """The port entry of the instance xdp_program attaches to `ifname` (in its own pin_dir)."""
    return os.path.join(_bpf_pins.default_pin_dir(names('r'), ifname), PORT_ENTRY)


def port_entry(names, ifname='r0'):
    return _ports.read_entry(entry_path(names, ifname))


def test_port_entry_follows_the_kernels_settings_and_goes_with_the_program(router_ns):
    names = router_ns
    with iproute(names('r')) as ipr:
        mac = get_link(ipr, 'r0')['mac']
    # The namespace and r0 inherited the host's IPv4 settings (rp_filter is 1 on many hosts):
    # the port starts with both rules off here.
    for key in ('all.rp_filter', 'r0.rp_filter', 'all.accept_local', 'r0.accept_local'):
        write_sysctl(names('r'), 'net.ipv4.conf.' + key, '0')
    first = run_module('xdp_program', router_args(names))
    assert first['program']['port'] == {'mac': mac, 'rp_filter': 0, 'accept_local': 0}
    assert _ports.facts(port_entry(names)) == first['program']['port']
    # Between runs the keeper follows the settings (tests/integration/test_keeper.py); here the
    # module's own refresh is what is tested, so no keeper runs until the module starts it again.
    _keeper.stop()

    # The kernel uses the larger of conf/all and conf/r0.
    write_sysctl(names('r'), 'net.ipv4.conf.all.rp_filter', '2')
    write_sysctl(names('r'), 'net.ipv4.conf.r0.rp_filter', '1')
    write_sysctl(names('r'), 'net.ipv4.conf.r0.accept_local', '1')
    checked = run_module('xdp_program', router_args(names), check=True, diff=True)
    assert checked['changed'] and port_entry(names)['rp_filter'] == 0, 'check mode writes nothing'
    refreshed = run_module('xdp_program', router_args(names), diff=True)
    assert refreshed['changed'] and refreshed['program']['prog_id'] == first['program']['prog_id'], \
        'a settings change refreshes the entry without reloading the program'
    assert refreshed['diff']['before']['port']['rp_filter'] == 0
    assert _ports.facts(port_entry(names)) == {'mac': mac, 'rp_filter': 2, 'accept_local': 1}
    assert refreshed['keeper']['started'], 'the run started the keeper again'
    assert not run_module('xdp_program', router_args(names))['changed']

    # Loose mode on a port without IPv4 addresses fails every source routed elsewhere: strict.
    _keeper.stop()
    in_ns(names('r'), 'ip', 'addr', 'flush', 'dev', 'r0')
    assert run_module('xdp_program', router_args(names))['changed']
    assert port_entry(names)['rp_filter'] == 1

    gone = run_module('xdp_program', {'interface': 'r0', 'namespace': names('r'), 'maps_dir': names.maps_dir,
                                      'state': 'absent'})
    assert gone['changed'] and attached(names) is None
    assert not os.path.exists(names.maps_dir) and not os.path.exists(entry_path(names))


def test_each_port_has_its_own_entry_and_it_goes_with_its_instance(router_ns):
    names = router_ns
    VethManager({'name': 'r1', 'namespace': names('r'), 'state': 'present',
                 'peer': {'name': 'g1', 'namespace': names('g')}}).run()
    run_module('xdp_program', router_args(names))
    run_module('xdp_program', router_args(names, interface='r1'))
    with iproute(names('r')) as ipr:
        macs = {name: get_link(ipr, name)['mac'] for name in ('r0', 'r1')}
    assert {name: port_entry(names, name)['mac'] for name in macs} == macs
    run_module('xdp_program', {'interface': 'r1', 'namespace': names('r'), 'maps_dir': names.maps_dir,
                               'state': 'absent'})
    assert not os.path.exists(entry_path(names, 'r1'))
    assert port_entry(names)['mac'] == macs['r0'], 'the other instance keeps its entry'


def test_exclusive_takes_the_router_off_ports_no_longer_listed(router_ns):
    names = router_ns
    for ifname in ('r1', 'r2'):
        VethManager({'name': ifname, 'namespace': names('r'), 'state': 'present',
                     'peer': {'name': 'g' + ifname[1], 'namespace': names('g')}}).run()
    with iproute(names('r')) as ipr:
        index = {name: get_link(ipr, name)['ifindex'] for name in ('r0', 'r1', 'r2')}
    three = router_args(names, interfaces=['r0', 'r1', 'r2'], exclusive=True)
    del three['interface']
    first = run_module('xdp_program', three)
    assert first['changed'] and first['removed'] == []
    tx_ports = os.path.join(names.maps_dir, 'tx_ports')
    assert map_view(tx_ports) == {i: i for i in index.values()}
    r0_program = attached(names)['prog_id']
    r2_pins = first['programs'][2]['pin_dir']

    one = dict(three, interfaces=['r0'])
    checked = run_module('xdp_program', one, check=True, diff=True)
    assert checked['changed'] and [r['interface'] for r in checked['removed']] == ['r1', 'r2']
    assert attached(names, 'r1') and attached(names, 'r2'), 'check mode detaches nothing'
    # Another tool has taken r2 over since: its program stays, only our pins and entries go.
    foreign = attach_foreign(names, 'r2')
    pruned = run_module('xdp_program', one, diff=True)
    assert pruned['changed'], pruned
    assert [(r['interface'], bool(r['program'])) for r in pruned['removed']] == [('r1', True), ('r2', False)]
    assert pruned['diff']['before'][0]['interface'] == 'r1' and pruned['diff']['after'] == []
    assert attached(names, 'r1') is None and attached(names, 'r2')['prog_id'] == foreign
    assert attached(names)['prog_id'] == r0_program, 'the listed port keeps its program'
    assert map_view(tx_ports) == {index['r0']: index['r0']}
    assert port_entry(names, 'r0') is not None and not os.path.exists(entry_path(names, 'r1'))
    assert not os.path.exists(r2_pins)
    again = run_module('xdp_program', one)
    assert not again['changed'] and again['removed'] == []
    # Without exclusive, nothing is taken off: what the module did before.
    run_module('xdp_program', dict(three, force=True))
    assert not run_module('xdp_program', dict(one, exclusive=False))['changed']
    assert attached(names, 'r1') is not None
    run_module('xdp_program', dict(three, state='absent'))


def bpf_source_files(main):
    return _bpf_source.read_source_tree(os.path.join(ROOT, 'bpf', main))


class RacedManager(XdpProgramManager):
    """xdp_program with another tool acting between its check and its change: `between` runs
    right after inspect() has read what is on the port."""

    def __init__(self, params, between):
        super().__init__(params)
        self.between = between

    def inspect(self):
        found = super().inspect()
        self.between()
        return found


def manager_params(names, **extra):
    return dict({'interface': 'r0', 'namespace': names('r'), 'maps_dir': names.maps_dir, 'state': 'present',
                 'source_main': 'xdp_router.c', 'source_files': bpf_source_files('xdp_router.c'), 'mode': 'native'},
                **extra)


@pytest.mark.parametrize('step', ['first attach', 'replace', 'detach'])
def test_a_program_attached_between_the_check_and_the_change_is_never_overwritten(router_ns, step):
    """The kernel compares the program expected on the port in the same call that changes it
    (XDP_FLAGS_REPLACE with IFLA_XDP_EXPECTED_FD, or XDP_FLAGS_UPDATE_IF_NOEXIST on an empty
    port): a program attached after the inspection makes the run fail naming it, and stays."""
    names = router_ns
    if step != 'first attach':
        ours = XdpProgramManager(manager_params(names)).run()['program']['prog_id']
    raced = []
    params = manager_params(names, state='absent') if step == 'detach' else \
        manager_params(names, defines={'SOME_CHANGE': 1} if step == 'replace' else {})
    manager = RacedManager(params, between=lambda: raced.append(attach_foreign(names)))
    with pytest.raises(HandOverRace) as failure:
        manager.run()
    foreign = raced[0]
    message = str(failure.value)
    assert 'program id %d' % foreign in message and 'other_tool' in message, message
    assert ('empty link' if step == 'first attach' else 'program id %d found' % ours) in message, message
    assert attached(names)['prog_id'] == foreign, 'the program attached in between is still there'
    if step == 'first attach':
        # Nothing half-made: no pins of the instance, its port entry among them.
        assert not os.path.exists(manager.pin_dir), os.listdir(manager.pin_dir)


def pin_map(path, map_type, value_size, max_entries, name):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = sysbpf.map_create(map_type, 4, value_size, max_entries, name)
    try:
        sysbpf.obj_pin(fd, path)
    finally:
        os.close(fd)


@pytest.mark.parametrize('value_size', [8, 16])
def test_the_shared_port_table_of_an_earlier_release_is_unpinned_on_the_next_attach(router_ns, value_size):
    """An upgrade: the hash from ifindex to struct xdpkit_port that earlier releases shared in
    maps_dir (8-byte entries without a lease, then 16 with one) is read by nobody now; the router
    loaded in that maps_dir unpins it and gets its own entry."""
    names = router_ns
    table = os.path.join(names.maps_dir, 'ports')
    pin_map(table, 1, value_size, 256, 'ports')  # BPF_MAP_TYPE_HASH
    result = run_module('xdp_program', router_args(names))
    assert result['changed'] and not result.get('failed'), result
    assert not os.path.exists(table)
    assert port_entry(names)['vouched_until'] > 0


def test_a_port_entry_of_an_earlier_layout_is_replaced_on_the_next_attach(router_ns):
    """An upgrade that changes struct xdpkit_port: the instance's entry of the other layout is
    unpinned, and the router loaded now gets one of today's layout, written."""
    names = router_ns
    pin_map(entry_path(names), 2, 8, 1, PORT_ENTRY)  # BPF_MAP_TYPE_ARRAY of one, 8-byte entries
    result = run_module('xdp_program', router_args(names))
    assert result['changed'] and not result.get('failed'), result
    fd = sysbpf.obj_get(entry_path(names))
    try:
        assert sysbpf.map_info(fd)['value_size'] == _ports.PORT_SIZE
    finally:
        os.close(fd)
    assert port_entry(names)['vouched_until'] > 0
