# Benchmark helper: counts the bcc compiles of a run from xdp_program's results and writes
# {"compiles": N, "compile_seconds": S, "loads": L} to the file named by XDPKIT_COMPILE_REPORT
# at the end of the playbook. Enabled with ANSIBLE_CALLBACKS_ENABLED=compile_count.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: compile_count
type: aggregate
short_description: bcc compiles and their seconds in a run (benchmark helper)
description: Sums xdp_program's compiled and compile_seconds over a run, loops included.
requirements:
  - XDPKIT_COMPILE_REPORT names the JSON file to write
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'compile_count'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.totals = {'compiles': 0, 'compile_seconds': 0.0, 'loads': 0}

    def _count(self, result):
        # One program per result, or many: a loop's results, or one run's programs and receivers
        # (whose top-level compiled and compile_seconds only sum them up).
        if not isinstance(result, dict):
            return
        batches = [result.get(key) for key in ('results', 'programs', 'receivers') if result.get(key)]
        for batch in batches:
            for item in batch:
                self._count(item)
        if 'program' in result and 'programs' not in result:
            # One interface (with receivers, its own entry is the top level).
            own = result.get('compile_seconds') or 0
            if result.get('receivers'):
                own -= sum(r.get('compile_seconds') or 0 for r in result['receivers'])
                compiled = own > 0
            else:
                compiled = bool(result.get('compiled'))
            self.totals['compiles'] += compiled
            self.totals['compile_seconds'] += float(max(own, 0))
            # With receivers, changed may be theirs alone: exact for a converge from nothing.
            self.totals['loads'] += bool(result.get('program') and result.get('changed'))

    def v2_runner_on_ok(self, result):
        self._count(result._result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('XDPKIT_COMPILE_REPORT')
        if path:
            with open(path, 'w') as handle:
                json.dump(dict(self.totals, compile_seconds=round(self.totals['compile_seconds'], 2)), handle)
