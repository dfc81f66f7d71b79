# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 2, kernel objects] What traffic control does on a port that an XDP forwarding program would skip.

XDP runs before tc ingress, and a redirected frame is handed to the egress driver
(ndo_xdp_xmit) without a qdisc: the ingress filters of the port it arrived on and the egress
qdisc, filters and tcx programs of the port it leaves by never see it. Policing, shaping,
netem, another tool's BPF classifier: all silently stop applying to forwarded traffic.

Counted, per port: filters on an ingress or clsact qdisc (either direction), tcx programs
(6.6+), and every qdisc someone configured (a non-zero handle). The qdiscs the kernel creates
by itself (handle 0: noqueue, pfifo_fast, the mq and net.core.default_qdisc ones) only
queue, so skipping them changes nothing on the wire.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, describe_ns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import dump, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns

TC_H_ROOT = 0xFFFFFFFF
# The pseudo-parents of the filters on an ingress / clsact qdisc (TC_H_MIN_INGRESS / _EGRESS).
FILTER_PARENTS = {'ingress': 0xFFFFFFF2, 'egress': 0xFFFFFFF3}
CLASSIFIER_QDISCS = {'ingress': ('ingress',), 'clsact': ('ingress', 'egress')}
TCX_ATTACH_TYPES = {'ingress': sysbpf.BPF_TCX_INGRESS, 'egress': sysbpf.BPF_TCX_EGRESS}


def handle_text(handle):
    """A tc handle as tc prints it: 1: for 0x10000, 1:10 for 0x10010."""
    major, minor = handle >> 16, handle & 0xFFFF
    return '%x:%s' % (major, '%x' % minor if minor else '')


def bypassed_tc(qdiscs, filters, tcx_programs, directions):
    """The tc objects of one port that a redirected frame skips, in `directions` (ingress: the
    frame arrives there; egress: it leaves by it).

    `qdiscs`: dicts with kind, handle, parent; `filters`: dicts with direction, kind, pref;
    `tcx_programs`: dicts with direction, id, name. Pure, for the unit tests."""
    found = []
    if 'egress' in directions:
        for qdisc in qdiscs:
            if qdisc['kind'] in CLASSIFIER_QDISCS or not qdisc['handle']:
                continue
            where = 'root' if qdisc['parent'] == TC_H_ROOT else 'parent %s' % handle_text(qdisc['parent'])
            found.append({'direction': 'egress', 'object': 'qdisc',
                          'detail': 'qdisc %s %s (%s)' % (qdisc['kind'], handle_text(qdisc['handle']), where)})
    for item in filters:
        if item['direction'] in directions:
            found.append({'direction': item['direction'], 'object': 'filter',
                          'detail': '%s filter %s pref %d' % (item['direction'], item['kind'], item['pref'])})
    for program in tcx_programs:
        if program['direction'] in directions:
            name = program['name'] or 'name unknown'
            found.append({'direction': program['direction'], 'object': 'tcx',
                          'detail': 'tcx %s program id %d (%s)' % (program['direction'], program['id'], name)})
    return found


def _read_filters(ipr, ifindex, qdiscs):
    filters, seen = [], set()
    for qdisc in qdiscs:
        for direction in CLASSIFIER_QDISCS.get(qdisc['kind'], ()):
            for msg in dump(ipr.get_filters, index=ifindex, parent=FILTER_PARENTS[direction]):
                # A classifier dumps several messages per filter (u32: its hash table and each node).
                key = (direction, msg['info'] >> 16, msg.get_attr('TCA_KIND'))
                if key not in seen:
                    seen.add(key)
                    filters.append({'direction': direction, 'pref': key[1], 'kind': key[2]})
    return filters


def _read_tcx(ifindex):
    programs = []
    for direction, attach_type in TCX_ATTACH_TYPES.items():
        try:
            ids = sysbpf.prog_query(ifindex, attach_type)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a kernel before 6.6 has no tcx
                return []
            raise
        programs += [dict(sysbpf.program_info(prog_id), direction=direction) for prog_id in ids]
    return programs


def port_state(namespace, ifindex, directions):
    """bypassed_tc() for the port `ifindex` of `namespace`, read over netlink and bpf(2)."""
    with iproute(namespace) as ipr:
        qdiscs = [{'kind': msg.get_attr('TCA_KIND'), 'handle': msg['handle'], 'parent': msg['parent']}
                  for msg in dump(ipr.get_qdiscs, index=ifindex)]
        filters = _read_filters(ipr, ifindex, qdiscs)
    with in_netns(namespace):
        tcx_programs = _read_tcx(ifindex)
    return bypassed_tc(qdiscs, filters, tcx_programs, directions)


def bypassed_objects(namespace, ports):
    """Every tc object a redirected frame would skip on `ports`: (name, ifindex, directions)."""
    found = []
    for name, ifindex, directions in ports:
        try:
            objects = port_state(namespace, ifindex, directions)
        except (OSError, ImportError) as exc:
            raise XdpkitError("reading the traffic control state of '%s' in %s failed (%s); if you know that XDP "
                              "may skip it, say traffic_control: bypass" % (name, describe_ns(namespace), exc))
        found += [dict(item, interface=name) for item in objects]
    return found


def refusal(namespace, interface, program, objects):
    return XdpkitError(
        "refusing to attach %s to '%s' in %s: frames XDP redirects skip traffic control (tc ingress on the port "
        "they arrive on, the qdisc and tc egress of the port they leave by), so it would silently skip: %s. "
        "Either remove them, or accept that forwarded traffic is no longer policed, shaped or classified there "
        "(only what the program hands to the kernel still is) and say so with traffic_control: bypass" % (
            program, interface, describe_ns(namespace),
            '; '.join('%s on %s' % (item['detail'], item['interface']) for item in objects)))


def map_refusal(namespace, map_name, objects):
    return XdpkitError(
        "refusing to send frames through port map %s to %s in %s: frames XDP redirects leave by the driver, past the "
        "port's qdisc and tc egress, so they would silently skip: %s. Either remove them, or accept that redirected "
        "traffic is no longer policed, shaped or classified there and say so with traffic_control: bypass" % (
            map_name, ', '.join(sorted({"'%s'" % item['interface'] for item in objects})), describe_ns(namespace),
            '; '.join('%s on %s' % (item['detail'], item['interface']) for item in objects)))
