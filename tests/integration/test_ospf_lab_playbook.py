"""labs/chain-ospf through playbooks/lab.yml: FRR in every router learns the routes the
collection no longer computes; a re-run changes and restarts nothing; absent stops every FRR
process by its pid and leaves nothing; a lab that needs FRR where it is missing, or names a
routing that does not exist, fails before anything is made."""

import json
import os
import subprocess

import yaml

from conftest import ROOT, VENV_BIN, ansible_env, run_module, run_playbook
from test_lab_playbook import recap

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _frr
from ansible_collections.xdpkit.forwarding.plugins.module_utils._link_info import main_table_routes
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute

ROUTERS = ('r1', 'r2', 'r3')


def ospf_prefixes(ns):
    """The prefixes FRR's OSPF installed in the namespace's main table, read as link_info reads them."""
    with iproute(ns) as ipr:
        return {route['dest'] for route in main_table_routes(ipr) if route['protocol'] == 'ospf'}


def frr_processes(prefix):
    """pid -> pathspace of every FRR daemon whose pathspace carries the prefix (read from /proc)."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink('/proc/%s/exe' % entry)
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = handle.read().decode(errors='replace').split('\0')
        except OSError:
            continue
        if exe.startswith(_frr.FRR_BIN + '/') and '-N' in argv and argv[argv.index('-N') + 1].startswith(prefix):
            found[int(entry)] = argv[argv.index('-N') + 1]
    return found


def lab_namespaces(prefix):
    return [n for n in os.listdir('/run/netns') if n.startswith(prefix)] if os.path.isdir('/run/netns') else []


def test_chain_ospf_lab_converges_reruns_unchanged_and_leaves_nothing(cleanup, tmp_path):
    names = cleanup
    lab = {'lab': 'chain-ospf', 'lab_prefix': names.prefix, 'lab_inventory': str(tmp_path / 'inventory.yml')}
    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0, out[-4000:] + err[-2000:]
    # The playbook's pings, both families, both ways.
    for target in ('10.85.0.14', 'fd00:85:0:3::2', '10.85.0.1', 'fd00:85::1'):
        assert '-> %s' % target in out, out[-3000:]
    namespace = {r: '%scho-%s' % (names.prefix, r) for r in ROUTERS}
    # No route of a router was computed: r1 learned the far host subnet and r3's loopback from FRR.
    far = {'10.85.0.12/30', 'fd00:85:0:3::/64', '10.85.255.3/32', 'fd00:85:ff::3/128'}
    assert far <= ospf_prefixes(namespace['r1'])
    assert {'10.85.0.0/30', 'fd00:85::/64'} <= ospf_prefixes(namespace['r3'])
    # The collection's own link_info shows what FRR installed, through the kernel's nexthop objects.
    shown = run_module('link_info', {'namespace': namespace['r1'], 'routes': True})
    learned = {r['dest']: r for r in shown['routes'] if r['protocol'] == 'ospf'}
    assert far <= set(learned), shown['routes']
    assert learned['10.85.0.12/30']['nexthops'] == [{'gateway': '10.85.0.6', 'device': 'eth1'}]
    assert learned['10.85.0.12/30']['nexthop_object'] is True
    running = frr_processes(names.prefix)
    assert sorted(set(running.values())) == sorted(namespace.values())
    # Readable beside the inventory: each router's frr.conf, and the inventory says how it routes.
    for router in ROUTERS:
        text = (tmp_path / 'frr' / (router + '.conf')).read_text()
        assert text == open('/etc/frr/%s/frr.conf' % namespace[router]).read()
        assert 'ip ospf network point-to-point' in text
    inventory = yaml.safe_load((tmp_path / 'inventory.yml').read_text())
    r2 = inventory['all']['children']['router']['hosts']['r2']
    assert r2['lab_routing'] == 'ospf' and r2['lab_router_id'] == '10.85.255.2'

    rc, out, err = run_playbook('playbooks/lab.yml', lab)
    assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]
    assert frr_processes(names.prefix) == running, 'a re-run must restart no FRR daemon'

    rc, out, err = run_playbook('playbooks/lab.yml', dict(lab, state='absent'))
    assert rc == 0, out[-4000:] + err[-2000:]
    assert not frr_processes(names.prefix)
    for pid in running:
        assert not os.path.exists('/proc/%d' % pid) or open('/proc/%d/stat' % pid).read().split()[2] == 'Z'
    for ns in namespace.values():
        assert not os.path.exists(_frr.conf_dir(ns)) and not os.path.exists(_frr.run_dir(ns))
    assert not lab_namespaces(names.prefix)
    assert not (tmp_path / 'frr').exists() and not (tmp_path / 'inventory.yml').exists()


def test_ospf_lab_without_frr_fails_before_anything_is_made(cleanup, tmp_path):
    """FRR really missing: the playbook runs in a mount namespace where /usr/lib/frr is an empty tmpfs."""
    names = cleanup
    lab = {'lab': 'chain-ospf', 'lab_prefix': names.prefix, 'lab_inventory': str(tmp_path / 'inventory.yml'),
           'lab_topology_prerequisites': False}
    playbook = [os.path.join(VENV_BIN, 'ansible-playbook'), 'playbooks/lab.yml', '-e', json.dumps(lab)]
    script = 'mount -t tmpfs xdpkit-no-frr /usr/lib/frr && exec "$@"'
    env = ansible_env()
    env['ANSIBLE_STDOUT_CALLBACK'] = 'default'
    proc = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh'] + playbook,
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert 'FRR is not installed' in proc.stdout and 'apt-get install frr frr-pythontools' in proc.stdout, \
        proc.stdout[-3000:]
    assert not lab_namespaces(names.prefix) and not frr_processes(names.prefix)
    assert os.access('/usr/lib/frr/watchfrr', os.X_OK), 'the host FRR is untouched'


def test_unknown_routing_fails_naming_the_ones_that_exist(cleanup, tmp_path):
    names = cleanup
    with open(os.path.join(ROOT, 'labs', 'chain-ospf', 'topology.yml')) as handle:
        spec = yaml.safe_load(handle)['lab_topology_spec']
    spec.update(prefix=names.prefix, routing='rip', ospf={'hello': 1, 'dead': 4})
    rc, out, err = run_playbook('playbooks/lab.yml', {'lab': 'chain-ospf', 'lab_topology_spec': spec,
                                                      'lab_inventory': str(tmp_path / 'inventory.yml')})
    assert rc != 0 and "routing is 'rip'; it is one of static, ospf" in out + err, out[-3000:]
    assert not lab_namespaces(names.prefix) and not frr_processes(names.prefix)
