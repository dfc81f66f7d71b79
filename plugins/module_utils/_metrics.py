# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The per-action counters of every xdpkit-style program attached on a host, in every network
namespace, and why the forwarding programs did not redirect what they handed over (per reason), in the
Prometheus text exposition format (for node_exporter's textfile collector or a scrape of
tools/xdp_stats --prometheus).

A program counts when it has the xdp_stats_map the collection's programs keep; another tool's
program is left out, not guessed at. A program with an xdp_reasons_map exports every reason of
_reasons, zeros included: the label's values are known in advance and bounded (Prometheus' "avoid
missing metrics": a series that first appears at 1 loses that increment in rate() and increase(),
and an absent series breaks sums and ratios); a program without the map exports none. A program
with a port entry (the router) adds whether each port's cached settings are vouched for and how
long the lease runs yet; where any such program runs, whether the keeper that renews the leases
is up, and its version. A host without a router
exports no keeper metrics: no keeper runs there, and none should.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease
from ansible_collections.xdpkit.forwarding.plugins.module_utils import _reasons
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError
from ansible_collections.xdpkit.forwarding.plugins.module_utils._link_info import forwarded_datagrams
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import list_netns, netns_exists
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (
    ACTIONS,
    find_stats_map,
    possible_cpus,
    program_reasons,
    read_counters,
)

METRICS = (
    ('xdpkit_xdp_packets_total', 'packets', 'Packets an XDP program handled, by the action it returned.'),
    ('xdpkit_xdp_bytes_total', 'bytes', 'Bytes of the packets an XDP program handled, by the action it returned.'),
)
# Per ingress port (one program instance per port): the frames a forwarding program did not
# redirect, by the rule that kept them from XDP (_reasons.REASONS; 'redirected' is no reason).
REASON_METRICS = (
    ('xdpkit_xdp_reason_packets_total', 'packets',
     'Packets an XDP forwarding program did not redirect (handed to the kernel, or dropped for a blackhole route), '
     'by the reason it met, counted at the ingress port.'),
    ('xdpkit_xdp_reason_bytes_total', 'bytes',
     'Bytes of the packets an XDP forwarding program did not redirect, by the reason it met, counted at the '
     'ingress port.'),
)
EXPORTED_REASONS = tuple(name for name in _reasons.REASON_NAMES if name != 'redirected')
PORT_METRICS = (
    ('xdpkit_port_vouched', 'vouched',
     'Whether the settings the router caches for the port (MAC, rp_filter, accept_local) are vouched for: '
     '1 it uses them, 0 it hands every frame arriving on the port to the kernel.'),
    ('xdpkit_port_lease_remaining_seconds', 'lease_seconds',
     'Seconds left of the lease on the port\'s cached settings; negative: it ran out that long ago.'),
)
# The kernel's own forwarding, beside XDP's: the acceleration share is redirected over both.
KERNEL_FORWARDED = ('xdpkit_kernel_forwarded_datagrams_total',
                    'Datagrams the namespace\'s kernel forwarded itself (SNMP Ip ForwDatagrams, '
                    'Ip6OutForwDatagrams), by address family.')
KEEPER_METRICS = (
    ('xdpkit_keeper_up', 'Whether the keeper that keeps the routers\' port entries current and renews their '
                         'leases runs on this host.'),
    ('xdpkit_keeper_info', 'The running keeper\'s version, as a label; always 1.'),
    ('xdpkit_keeper_start_time_seconds', 'When the running keeper started, in seconds since the epoch.'),
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
    """One sample per counting program: namespace, interface, program name and id, counters, its
    reasons ({reason: {'packets', 'bytes'}}, None without an xdp_reasons_map), and the port's lease
    (_lease.port_state(); None without a port entry)."""
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
                        'program': sysbpf.program_info(prog_id)['name'] or '', 'counters': counters,
                        'reasons': program_reasons(prog_id, ncpus), 'port': _lease.port_state(prog_id)})
    return samples


def kernel_forwarded(namespaces):
    """{namespace: {'ipv4': n, 'ipv6': n}}: the datagrams each namespace's kernel forwarded itself
    (its SNMP counters), for the namespaces where a counting program runs ('' is the host's)."""
    found = {}
    for namespace in sorted(set(namespaces)):
        if namespace and not netns_exists(namespace):
            continue
        try:
            found[namespace] = forwarded_datagrams(namespace or None)
        except (OSError, XdpkitError):
            continue  # the namespace went away while it was read
    return found


def _program_labels(sample):
    return (('namespace', sample['namespace']), ('interface', sample['interface']),
            ('program', sample['program']), ('prog_id', str(sample['prog_id'])))


def families(samples, keeper=None, forwarded=None):
    """The metric families as plain data, the one description both the text of exposition() and
    the HTTP exporter's collector (_exporter) are made from: a list of (name, type, help,
    [(((label, value), ...), number), ...]). `forwarded` is kernel_forwarded()'s result."""
    found = []
    for metric, field, text in METRICS:
        found.append((metric, 'counter', text, [
            (_program_labels(sample) + (('action', action),), sample['counters'][action][field])
            for sample in samples for action in ACTIONS]))
    for metric, field, text in REASON_METRICS:
        found.append((metric, 'counter', text, [
            (_program_labels(sample) + (('reason', reason),), sample['reasons'][reason][field])
            for sample in samples if sample.get('reasons') is not None for reason in EXPORTED_REASONS]))
    if forwarded is not None:
        found.append((KERNEL_FORWARDED[0], 'counter', KERNEL_FORWARDED[1], [
            ((('namespace', namespace), ('family', family)), counts[family])
            for namespace, counts in sorted(forwarded.items()) for family in ('ipv4', 'ipv6')]))
    routers = [sample for sample in samples if sample.get('port') is not None]
    if routers:
        for metric, field, text in PORT_METRICS:
            # No entry, or never vouched for: nothing to measure, not a zero.
            found.append((metric, 'gauge', text, [(_program_labels(sample), sample['port'][field])
                                                  for sample in routers if sample['port'][field] is not None]))
    if routers and keeper is not None:
        (up, up_text), (info, info_text), (start, start_text) = KEEPER_METRICS
        found.append((up, 'gauge', up_text, [((), int(keeper['running']))]))
        if keeper['running']:
            found.append((info, 'gauge', info_text, [((('version', keeper['version'] or ''),), 1)]))
            if keeper.get('started'):
                found.append((start, 'gauge', start_text, [((), float(keeper['started']))]))
    return found


def _label(value):
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _number(value):
    return repr(float(value)) if isinstance(value, float) else '%d' % value


def exposition(samples, keeper=None, forwarded=None):
    """The samples as Prometheus text (version 0.0.4): one counter family per quantity, by action
    and by reason, the kernel's own forwarded datagrams, the ports' leases as gauges, and `keeper`
    (_lease.keeper_state()) when any sample has a port entry."""
    lines = []
    for metric, kind, text, values in families(samples, keeper, forwarded):
        lines += ['# HELP %s %s' % (metric, text), '# TYPE %s %s' % (metric, kind)]
        for labels, value in values:
            rendered = ','.join('%s="%s"' % (key, _label(item)) for key, item in labels)
            lines.append('%s%s %s' % (metric, '{%s}' % rendered if rendered else '', _number(value)))
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
