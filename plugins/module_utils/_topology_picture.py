# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] A lab as a Graphviz picture: its plan (_topology.plan_lab()) and, for every port with an XDP
program, the program and its redirected and passed counts at that moment, as DOT text for `dot -Tsvg`.

Nodes are boxes (routers) and ellipses (hosts); a link is an edge whose ends are labelled with the port's
name and addresses; a port with a program gets its name, XDP_REDIRECT and XDP_PASS counts in bold on
its end of the link. Pure data in, text out: the lab playbook reads the counters (xdp_stats) and runs dot.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from html import escape as _html_escape

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError

# Per node kind: shape, fill colour.
STYLE = {'router': ('box', '#dbe8f6'), 'host': ('ellipse', '#f2f2f2')}


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


def port_label(port, addresses, xdp=None):
    """The HTML-like label of a link end: port name, addresses, and the program's counts when one runs."""
    rows = ['<B>%s</B>' % _escape(port)] + [_escape(address) for address in addresses]
    if xdp:
        stats = xdp.get('stats') or {}
        redirected = (stats.get('XDP_REDIRECT') or {}).get('packets', 0)
        passed = (stats.get('XDP_PASS') or {}).get('packets', 0)
        rows.append('<FONT COLOR="#1f5fa8">%s</FONT>' % _escape(xdp.get('program') or '?'))
        rows.append('<FONT COLOR="#1f7a1f"><B>redirect %s</B></FONT>  <FONT COLOR="#a85f1f"><B>pass %s</B></FONT>' % (
            _count(redirected), _count(passed)))
    return '<<FONT POINT-SIZE="9">%s</FONT>>' % '<BR/>'.join(rows)


def lab_dot(plan, xdp=None, title=None):
    """DOT text of the lab `plan`; `xdp` maps 'node/port' to {'program': name, 'stats': {action: {packets,
    bytes}}} for the ports where a program is attached (the xdp_stats module's result)."""
    if not isinstance(plan, dict) or not isinstance(plan.get('nodes'), dict):
        raise XdpkitError('lab_dot: expected the lab plan (lab_plan filter) with its nodes')
    xdp = xdp or {}
    lines = ['graph lab {',
             '  graph [rankdir=LR, fontname="Helvetica", fontsize=12, nodesep=0.6, ranksep=2.2, pad=0.3%s];' % (
                 ', label=%s, labelloc=t' % _quote(title) if title else ''),
             '  node [fontname="Helvetica", fontsize=11, style=filled, penwidth=1.2];',
             '  edge [fontname="Helvetica", fontsize=9, penwidth=1.4, color="#555555"];']
    for name in sorted(plan['nodes']):
        node = plan['nodes'][name]
        shape, fill = STYLE.get(node.get('lab_kind'), STYLE['host'])
        where = node.get('ansible_netns') or 'the lab host'
        accelerated = any(('%s/%s' % (name, port)) in xdp for port in node.get('lab_ports') or {})
        label = '<<B>%s</B><BR/><FONT POINT-SIZE="9">%s%s</FONT>>' % (
            _escape(name), _escape(where), '<BR/>XDP' if accelerated else '')
        lines.append('  %s [shape=%s, fillcolor=%s, label=%s%s];' % (
            _quote(name), shape, _quote(fill), label, ', color="#1f5fa8", penwidth=2.2' if accelerated else ''))
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
            a_addresses = plan['nodes'][a_node]['lab_ports'].get(a_port, [])
            b_addresses = plan['nodes'][b_node]['lab_ports'].get(b_port, [])
            lines.append('  %s -- %s [taillabel=%s, headlabel=%s, labeldistance=2.4, labelangle=0];' % (
                _quote(a_node), _quote(b_node),
                port_label(a_port, a_addresses, xdp.get('%s/%s' % (a_node, a_port))),
                port_label(b_port, b_addresses, xdp.get('%s/%s' % (b_node, b_port)))))
    lines.append('}')
    return '\n'.join(lines) + '\n'
