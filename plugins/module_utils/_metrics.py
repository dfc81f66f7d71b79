# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The per-action counters of every xdpkit-style program attached on a host, in every network
namespace, in the Prometheus text exposition format (for node_exporter's textfile collector or
a scrape of tools/xdp_stats --prometheus).

A program counts when it has the xdp_stats_map the collection's programs keep; another tool's
program is left out, not guessed at.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns, netns_exists
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    ACTIONS,
    find_stats_map,
    possible_cpus,
    read_counters,
)

METRICS = (
    ('xdpkit_xdp_packets_total', 'packets', 'Packets an XDP program handled, by the action it returned.'),
    ('xdpkit_xdp_bytes_total', 'bytes', 'Bytes of the packets an XDP program handled, by the action it returned.'),
)


def attached_programs():
    """(namespace or '', interface, prog_id) of every XDP program on the host and in every
    named namespace."""
    found = []
    for namespace in [None] + list_netns():
        if namespace and not netns_exists(namespace):
            continue  # removed since the listing
        try:
            with iproute(namespace) as ipr:
                for link in dump(ipr.get_links):
                    attached = attached_program(ipr, link['index'])
                    if attached:
                        found.append((namespace or '', link.get_attr('IFLA_IFNAME'), attached['prog_id']))
        except OSError:
            continue  # the namespace went away while it was read
    return found


def collect():
    """One sample per counting program: namespace, interface, program name and id, counters."""
    ncpus = possible_cpus()
    samples = []
    for namespace, interface, prog_id in attached_programs():
        fd = find_stats_map(prog_id)
        if fd is None:
            continue
        try:
            counters = read_counters(fd, ncpus)
        finally:
            os.close(fd)
        samples.append({'namespace': namespace, 'interface': interface, 'prog_id': prog_id,
                        'program': sysbpf.program_info(prog_id)['name'] or '', 'counters': counters})
    return samples


def _label(value):
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def exposition(samples):
    """The samples as Prometheus text (version 0.0.4): one counter family per quantity."""
    lines = []
    for metric, field, text in METRICS:
        lines += ['# HELP %s %s' % (metric, text), '# TYPE %s counter' % metric]
        for sample in samples:
            for action in ACTIONS:
                labels = ','.join('%s="%s"' % (key, _label(value)) for key, value in (
                    ('namespace', sample['namespace']), ('interface', sample['interface']),
                    ('program', sample['program']), ('prog_id', sample['prog_id']), ('action', action)))
                lines.append('%s{%s} %d' % (metric, labels, sample['counters'][action][field]))
    return '\n'.join(lines) + '\n'


def write_textfile(path, text):
    """Replace `path` whole (node_exporter must never read half a file): written beside, renamed."""
    directory = os.path.dirname(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile('w', dir=directory, prefix='.' + os.path.basename(path), delete=False)
    try:
        with handle:
            handle.write(text)
        os.chmod(handle.name, 0o644)
        os.rename(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise
