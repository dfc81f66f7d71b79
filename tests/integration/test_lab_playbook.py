"""The lab topology playbook end to end: build, prove with pings, re-run, tear down."""

import os
import re

from conftest import in_ns, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl


def recap(stdout):
    match = re.search(r'ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', stdout)
    assert match, stdout[-3000:]
    return {k: int(v) for k, v in zip(('ok', 'changed', 'unreachable', 'failed'), match.groups(), strict=True)}


def fib_lab(names):
    """playbooks/vars/fib_lab.yml with this test's unique names and subnets."""
    a, b = names('a'), names('b')
    return {
        'lab_topology_namespaces': [a, b],
        'lab_topology_links': [
            {'name': a, 'addresses': ['10.91.1.1/24', 'fd91:1::1/64'],
             'peer': {'name': 'veth0', 'namespace': a, 'addresses': ['10.91.1.2/24', 'fd91:1::2/64']}},
            {'name': b, 'addresses': ['10.91.2.1/24', 'fd91:2::1/64'],
             'peer': {'name': 'veth0', 'namespace': b, 'addresses': ['10.91.2.2/24', 'fd91:2::2/64']}},
        ],
        'lab_topology_routes': [
            {'namespace': a, 'dest': 'default', 'gateway': '10.91.1.1'},
            {'namespace': a, 'dest': 'default', 'gateway': 'fd91:1::1'},
            {'namespace': b, 'dest': 'default', 'gateway': '10.91.2.1'},
            {'namespace': b, 'dest': 'default', 'gateway': 'fd91:2::1'},
        ],
        'lab_topology_sysctls': [
            {'name': 'net.ipv4.conf.all.forwarding', 'value': '1'},
            {'name': 'net.ipv6.conf.all.forwarding', 'value': '1'},
        ],
        'lab_ping_checks': [
            {'from': a, 'to': '10.91.2.2'}, {'from': a, 'to': 'fd91:2::2'},
            {'from': b, 'to': '10.91.1.2'}, {'from': b, 'to': 'fd91:1::2'},
        ],
    }


def test_fib_lab_builds_pings_reruns_unchanged_and_tears_down(cleanup):
    names = cleanup
    lab = fib_lab(names)
    forwarding_before = [read_sysctl(None, s['name']) for s in lab['lab_topology_sysctls']]

    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0, out[-4000:] + err[-2000:]
    assert recap(out)['failed'] == 0
    # The playbook's own pings passed; check one more from the test side, across the host.
    in_ns(names('a'), 'ping', '-c', '1', '-W', '2', 'fd91:2::2')

    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]

    rc, out, err = run_playbook('playbooks/lab.yml', dict(lab, state='absent'))
    assert rc == 0, out[-4000:] + err[-2000:]
    assert not [n for n in os.listdir('/run/netns') if n.startswith(names.prefix)]
    with iproute() as ipr:
        assert get_link(ipr, names('a')) is None and get_link(ipr, names('b')) is None
    assert [read_sysctl(None, s['name']) for s in lab['lab_topology_sysctls']] == forwarding_before


def test_seed_lab_is_the_roles_default_shape(cleanup):
    """The seed's same-/24 topology builds with the seed's addresses (host <-> namespace pings)."""
    names = cleanup
    lab = {
        'lab': 'seed_lab',
        'lab_topology_namespaces': [names('uno'), names('dos')],
        'lab_topology_links': [
            {'name': names('uno'), 'addresses': ['10.0.0.1/24'],
             'peer': {'name': 'veth0', 'namespace': names('uno'), 'addresses': ['10.0.0.2/24']}},
            {'name': names('dos'), 'addresses': ['10.0.0.3/24'],
             'peer': {'name': 'veth0', 'namespace': names('dos'), 'addresses': ['10.0.0.4/24']}},
        ],
        # Only uno's side: with both host ports in one /24 the host answers dos through the
        # first connected route (uno's port). That is the seed's flaw the FIB lab fixes.
        'lab_ping_checks': [{'from': names('uno'), 'to': '10.0.0.1'}],
    }
    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0, out[-4000:] + err[-2000:]
    rc, out, err = run_playbook('playbooks/lab.yml', dict(lab, state='absent'))
    assert rc == 0, out[-4000:]
    assert not [n for n in os.listdir('/run/netns') if n.startswith(names.prefix)]
