# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] A lab as a Graphviz picture: its plan (_topology.plan_lab()) and, for every port with an XDP
program, the program and its redirected and passed counts at that moment, as DOT text for `dot -Tsvg`.

A node is a table: its name, kind and namespace on top, then one row per port with the port's name and
addresses, and where a program is attached its name and its XDP_REDIRECT and XDP_PASS counts. A link is an
edge between the two ports' rows (blue where a program runs on either end). Pure data in, text out: the
lab playbook reads the counters (xdp_stats) and runs dot.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from html import escape as _html_escape

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError

# Per node kind: shape (unused with tables, kept for a kind's look), header colour.
STYLE = {'router': ('box', '#dbe8f6'), 'host': ('ellipse', '#e8e8e8')}


def _escape(text):
    return _html_escape(str(text), quote=True)


def _quote(text):
    return '"%s"' % str(text).replace('\\', '\\\\').replace('"', '\\"')


def _count(value):
    """1234567 -> '1.23M': the picture is read at a glance."""
    for limit, suffix in ((1e9, 'G'), (1e6, 'M'), (1e4, 'k')):
        if value >= limit:
            return '%.3g%s' % (value / limit, suffix)
    return '%d' % value


def _port_rows(port, addresses, xdp):
    """The table rows of one port: its name (the edge's anchor) and addresses, then the program and its counts."""
    counts = ''
    if xdp:
        stats = xdp.get('stats') or {}
        redirected = (stats.get('XDP_REDIRECT') or {}).get('packets', 0)
        passed = (stats.get('XDP_PASS') or {}).get('packets', 0)
        counts = '<BR/><FONT COLOR="#1f5fa8">%s</FONT> <FONT COLOR="#1f7a1f"><B>redirect %s</B></FONT>' % (
            _escape(xdp.get('program') or '?'), _count(redirected))
        counts += ' <FONT COLOR="#a85f1f"><B>pass %s</B></FONT>' % _count(passed)
    cell = '<TD PORT=%s ALIGN="LEFT" BALIGN="LEFT" BGCOLOR="%s">' % (_quote(port), '#ffffff' if xdp else '#f7f7f7')
    return '<TR>%s<B>%s</B> <FONT POINT-SIZE="9">%s</FONT>%s</TD></TR>' % (
        cell, _escape(port), _escape('  '.join(addresses)), counts)


def node_label(name, node, xdp):
    """An HTML-like table: the node's name and namespace on top, then one row per port."""
    kind = node.get('lab_kind') or 'host'
    where = node.get('ansible_netns') or 'the lab host'
    header = '<TR><TD BGCOLOR="%s"><B>%s</B> <FONT POINT-SIZE="9">%s, %s</FONT></TD></TR>' % (
        STYLE.get(kind, STYLE['host'])[1], _escape(name), _escape(kind), _escape(where))
    rows = [_port_rows(port, (node.get('lab_ports') or {})[port], xdp.get('%s/%s' % (name, port)))
            for port in sorted(node.get('lab_ports') or {})]
    return '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">%s%s</TABLE>>' % (
        header, ''.join(rows))


def _distances(nodes):
    """Hops from the first host (by name; the first node without hosts) to every node it reaches."""
    hosts = sorted(name for name, node in nodes.items() if node.get('lab_kind') == 'host') or sorted(nodes)
    distance = {hosts[0]: 0} if hosts else {}
    frontier = list(distance)
    while frontier:
        following = []
        for name in frontier:
            for peer in (nodes[name].get('lab_peers') or {}).values():
                if peer['node'] in nodes and peer['node'] not in distance:
                    distance[peer['node']] = distance[name] + 1
                    following.append(peer['node'])
        frontier = following
    return distance


def lab_dot(plan, xdp=None, title=None):
    """DOT text of the lab `plan`; `xdp` maps 'node/port' to {'program': name, 'stats': {action: {packets,
    bytes}}} for the ports where a program is attached (the xdp_stats module's result)."""
    if not isinstance(plan, dict) or not isinstance(plan.get('nodes'), dict):
        raise XdpkitError('lab_dot: expected the lab plan (lab_plan filter) with its nodes')
    xdp = xdp or {}
    lines = ['graph lab {',
             '  graph [rankdir=LR, fontname="Helvetica", fontsize=13, nodesep=0.35, ranksep=0.9, pad=0.3%s];' % (
                 ', label=%s, labelloc=t' % _quote(title) if title else ''),
             '  node [shape=plain, fontname="Helvetica", fontsize=11];',
             '  edge [penwidth=1.6, color="#555555"];']
    for name in sorted(plan['nodes']):
        lines.append('  %s [label=%s];' % (_quote(name), node_label(name, plan['nodes'][name], xdp)))
    distance = _distances(plan['nodes'])
    drawn = set()
    for name in sorted(plan['nodes']):
        node = plan['nodes'][name]
        for port in sorted(node.get('lab_peers') or {}):
            peer = node['lab_peers'][port]
            ends = tuple(sorted([(name, port), (peer['node'], peer['interface'])]))
            if ends in drawn:
                continue
            drawn.add(ends)
            (a_node, a_port), (b_node, b_port) = ends
            # Left to right away from the first host, as a path through the lab is read.
            if distance.get(b_node, 0) < distance.get(a_node, 0):
                (a_node, a_port), (b_node, b_port) = (b_node, b_port), (a_node, a_port)
            accelerated = '%s/%s' % (a_node, a_port) in xdp or '%s/%s' % (b_node, b_port) in xdp
            lines.append('  %s:%s:e -- %s:%s:w%s;' % (
                _quote(a_node), _quote(a_port), _quote(b_node), _quote(b_port),
                ' [color="#1f5fa8"]' if accelerated else ''))
    lines.append('}')
    return '\n'.join(lines) + '\n'
