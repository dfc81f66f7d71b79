"""A fleet on one machine: labs from topology data (labs/chain, labs/diamond), their
generated inventory, and the router role applied to every router through the netns
connection with forks > 1 - then real pings, real counters, a second run with no change, a
rollout that fails on one router and rolls back only that batch, and a teardown that leaves
nothing."""

import os
import re
import shutil
import time

import pytest
from conftest import ROOT, in_ns, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _keeper, _ports
from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_pins import PIN_ROOT
from ansible_collections.xdpkit.forwarding.plugins.module_utils._link_info import forwarded_datagrams
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    find_stats_map,
    interface_program,
    read_counters,
)

ECHOES = 20
# The routers the computed routes send h1 <-> h2 traffic through.
PATHS = {'chain': ['r1', 'r2', 'r3'], 'diamond': ['r1', 'r2', 'r4']}
ROUTERS = {'chain': ['r1', 'r2', 'r3'], 'diamond': ['r1', 'r2', 'r3', 'r4']}


def load_inventory(path):
    import yaml

    with open(path) as stream:
        inventory = yaml.safe_load(stream)
    hosts = {}
    for group in inventory['all']['children'].values():
        hosts.update(group['hosts'])
    return hosts


def redirected(hosts, router):
    """XDP_REDIRECT packets summed over the router's interfaces."""
    total = 0
    for ifname in hosts[router]['router_interfaces']:
        program = interface_program(hosts[router]['ansible_netns'], ifname)
        if program is None:
            continue
        fd = find_stats_map(program['id'])
        try:
            total += read_counters(fd)['XDP_REDIRECT']['packets']
        finally:
            os.close(fd)
    return total


def kernel_forwarded(hosts, router):
    counts = forwarded_datagrams(hosts[router]['ansible_netns'])
    return counts['ipv4'] + counts['ipv6']


def ping_both_ways(hosts, count):
    for source, target in (('h1', 'h2'), ('h2', 'h1')):
        for family in ('lab_ipv4', 'lab_ipv6'):
            in_ns(hosts[source]['ansible_netns'], 'ping', '-c', str(count), '-i', '0.02', '-W', '2',
                  hosts[target][family])


def attached(hosts, router):
    return [interface_program(hosts[router]['ansible_netns'], ifname) is not None
            for ifname in hosts[router]['router_interfaces']]


