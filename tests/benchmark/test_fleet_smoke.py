"""The fleet benchmark end to end on its smallest ospf case (a chain of 2 routers with FRR): it
runs, every phase is timed, the re-runs change nothing, the outputs are written and the lab is
gone. Nothing is asserted on speed (that is what the benchmark itself is for)."""

import json
import os
import subprocess

from conftest import ROOT, VENV_BIN


def test_fleet_benchmark_runs_an_ospf_chain_of_two(cleanup, tmp_path):
    proc = subprocess.run(
        [os.path.join(VENV_BIN, 'python'), os.path.join(ROOT, 'benchmarks', 'fleet_scale.py'),
         '--cases', 'ospf2', '--prefix', cleanup.prefix, '--out', str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    with open(tmp_path / 'fleet_scale.json') as handle:
        results = json.load(handle)
    [row] = results['rows']
    assert row['case'] == 'ospf2' and row['routing'] == 'ospf' and row['routers'] == 2, row
    for phase in ('lab_build_s', 'converge_s', 'rerun_s', 'lab_rerun_s', 'teardown_s'):
        assert row[phase] > 0, (phase, row)
    assert row['rerun_unchanged'] and row['lab_rerun_unchanged'], row
    assert '| ospf2 | ospf | 2 |' in (tmp_path / 'fleet_scale.md').read_text()
    # The teardown stopped FRR (its directories go with it) and removed the namespaces.
    for root in ('/run/netns', '/etc/frr', '/var/run/frr'):
        left = [n for n in os.listdir(root) if n.startswith(cleanup.prefix)] if os.path.isdir(root) else []
        assert not left, (root, left)
