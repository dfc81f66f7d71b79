"""site.yml's building blocks as a user runs them: playbooks/router.yml on 'real' interfaces,
driven by the inventory's per-host data as on a fleet."""

import json
import os

from conftest import in_ns, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    find_stats_map,
    interface_program,
    read_counters,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

FORWARDING = ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding')


def test_router_playbook_routes_between_given_interfaces_and_undoes_itself(cleanup, tmp_path):
    names = cleanup
    for side, net in (('a', '10.68.1'), ('b', '10.68.2')):
        create_netns(names(side))
        VethManager({'name': names(side), 'addresses': [net + '.1/24'], 'state': 'present',
                     'peer': {'name': 'veth0', 'namespace': names(side), 'addresses': [net + '.2/24'],
                              'gro': True}}).run()
        RouteManager({'namespace': names(side), 'dest': 'default', 'gateway': net + '.1', 'state': 'present'}).run()
    before = [read_sysctl(None, key) for key in FORWARDING]
    maps_dir = '/sys/fs/bpf/xdpkit/' + names('rt')
    # The router's data lives in the inventory (host_vars), not on the command line.
    (tmp_path / 'host_vars').mkdir()
    (tmp_path / 'host_vars' / 'localhost.yml').write_text(json.dumps({
        'router_interfaces': [names('a'), names('b')], 'router_maps_dir': maps_dir, 'router_prerequisites': False,
        # Leave the machine as found: absent normally keeps the kernel forwarding.
        'router_restore_forwarding': True}))
    inventory = router_inventory(tmp_path)

    rc, out, err = run_playbook('playbooks/router.yml', inventory=inventory)
    assert rc == 0, out[-4000:] + err[-2000:]
    rc, out = run_playbook('playbooks/router.yml', inventory=inventory)[:2]
    assert rc == 0 and 'changed=0' in out, out[-3000:]
    # The receiving ends use GRO instead of xdp_pass: the kernel >= 5.13 way.
    in_ns(names('a'), 'ping', '-c', '5', '-i', '0.1', '-W', '2', '10.68.2.2')
    program = interface_program(None, names('a'))
    assert program['name'] == 'xdp_router'
    fd = find_stats_map(program['id'])
    try:
        assert read_counters(fd)['XDP_REDIRECT']['packets'] >= 4, 'XDP, not the kernel, forwarded the pings'
    finally:
        os.close(fd)

    # A port dropped from the inventory's list loses the router on the next run; the other keeps it.
    kept = program['id']
    (tmp_path / 'host_vars' / 'localhost.yml').write_text(json.dumps({
        'router_interfaces': [names('a')], 'router_maps_dir': maps_dir, 'router_prerequisites': False,
        'router_restore_forwarding': True}))
    rc, out = run_playbook('playbooks/router.yml', inventory=inventory)[:2]
    assert rc == 0 and 'changed=0' not in out, out[-3000:]
    assert interface_program(None, names('b')) is None, 'the dropped port keeps no router'
    assert interface_program(None, names('a'))['id'] == kept
    assert not os.path.exists('/sys/fs/bpf/xdpkit/@' + names('b')), "the dropped port's pins are gone"

    rc, out, err = run_playbook('playbooks/router.yml', {'state': 'absent'}, inventory=inventory)
    assert rc == 0, out[-4000:] + err[-2000:]
    assert interface_program(None, names('a')) is None
    assert not os.path.exists(maps_dir)
    assert [read_sysctl(None, key) for key in FORWARDING] == before


def router_inventory(tmp_path):
    """localhost as the fleet's only router."""
    (tmp_path / 'hosts.yml').write_text(json.dumps({'all': {'children': {'router': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '/usr/bin/python3'}}}}}}))
    return tmp_path / 'hosts.yml'


def test_router_playbook_refuses_an_empty_interface_list(tmp_path):
    rc, out = run_playbook('playbooks/router.yml', {}, inventory=router_inventory(tmp_path))[:2]
    assert rc != 0 and 'missing required arguments: router_interfaces' in out