def recap(out):
    return {m.group(1): {'changed': int(m.group(2)), 'failed': int(m.group(3))}
            for m in re.finditer(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)', out, re.M)}


@pytest.fixture(params=['chain', 'diamond'])
def fleet(request, cleanup, tmp_path):
    """The lab built from labs/NAME/topology.yml with this test's prefix, its inventory in
    tmp_path beside a copy of the lab's group_vars; removed (and checked gone) afterwards."""
    lab = request.param
    for data in ('group_vars', 'host_vars'):
        if os.path.isdir(os.path.join(ROOT, 'labs', lab, data)):
            shutil.copytree(os.path.join(ROOT, 'labs', lab, data), tmp_path / data)
    inventory = tmp_path / 'inventory.yml'
    lab_vars = {'lab': lab, 'lab_prefix': cleanup.prefix, 'lab_inventory': str(inventory)}
    rc, out, err = run_playbook('playbooks/lab.yml', lab_vars)
    assert rc == 0, out[-4000:] + err[-2000:]
    try:
        yield lab, inventory, load_inventory(inventory)
    finally:
        rc, out, err = run_playbook('playbooks/lab.yml', dict(lab_vars, state='absent'))
        assert rc == 0, out[-4000:] + err[-2000:]
    assert not inventory.exists()
    assert not [ns for ns in list_netns() if ns.startswith(cleanup.prefix)]
    pins = os.listdir(PIN_ROOT) if os.path.isdir(PIN_ROOT) else []
    assert not [pin for pin in pins if pin.startswith(cleanup.prefix)]


def test_router_role_drives_every_router_of_a_lab(fleet):
    lab, inventory, hosts = fleet
    assert set(hosts) == {'h1', 'h2'} | set(ROUTERS[lab])
    rc, out, err = run_playbook('playbooks/router.yml', inventory=inventory, args=['--forks', '4'])
    assert rc == 0, out[-5000:] + err[-2000:]
    assert all(all(attached(hosts, router)) for router in ROUTERS[lab])

    ping_both_ways(hosts, 2)  # neighbours known from here on
    before = {router: (redirected(hosts, router), kernel_forwarded(hosts, router)) for router in ROUTERS[lab]}
    ping_both_ways(hosts, ECHOES)
    for router in ROUTERS[lab]:
        xdp = redirected(hosts, router) - before[router][0]
        kernel = kernel_forwarded(hosts, router) - before[router][1]
        if router in PATHS[lab]:
            # Requests and replies of both directions and both families cross every router of the path.
            assert xdp >= 4 * 2 * ECHOES, (router, xdp, kernel)
        else:
            assert xdp == 0, (router, xdp)  # the other path of the diamond carries nothing
        assert kernel == 0, ('the kernel of %s forwarded %d datagrams' % (router, kernel))

    rc, out, err = run_playbook('playbooks/router.yml', inventory=inventory, args=['--forks', '4'])
    assert rc == 0 and all(r['changed'] == 0 for r in recap(out).values()) and recap(out), out[-4000:]


def test_rollout_rolls_back_the_failing_batch_only(fleet, tmp_path):
    lab, inventory, hosts = fleet
    # r2 cannot pass: its verification wants more redirects than any probe sends.
    (tmp_path / 'host_vars').mkdir(exist_ok=True)
    (tmp_path / 'host_vars' / 'r2.yml').write_text('router_verify_min_redirects: 1000000000\n')
    rc, out, err = run_playbook('playbooks/rollout.yml', inventory=inventory, args=['--forks', '4'])
    assert rc != 0, out[-4000:]
    assert re.search(r'rollout stopped: batch r2 rolled back because r2 failed \(r2: verification failed', out), \
        out[-4000:]
    assert all(attached(hosts, 'r1')), 'the batch before the failure keeps the router'
    assert not any(attached(hosts, 'r2')), 'the failing batch is rolled back'
    later = [router for router in ROUTERS[lab] if router not in ('r1', 'r2')]
    assert not any(any(attached(hosts, router)) for router in later), 'the rollout stopped at the failure'
    assert recap(out)['r1']['failed'] == 0 and recap(out)['r2']['failed'] == 1

    # The kernel forwards where the router was rolled back; XDP still forwards on r1.
    ping_both_ways(hosts, 2)
    before = {router: (redirected(hosts, router), kernel_forwarded(hosts, router)) for router in ('r1', 'r2')}
    ping_both_ways(hosts, ECHOES)
    assert redirected(hosts, 'r1') - before['r1'][0] >= 4 * 2 * ECHOES
    assert kernel_forwarded(hosts, 'r2') - before['r2'][1] >= 4 * 2 * ECHOES


@pytest.mark.parametrize('fleet', ['chain'], indirect=True)
def test_router_verification_fails_naming_the_ports_no_keeper_vouches_for_and_the_leading_reasons(fleet):
    _lab, inventory, hosts = fleet
    rc, out, err = run_playbook('playbooks/router.yml', inventory=inventory, args=['--forks', '4'])
    assert rc == 0, out[-5000:] + err[-2000:]
    assert _keeper.stop(), 'the role started the keeper'
    time.sleep(_ports.LEASE_SECONDS + 0.3)
    rc, out, err = run_playbook('playbooks/router.yml', inventory=inventory,
                                args=['--forks', '4', '--tags', 'router_verify', '--limit', 'r2'])
    assert rc != 0, out[-4000:]
    ports = ', '.join('%s \\(lease ran out [0-9.]+ s ago\\)' % re.escape(port)
                      for port in hosts['r2']['router_interfaces'])
    assert re.search(r'r2: verification failed: the router hands every frame to the kernel on %s: no keeper vouches '
                     r'for the settings it caches of them \(MAC, rp_filter, accept_local\), because no keeper runs on '
                     r'this host; start it' % ports, out), out[-4000:]
    assert 'the router hands every frame to the kernel (slower, never wrong)' in out + err, 'xdp_stats warns too'
    # And says why no frame was redirected, counted by the router itself: the probes (and their ARP) went over.
    because = re.search(r'r2: verification failed:.*?not redirected because: (\w+) \+(\d+) \((.*?)\)', out, re.S)
    assert because, out[-4000:]
    assert because.group(1) == 'not_vouched' and int(because.group(2)) >= 10, because.group(0)
    assert because.group(3).startswith('the lease on the port')
    assert _keeper.ensure()
    rc, out, err = run_playbook('playbooks/router.yml', inventory=inventory,
                                args=['--forks', '4', '--tags', 'router_verify', '--limit', 'r2'])
    assert rc == 0, out[-4000:]
