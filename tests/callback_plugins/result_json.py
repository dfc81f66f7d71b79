# Test helper: a stdout callback that prints each task result whole, diff included, as one
# JSON line, so tests can read what a module returned (the built-in json callback left
# ansible-core for ansible.posix, and the default one strips `diff`).
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: result_json
type: stdout
short_description: one JSON line per task result (test helper)
description: Prints every task result, including diff, as a JSON line prefixed with RESULT.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'result_json'

    def _emit(self, result, **extra):
        data = dict(result._result)
        data['_host'] = result._host.get_name()
        data.update(extra)
        self._display.display('RESULT ' + json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._emit(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._emit(result, failed=True, unreachable=True)
