"""Check mode tells the truth: on a host where nothing of a run exists yet, --check (and
--check --diff) passes, reports the changes the real run would make, and changes nothing -
no namespace, link, pin, program, owned-program record or sysctl; on a converged host it
reports changed=0."""

import os
import re
import time

import bpf_run
from conftest import run_module, run_playbook

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _keeper
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import read_sysctl

FORWARDING = ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding')


def recap(stdout):
    """Sum of the PLAY RECAP counters over every host."""
    totals = {'ok': 0, 'changed': 0, 'unreachable': 0, 'failed': 0}
    found = re.findall(r'ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', stdout)
    assert found, stdout[-3000:]
    for row in found:
        for key, value in zip(totals, row, strict=True):
            totals[key] += int(value)
    return totals


def files_under(root):
    found = []
    for directory, _dirs, files in os.walk(root):
        found.append(os.path.relpath(directory, root))
        found.extend(os.path.relpath(os.path.join(directory, name), root) for name in files)
    return sorted(found)


def machine_state():
    """Everything a run could leave behind, except lock files (check mode takes the locks too);
    the keeper by its pid (its own record and log are its to change)."""
    with iproute() as ipr:
        links = sorted(msg.get_attr('IFLA_IFNAME') for msg in ipr.get_links())
    return {
        'namespaces': sorted(list_netns()),
        'links': links,
        'pins': files_under('/sys/fs/bpf'),
        'xdpkit_state': [f for f in files_under('/run/xdpkit')
                         if not os.path.basename(f).startswith(('lock', 'keeper.'))],
        'keeper': (_keeper.running() or {}).get('pid'),
        'sysctls': [read_sysctl(None, key) for key in FORWARDING],
    }


def new_programs(before):
    """BPF programs loaded since `before` that are still there (freeing takes a grace period)."""
    deadline = time.monotonic() + 5
    while True:
        new = set(bpf_run.prog_ids()) - before
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.5)


def assert_check_changes_nothing(playbook, extra_vars, inventory=None, expect_changes=True):
    if expect_changes:
        # A fresh host: no keeper either (an earlier test's may still be on its way out).
        _keeper.stop()
    before, programs = machine_state(), set(bpf_run.prog_ids())
    for args in ((), ('--diff',)):
        rc, out, err = run_playbook(playbook, extra_vars, check=True, inventory=inventory, args=args)
        assert rc == 0, out[-4000:] + err[-2000:]
        totals = recap(out)
        assert totals['failed'] == 0 and totals['unreachable'] == 0, out[-4000:]
        if expect_changes:
            assert totals['changed'] > 0, 'check mode predicted no change on a fresh host:\n' + out[-3000:]
        else:
            assert totals['changed'] == 0, 'check mode on a converged host predicted changes:\n' + out[-4000:]
        assert machine_state() == before, 'check mode (%s) changed the machine' % ' '.join(('--check',) + args)
        assert not new_programs(programs), 'check mode loaded BPF programs'
    return out


def redirected(ports):
    return sum(run_module('xdp_stats', {'interface': port})['stats']['XDP_REDIRECT']['packets'] for port in ports)


def test_site_check_mode_on_a_fresh_host_then_on_a_converged_one(cleanup):
    prefix = cleanup.prefix
    scenario = {'xdpkit_name_prefix': prefix}
    try:
        out = assert_check_changes_nothing('site.yml', scenario)
        predicted = recap(out)['changed']

        rc, out, err = run_playbook('site.yml', scenario)
        assert rc == 0, out[-4000:] + err[-2000:]
        # What check mode said is what the real run did.
        assert recap(out)['changed'] == predicted, out[-4000:]

        assert_check_changes_nothing('site.yml', scenario, expect_changes=False)

        # A real re-run changes nothing, so it sends no verification traffic and says what the
        # last verification saw; verify_always sends it again.
        ports = [prefix + 'fib-uno', prefix + 'fib-dos']
        before = redirected(ports)
        rc, out, err = run_playbook('site.yml', scenario)
        assert rc == 0 and recap(out)['changed'] == 0, out[-4000:] + err[-2000:]
        flat = ' '.join(out.split())
        for name in ('hardcoded', 'map', 'fib'):
            assert '%s: nothing changed since the verification at' % name in flat, out[-4000:]
        assert 'fib: verification ping, 40 echo requests' in flat  # what the converge's verification saw
        assert redirected(ports) == before, 'a run that changed nothing sent verification traffic'
        rc, out, err = run_playbook('site.yml', dict(scenario, xdpkit_verify_always=True))
        assert rc == 0 and recap(out)['changed'] == 0, out[-4000:] + err[-2000:]
        assert 'nothing changed since the verification' not in ' '.join(out.split())
        assert redirected(ports) >= before + 2 * 40, 'xdpkit_verify_always=true sent no traffic'
    finally:
        rc, out, err = run_playbook('site.yml', dict(scenario, state='absent'))
        assert rc == 0, out[-4000:] + err[-2000:]


def test_lab_and_router_check_mode_on_a_fresh_lab_then_on_a_converged_one(cleanup, tmp_path):
    inventory = tmp_path / 'inventory.yml'
    lab = {'lab': 'chain', 'lab_prefix': cleanup.prefix, 'lab_inventory': str(inventory)}
    try:
        assert_check_changes_nothing('playbooks/lab.yml', lab)
        assert not inventory.exists(), 'check mode wrote the inventory'

        rc, out, err = run_playbook('playbooks/lab.yml', lab)
        assert rc == 0, out[-4000:] + err[-2000:]
        # No router attached yet: check mode predicts every router's attach and changes nothing.
        out = assert_check_changes_nothing('playbooks/router.yml', {}, inventory=inventory)
        predicted = recap(out)['changed']
        rc, out, err = run_playbook('playbooks/router.yml', {}, inventory=inventory, args=('--forks', '3'))
        assert rc == 0, out[-4000:] + err[-2000:]
        assert recap(out)['changed'] == predicted, out[-4000:]
        assert_check_changes_nothing('playbooks/router.yml', {}, inventory=inventory, expect_changes=False)
    finally:
        run_playbook('playbooks/router.yml', {'state': 'absent'}, inventory=inventory)
        rc, out, err = run_playbook('playbooks/lab.yml', dict(lab, state='absent'))
        assert rc == 0, out[-4000:] + err[-2000:]
