"""Fleet scale: seconds to build a generated chain lab, converge the router role on every
router through the netns connection (forks = routers), and re-run it with nothing to change;
for chains of 4 and 16 routers with computed static routes, the same chains with routing: ospf
(FRR in every router; the lab build includes starting FRR and waiting until every router has
a route to every host subnet in both families), and one router with 1,000 extra prefixes.
Goal: 16 static routers take at most 3x the time of 4. Results:
benchmarks/results/fleet_scale.{json,md}.

    ./scripts/benchmark-fleet            # about 6 minutes
    ./scripts/benchmark-fleet --cases ospf2   # one case (any of CASES)
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


def chain(name, routers, extra_prefixes=0, routing='static', prefix='xbf-'):
    nodes = {'h1': {'kind': 'host'}, 'h2': {'kind': 'host'}}
    names = ['h1'] + ['r%d' % i for i in range(1, routers + 1)] + ['h2']
    nodes.update({n: {'kind': 'router'} for n in names[1:-1]})
    links = [['%s:eth%d' % (a, 1 if i else 0), '%s:eth0' % b]
             for i, (a, b) in enumerate(zip(names[:-1], names[1:], strict=True))]
    spec = {'prefix': '%s%s-' % (prefix, name), 'nodes': nodes, 'links': links, 'routing': routing,
            'pools': {'ipv4': '10.99.0.0/22', 'ipv6': 'fd00:99::/48'},
            'extra_prefixes': {'count': extra_prefixes, 'towards': 'h2'}}
    if routing == 'ospf':
        # The lab timers of labs/chain-ospf; a router ID and an advertised loopback each.
        spec['ospf'] = {'hello': 1, 'dead': 4}
        spec['pools'].update(loopback_ipv4='10.98.0.0/24', loopback_ipv6='fd00:98::/64')
    return spec


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


def unchanged(out):
    return 'changed=0' in out and not any('changed=' in line and 'changed=0' not in line for line in out.splitlines())


def measure(name, routers, extra_prefixes, workdir, routing='static', prefix='xbf-'):
    spec = chain(name, routers, extra_prefixes, routing, prefix)
    inventory = os.path.join(workdir, name + '.yml')
    lab_vars = {'lab_topology_spec': spec, 'lab_inventory': inventory, 'lab': 'seed', 'lab_ping_checks': []}
    row = {'case': name, 'routers': routers, 'extra_prefixes': extra_prefixes, 'routing': routing}
    try:
        row['lab_build_s'] = playbook(['playbooks/lab.yml'], lab_vars)[0]
        router_vars = {'router_verify': False}
        forks = ['--forks', str(max(routers, 1))]
        compiles = {}
        row['converge_s'] = playbook(['playbooks/router.yml'] + forks, router_vars, inventory, compiles)[0]
        row['converge_compiles'] = compiles.get('compiles', 0)
        row['converge_compile_s'] = compiles.get('compile_seconds', 0.0)
        row['rerun_s'], out = playbook(['playbooks/router.yml'] + forks, router_vars, inventory)
        row['rerun_unchanged'] = unchanged(out)
        # With ospf an unchanged lab also means no FRR instance restarted.
        row['lab_rerun_s'], out = playbook(['playbooks/lab.yml'], lab_vars)
        row['lab_rerun_unchanged'] = unchanged(out)
    finally:
        row['teardown_s'] = playbook(['playbooks/lab.yml'], dict(lab_vars, state='absent'))[0]
    return row


# name: (routers, extra prefixes, routing). ospf2 is not in the default run (the smoke test's case).
CASES = {'chain4': (4, 0, 'static'), 'chain16': (16, 0, 'static'), 'ospf4': (4, 0, 'ospf'),
         'ospf16': (16, 0, 'ospf'), 'prefixes': (1, None, 'static'), 'ospf2': (2, 0, 'ospf')}
DEFAULT_CASES = ['chain4', 'chain16', 'ospf4', 'ospf16', 'prefixes']


def ratio(rows, small, large, phase):
    by_case = {row['case']: row for row in rows}
    if small in by_case and large in by_case:
        return by_case[large][phase] / by_case[small][phase]
    return None


def report(rows):
    """The results' JSON document and their Markdown table."""
    ratios = {'converge_ratio_16_to_4': ratio(rows, 'chain4', 'chain16', 'converge_s'),
              'ospf_converge_ratio_16_to_4': ratio(rows, 'ospf4', 'ospf16', 'converge_s'),
              'ospf_lab_build_ratio_16_to_4': ratio(rows, 'ospf4', 'ospf16', 'lab_build_s')}
    lines = ['| case | routing | routers | extra prefixes | lab build s | converge s | bcc compiles (s) | re-run s | '
             're-run unchanged | lab re-run s (unchanged) | teardown s |', '|' + '---|' * 11]
    for row in rows:
        lines.append('| %(case)s | %(routing)s | %(routers)d | %(extra_prefixes)d | %(lab_build_s).1f | '
                     '%(converge_s).1f | %(converge_compiles)d (%(converge_compile_s).1f) | %(rerun_s).1f | '
                     '%(rerun_unchanged)s | %(lab_rerun_s).1f (%(lab_rerun_unchanged)s) | %(teardown_s).1f |' % row)
    lines.append('')
    lines.append('ospf: the lab build includes starting FRR in every router and waiting until every router has a '
                 'route to every host subnet (both families); teardown stops FRR first.')
    if ratios['converge_ratio_16_to_4'] is not None:
        lines.append('')
        lines.append('16 routers / 4 routers, converge: %.2fx (goal: at most 3x) on %d CPUs'
                     % (ratios['converge_ratio_16_to_4'], os.cpu_count()))
    if ratios['ospf_converge_ratio_16_to_4'] is not None:
        lines.append('')
        lines.append('ospf, 16 routers / 4 routers: lab build %.2fx, converge %.2fx'
                     % (ratios['ospf_lab_build_ratio_16_to_4'], ratios['ospf_converge_ratio_16_to_4']))
    return dict(rows=rows, cpus=os.cpu_count(), **ratios), '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prefixes', type=int, default=1000, help='extra prefixes for the one-router case')
    parser.add_argument('--cases', nargs='+', choices=sorted(CASES), default=DEFAULT_CASES, help='cases to run')
    parser.add_argument('--out', default=RESULTS, help='directory for fleet_scale.{json,md}')
    parser.add_argument('--prefix', default='xbf-', help='in front of every namespace and FRR instance (short)')
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in options.cases:
            routers, extra, routing = CASES[name]
            rows.append(measure(name, routers, options.prefixes if extra is None else extra, workdir, routing,
                                options.prefix))
            print(json.dumps(rows[-1]), flush=True)
    document, table = report(rows)
    os.makedirs(options.out, exist_ok=True)
    with open(os.path.join(options.out, 'fleet_scale.json'), 'w') as stream:
        json.dump(document, stream, indent=1)
    with open(os.path.join(options.out, 'fleet_scale.md'), 'w') as stream:
        stream.write(table)
    print(table, end='')


if __name__ == '__main__':
    main()
