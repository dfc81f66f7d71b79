# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of xdp_program: read the BPF C sources here and ship them as text.

Modules travel to the target without the collection's other files, so bpf/*.c (or the
user's src) is read on the controller, with the local headers it includes, and passed to
the module as `source_files`. The same task works over SSH as on localhost.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_source import read_source_tree
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError

BPF_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'bpf'))
_PROGRAM_RE = re.compile(r'^[A-Za-z0-9_]+$')


def program_path(program):
    if not _PROGRAM_RE.match(program):
        raise AnsibleActionFail("program %r is not a name from the collection's bpf/ directory" % program)
    path = os.path.join(BPF_DIR, program + '.c')
    if not os.path.isfile(path):
        known = sorted(f[:-2] for f in os.listdir(BPF_DIR) if f.endswith('.c'))
        raise AnsibleActionFail('unknown program %r; the collection has: %s' % (program, ', '.join(known)))
    return path


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    # async: the module (a compile can take seconds per port) runs in the background like any
    # other; the controller side only reads the sources first.
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        args = dict(self._task.args)
        program = args.pop('program', None)
        src = args.pop('src', None)
        if program and src:
            raise AnsibleActionFail('program and src are mutually exclusive')
        if args.get('state', 'present') == 'present' and not args.get('source_files'):
            if program:
                path = program_path(program)
            elif src:
                path = self._find_needle('files', src)
                if not os.path.isfile(path):
                    raise AnsibleActionFail('src %r is not a regular file' % src)
            else:
                raise AnsibleActionFail("give program (one of the collection's bpf/ programs) or src")
            try:
                args['source_files'] = read_source_tree(path)
            except XdpkitError as exc:
                raise AnsibleActionFail(str(exc))
            args['source_main'] = os.path.basename(path)
        present = args.get('state', 'present') == 'present'
        if present and args.get('receivers') and not args.get('receiver_source_files'):
            try:
                args['receiver_source_files'] = read_source_tree(program_path('xdp_pass'))
            except XdpkitError as exc:
                raise AnsibleActionFail(str(exc))
        result.update(self._execute_module(module_name='xdpkit.forwarding.xdp_program', module_args=args,
                                           task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
