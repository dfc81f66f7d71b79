# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] net.* sysctls inside a network namespace.

/proc/sys/net shows the namespace of the thread that opens the file, so the file is
opened inside `in_netns`. The value found before xdpkit first changed a key is kept in a
small JSON file under /run, so `state: absent` can put it back; the record is keyed by the
namespace's inode, so a re-created namespace of the same name starts afresh.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    in_netns,
    missing_netns_error,
    netns_exists,
    netns_inode,
)

STATE_DIR = '/run/xdpkit'
SAVED_FILE = os.path.join(STATE_DIR, 'sysctl-saved.json')
# Only the per-namespace network keys: a role aimed at a lab must not be able to touch
# kernel.* or vm.* on the host. Components are what interface names and keys consist of.
_KEY_RE = re.compile(r'^net(\.[A-Za-z0-9_-]+)+$')


def check_key(key):
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise XdpkitError(
            "sysctl key '%s' is not allowed: xdpkit only sets per-namespace net.* keys "
            "such as net.ipv4.conf.all.forwarding" % (key,))
    return key


def key_path(key):
    return '/proc/sys/' + key.replace('.', '/')


def normalize_value(value):
    # Multi-value sysctls print tab-separated; compare them word by word.
    return ' '.join(str(value).split())


def read_sysctl(namespace, key):
    with in_netns(namespace):
        try:
            with open(key_path(key)) as handle:
                return normalize_value(handle.read())
        except FileNotFoundError:
            raise XdpkitError("unknown sysctl key '%s' in %s (no %s); check the spelling and the interface name" % (
                key, describe_ns(namespace), key_path(key)))


def write_sysctl(namespace, key, value):
    with in_netns(namespace):
        try:
            with open(key_path(key), 'w') as handle:
                handle.write(value)
        except OSError as exc:
            raise XdpkitError("sysctl '%s' in %s: the kernel refused value '%s': %s" % (
                key, describe_ns(namespace), value, exc.strerror))


def _load_saved():
    try:
        with open(SAVED_FILE) as handle:
            saved = json.load(handle)
    except (FileNotFoundError, ValueError):
        return {}
    # Records of namespaces that are gone (or were re-created) can never be restored.
    return {k: v for k, v in saved.items() if _record_is_live(k)}


def _record_is_live(record):
    namespace, rest = record.split('@', 1)
    inode = rest.split(':', 1)[0]
    if namespace and not netns_exists(namespace):
        return False
    try:
        return netns_inode(namespace or None) == int(inode)
    except (OSError, ValueError):
        return False


def _store_saved(saved):
    os.makedirs(STATE_DIR, exist_ok=True)
    tmp = SAVED_FILE + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(saved, handle, indent=1, sort_keys=True)
    os.replace(tmp, SAVED_FILE)


def saved_key(namespace, key):
    return '%s@%d:%s' % (namespace or '', netns_inode(namespace), key)


class SysctlManager:
    def __init__(self, params, check_mode=False):
        self.namespace = params.get('namespace') or None
        self.key = check_key(params['name'])
        self.state = params['state']
        self.value = None if params.get('value') is None else normalize_value(params['value'])
        if self.state == 'present' and self.value is None:
            raise XdpkitError("sysctl '%s': state=present needs a value" % self.key)
        self.check_mode = check_mode

    def run(self):
        diff = DifferenceTracker()
        if self.namespace and not netns_exists(self.namespace):
            if self.state == 'absent':
                diff.add('value', None, None)
                return self._result(diff)
            raise missing_netns_error(self.namespace)
        current = read_sysctl(self.namespace, self.key)
        saved = _load_saved()
        record = saved_key(self.namespace, self.key)
        if self.state == 'present':
            wanted = self.value
        else:
            # absent = "as it was before xdpkit set it"; nothing recorded means nothing to undo.
            wanted = saved.get(record, current)
        changed = diff.add('value', current, wanted)
        if not self.check_mode:
            # Remember the original before writing: a run killed in between must still be
            # able to put it back.
            if self.state == 'present' and changed and record not in saved:
                saved[record] = current
                _store_saved(saved)
            if changed:
                write_sysctl(self.namespace, self.key, wanted)
                if read_sysctl(self.namespace, self.key) != wanted:
                    raise XdpkitError("sysctl '%s' in %s: wrote '%s' but the kernel reports '%s'" % (
                        self.key, describe_ns(self.namespace), wanted, read_sysctl(self.namespace, self.key)))
            if self.state == 'absent' and record in saved:
                del saved[record]
                _store_saved(saved)
        return self._result(diff)

    def _result(self, diff):
        value = diff.diff_of('value')
        return {
            'changed': diff.changed,
            'name': self.key,
            'namespace': self.namespace,
            'value': value['after'],
            'previous': value['before'],
            'diff': diff.diff(),
        }


class SysctlSetManager:
    """Many keys in one call (forwarding for both families, a lab's settings in all of its
    namespaces): one module start instead of one per key. Every key is read before any is
    written, and the keys written before one the kernel refuses are put back, so a failure
    leaves nothing half-set."""

    ENTRY_KEYS = ('name', 'value', 'namespace')

    def __init__(self, params, check_mode=False):
        self.state = params['state']
        self.check_mode = check_mode
        self.managers = []
        seen = set()
        for entry in params['sysctls']:
            if not isinstance(entry, dict) or not entry.get('name'):
                raise XdpkitError("sysctls: every entry needs a name, e.g. {name: net.ipv4.conf.all.forwarding, "
                                  "value: '1'}; got %r" % (entry,))
            unknown = sorted(set(entry) - set(self.ENTRY_KEYS))
            if unknown:
                raise XdpkitError("sysctls: entry %s has unknown keys %s; an entry takes %s" % (
                    entry['name'], ', '.join(unknown), ', '.join(self.ENTRY_KEYS)))
            namespace = entry.get('namespace') or params.get('namespace') or None
            if (namespace, entry['name']) in seen:
                raise XdpkitError("sysctls: '%s' is given twice for %s" % (entry['name'], describe_ns(namespace)))
            seen.add((namespace, entry['name']))
            self.managers.append(SysctlManager({'name': entry['name'], 'value': entry.get('value'),
                                                'namespace': namespace, 'state': self.state}, check_mode))

    def run(self):
        for manager in self.managers:
            # A missing namespace or an unknown key fails before anything is written.
            if manager.namespace and not netns_exists(manager.namespace):
                if self.state == 'present':
                    raise missing_netns_error(manager.namespace)
            else:
                read_sysctl(manager.namespace, manager.key)
        results = []
        try:
            for manager in self.managers:
                results.append(manager.run())
        except XdpkitError:
            if not self.check_mode:
                for done in reversed(results):
                    if done['changed']:
                        write_sysctl(done['namespace'], done['name'], done['previous'])
            raise
        diff = DifferenceTracker()
        for r in results:
            diff.add(_diff_key(r), r['previous'], r['value'], r['changed'])
        return {
            'changed': diff.changed,
            'sysctls': [{'name': r['name'], 'namespace': r['namespace'], 'value': r['value'],
                         'previous': r['previous']} for r in results],
            'diff': diff.diff(),
        }


def _diff_key(result):
    return '%s:%s' % (result['namespace'], result['name']) if result['namespace'] else result['name']
