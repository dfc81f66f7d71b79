"""xdp_program's guards on a real router: it never takes over another tool's program, never
attaches a forwarding program over netfilter rules it would skip, and keeps the router's port
table (MAC, rp_filter, accept_local) in step with the kernel."""

import os
import struct

import pytest
from conftest import in_ns, run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_program import attached_program


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


def attached(names):
    with iproute(names('r')) as ipr:
        return attached_program(ipr, get_link(ipr, 'r0')['ifindex'])


def attach_foreign(names):
    """What `ip link set r0 xdp obj ...` does: a program xdpkit knows nothing about."""
    from bcc import BPF

    from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns
    bpf = BPF(text=b'#include <uapi/linux/bpf.h>\nint other_tool(struct xdp_md *ctx) { return XDP_PASS; }\n')
    with in_netns(names('r')):
        BPF.attach_xdp(b'r0', bpf.load_func(b'other_tool', BPF.XDP), 1 << 2)
    bpf.cleanup()
    return attached(names)['prog_id']


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


def test_input_and_output_rules_do_not_stop_the_router(router_ns):
    names = router_ns
    in_ns(names('r'), 'nft', 'add table inet host')
    in_ns(names('r'), 'nft', 'add chain inet host inbound { type filter hook input priority 0; policy drop; }')
    in_ns(names('r'), 'nft', 'add rule inet host inbound tcp dport 22 accept')
    assert run_module('xdp_program', router_args(names))['changed']


def port_entry(names):
    with iproute(names('r')) as ipr:
        ifindex = get_link(ipr, 'r0')['ifindex']
    return _ports.read_port(os.path.join(names.maps_dir, 'ports'), ifindex)


def test_port_table_follows_the_kernels_settings_and_goes_with_the_program(router_ns):
    names = router_ns
    with iproute(names('r')) as ipr:
        mac = get_link(ipr, 'r0')['mac']
    first = run_module('xdp_program', router_args(names))
    assert first['program']['port'] == {'mac': mac, 'rp_filter': 0, 'accept_local': 0}
    assert port_entry(names) == first['program']['port']

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
    assert port_entry(names) == {'mac': mac, 'rp_filter': 2, 'accept_local': 1}
    assert not run_module('xdp_program', router_args(names))['changed']

    # Loose mode on a port without IPv4 addresses fails every source routed elsewhere: strict.
    in_ns(names('r'), 'ip', 'addr', 'flush', 'dev', 'r0')
    assert run_module('xdp_program', router_args(names))['changed']
    assert port_entry(names)['rp_filter'] == 1

    gone = run_module('xdp_program', {'interface': 'r0', 'namespace': names('r'), 'maps_dir': names.maps_dir,
                                      'state': 'absent'})
    assert gone['changed'] and attached(names) is None
    assert not os.path.exists(names.maps_dir)


def test_port_entry_is_removed_when_other_ports_keep_the_table(router_ns):
    names = router_ns
    VethManager({'name': 'r1', 'namespace': names('r'), 'state': 'present',
                 'peer': {'name': 'g1', 'namespace': names('g')}}).run()
    run_module('xdp_program', router_args(names))
    run_module('xdp_program', router_args(names, interface='r1'))
    table = os.path.join(names.maps_dir, 'ports')
    fd = sysbpf.obj_get(table)
    try:
        assert len(sysbpf.map_keys(fd, 4)) == 2
    finally:
        os.close(fd)
    run_module('xdp_program', {'interface': 'r1', 'namespace': names('r'), 'maps_dir': names.maps_dir,
                               'state': 'absent'})
    fd = sysbpf.obj_get(table)
    try:
        keys = [struct.unpack('=I', k)[0] for k in sysbpf.map_keys(fd, 4)]
    finally:
        os.close(fd)
    with iproute(names('r')) as ipr:
        assert keys == [get_link(ipr, 'r0')['ifindex']]
