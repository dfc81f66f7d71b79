"""The lab topology playbook end to end: build, prove with pings, re-run, tear down."""

import os
import re
import socket

import yaml

from conftest import in_ns, run_module, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_addresses, get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl


def recap(stdout):
    match = re.search(r'ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', stdout)
    assert match, stdout[-3000:]
    return {k: int(v) for k, v in zip(('ok', 'changed', 'unreachable', 'failed'), match.groups(), strict=True)}


def fib_lab(names):
    """labs/fib with this test's unique names and subnets: the lab host routes between a and b."""
    return {
        'lab': 'fib',
        'lab_prefix': names.prefix,
        'lab_topology_spec': {
            'prefix': names.prefix,
            'nodes': {'host': {'kind': 'router', 'lab_host': True}, 'a': {}, 'b': {}},
            'links': [
                {'endpoints': ['host:a', 'a:veth0'], 'ipv4': ['10.91.1.1/24', '10.91.1.2/24'],
                 'ipv6': ['fd91:1::1/64', 'fd91:1::2/64']},
                {'endpoints': ['host:b', 'b:veth0'], 'ipv4': ['10.91.2.1/24', '10.91.2.2/24'],
                 'ipv6': ['fd91:2::1/64', 'fd91:2::2/64']},
            ],
            'receivers': 'none',
        },
    }


FORWARDING = ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding')


def test_fib_lab_builds_pings_reruns_unchanged_and_tears_down(cleanup, tmp_path):
    """From topology data alone: host ports named with the prefix, default routes computed in
    both namespaces, forwarding on in the lab host while the lab exists, back afterwards."""
    names = cleanup
    picture = tmp_path / 'topology.svg'
    lab = dict(fib_lab(names), lab_inventory=str(tmp_path / 'inventory.yml'), lab_picture_path=str(picture))
    forwarding_before = [read_sysctl(None, name) for name in FORWARDING]

    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0, out[-4000:] + err[-2000:]
    assert recap(out)['failed'] == 0
    for target in ('10.91.2.2', 'fd91:2::2', '10.91.1.2', 'fd91:1::2'):
        assert '-> %s' % target in out, out[-3000:]
    # The playbook pinged both ways in both families; check one more from the test side.
    in_ns(names('a'), 'ping', '-c', '1', '-W', '2', 'fd91:2::2')
    assert [read_sysctl(None, name) for name in FORWARDING] == ['1', '1']
    with iproute() as ipr:
        assert get_link(ipr, names('a')) is not None and get_link(ipr, names('b')) is not None
    with iproute(names('a')) as ipr:
        gateways = {route.get_attr('RTA_GATEWAY') for route in ipr.get_default_routes(family=socket.AF_INET)}
    assert gateways == {'10.91.1.1'}
    # The namespaces are netns hosts of the lab's inventory; the lab host is the play's own host.
    inventory = yaml.safe_load((tmp_path / 'inventory.yml').read_text())
    assert set(inventory['all']['children']) == {'host'}
    assert inventory['all']['children']['host']['hosts']['a']['ansible_netns'] == names('a')

    # The picture: every node, every port with its addresses, and no counts while no program runs.
    svg = picture.read_text()
    assert svg.startswith('<?xml') and '</svg>' in svg, svg[:300]
    for text in ('>host<', '>a<', '>b<', '>%s<' % names('a'), '>veth0<', '10.91.1.1/24', 'fd91:2::2/64'):
        assert text in svg, text
    assert 'redirect' not in svg

    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]

    # With a program on a port, a re-run draws its name and its counts as they are now.
    attached = run_module('xdp_program', {'interface': names('a'), 'program': 'xdp_pass'})
    try:
        in_ns(names('a'), 'ping', '-c', '5', '-i', '0.01', '-W', '2', '10.91.1.1')
        rc, out, err = run_playbook('playbooks/lab.yml', lab)
        # The picture is redrawn with the new counts, a report of the moment: the lab is unchanged.
        assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]
    finally:
        run_module('xdp_program', {'interface': names('a'), 'state': 'absent'})
    svg = picture.read_text()
    assert attached['program']['name'] in svg and '>redirect 0<' in svg, svg
    passed = re.search(r'>pass (\d+)<', svg)
    assert passed and int(passed.group(1)) >= 5, svg

    rc, out, err = run_playbook('playbooks/lab.yml', dict(lab, state='absent'))
    assert rc == 0, out[-4000:] + err[-2000:]
    assert not [n for n in os.listdir('/run/netns') if n.startswith(names.prefix)]
    assert not picture.exists()
    with iproute() as ipr:
        assert get_link(ipr, names('a')) is None and get_link(ipr, names('b')) is None
    assert [read_sysctl(None, name) for name in FORWARDING] == forwarding_before
    assert not (tmp_path / 'inventory.yml').exists()


def test_seed_lab_is_the_roles_default_shape(cleanup):
    """labs/seed: the seed's same-/24 topology with the seed's addresses (host <-> namespace pings)."""
    names = cleanup
    lab = {'lab': 'seed', 'lab_prefix': names.prefix}
    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0, out[-4000:] + err[-2000:]
    with iproute() as ipr:
        uno = get_link(ipr, names('uno'))
        assert uno is not None and get_link(ipr, names('dos')) is not None
    with iproute(names('uno')) as ipr:
        assert {str(a) for a in get_addresses(ipr, get_link(ipr, 'veth0')['ifindex'])} == {'10.0.0.2/24'}
    assert 'ok=' in out and "-> 10.0.0.1" in out
    rc, out, err = run_playbook('playbooks/lab.yml', dict(lab, state='absent'))
    assert rc == 0, out[-4000:]
    assert not [n for n in os.listdir('/run/netns') if n.startswith(names.prefix)]
