"""Fleet scale: seconds to build a generated chain lab, converge the router role on every
router through the netns connection (forks = routers), and re-run it with nothing to change;
for chains of 4 and 16 routers and for one router with 1,000 extra prefixes. Goal: 16 routers
take at most 3x the time of 4. Results: benchmarks/results/fleet_scale.{json,md}.

    ./scripts/benchmark-fleet            # about 5 minutes
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
RESULTS = os.path.join(ROOT, 'benchmarks', 'results')


def chain(name, routers, extra_prefixes=0):
    nodes = {'h1': {'kind': 'host'}, 'h2': {'kind': 'host'}}
    names = ['h1'] + ['r%d' % i for i in range(1, routers + 1)] + ['h2']
    nodes.update({n: {'kind': 'router'} for n in names[1:-1]})
    links = [['%s:eth%d' % (a, 1 if i else 0), '%s:eth0' % b]
             for i, (a, b) in enumerate(zip(names[:-1], names[1:], strict=True))]
    return {'prefix': 'xbf-%s-' % name, 'nodes': nodes, 'links': links,
            'pools': {'ipv4': '10.99.0.0/22', 'ipv6': 'fd00:99::/48'},
            'extra_prefixes': {'count': extra_prefixes, 'towards': 'h2'}}


def playbook(args, extra_vars, inventory=None, compiles=None):
    """(seconds, stdout); with `compiles` (a dict), also the run's bcc compiles and their seconds."""
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook')] + args + ['-e', json.dumps(extra_vars)]
    if inventory:
        cmd += ['-i', inventory]
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, 'compiles.json')
        env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, 'benchmarks', 'callback_plugins'),
                   ANSIBLE_CALLBACKS_ENABLED='compile_count', XDPKIT_COMPILE_REPORT=report)
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        if compiles is not None and os.path.exists(report):
            with open(report) as stream:
                compiles.update(json.load(stream))
    if proc.returncode != 0:
        sys.exit('%s failed:\n%s' % (' '.join(cmd), proc.stdout[-3000:] + proc.stderr[-2000:]))
    return seconds, proc.stdout


def measure(name, routers, extra_prefixes, workdir):
    spec = chain(name, routers, extra_prefixes)
    inventory = os.path.join(workdir, name + '.yml')
    lab_vars = {'lab_topology_spec': spec, 'lab_inventory': inventory, 'lab': 'seed', 'lab_ping_checks': []}
    row = {'case': name, 'routers': routers, 'extra_prefixes': extra_prefixes}
    try:
        row['lab_build_s'] = playbook(['playbooks/lab.yml'], lab_vars)[0]
        router_vars = {'router_verify': False}
        forks = ['--forks', str(max(routers, 1))]
        compiles = {}
        row['converge_s'] = playbook(['playbooks/router.yml'] + forks, router_vars, inventory, compiles)[0]
        row['converge_compiles'] = compiles.get('compiles', 0)
        row['converge_compile_s'] = compiles.get('compile_seconds', 0.0)
        row['rerun_s'], out = playbook(['playbooks/router.yml'] + forks, router_vars, inventory)
        row['rerun_unchanged'] = 'changed=0' in out and not any(
            'changed=' in line and 'changed=0' not in line for line in out.splitlines())
        row['lab_rerun_s'] = playbook(['playbooks/lab.yml'], lab_vars)[0]
    finally:
        row['teardown_s'] = playbook(['playbooks/lab.yml'], dict(lab_vars, state='absent'))[0]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefixes', type=int, default=1000, help='extra prefixes for the one-router case')
    options = parser.parse_args()
    cases = [('chain4', 4, 0), ('chain16', 16, 0), ('prefixes', 1, options.prefixes)]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, routers, extra in cases:
            rows.append(measure(name, routers, extra, workdir))
            print(json.dumps(rows[-1]), flush=True)
    ratio = rows[1]['converge_s'] / rows[0]['converge_s']
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'fleet_scale.json'), 'w') as stream:
        json.dump({'rows': rows, 'converge_ratio_16_to_4': ratio, 'cpus': os.cpu_count()}, stream, indent=1)
    lines = ['| case | routers | extra prefixes | lab build s | converge s | bcc compiles (s) | re-run s | '
             're-run unchanged | lab re-run s | teardown s |', '|' + '---|' * 10]
    for row in rows:
        lines.append('| %(case)s | %(routers)d | %(extra_prefixes)d | %(lab_build_s).1f | %(converge_s).1f | '
                     '%(converge_compiles)d (%(converge_compile_s).1f) | %(rerun_s).1f | %(rerun_unchanged)s | '
                     '%(lab_rerun_s).1f | %(teardown_s).1f |' % row)
    lines.append('')
    lines.append('16 routers / 4 routers, converge: %.2fx (goal: at most 3x) on %d CPUs' % (ratio, os.cpu_count()))
    with open(os.path.join(RESULTS, 'fleet_scale.md'), 'w') as stream:
        stream.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
