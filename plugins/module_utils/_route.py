# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] Routes in a namespace, one or many per call, each identified by (table, destination, metric)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import socket

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    MissingDependency,
    XdpkitError,
    check_ifname,
    describe_ns,
    family_of,
    parse_ip,
    parse_network,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    NetlinkError,
    dump,
    get_link,
    get_link_by_index,
    iproute,
    link_names,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    missing_netns_error,
    netns_exists,
)

TABLE_MAIN = 254
# The metric the kernel gives a route added without one; naming it makes the identity exact.
DEFAULT_METRIC = {'ipv4': 0, 'ipv6': 1024}
RTN_TYPES = {1: 'unicast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit'}


def wanted_route(params):
    present = params.get('state', 'present') == 'present'
    gateway = parse_ip(params['gateway'], 'gateway') if params.get('gateway') else None
    family = params.get('family') or (family_of(gateway) if gateway else None)
    if params['dest'] != 'default' and family is None:
        family = family_of(parse_network(params['dest'], 'ipv4' if ':' not in params['dest'] else 'ipv6'))
    dest = parse_network(params['dest'], family)
    if family != family_of(dest):
        raise XdpkitError("route '%s': destination is %s but family is %s" % (params['dest'], family_of(dest), family))
    if gateway is not None and family_of(gateway) != family:
        raise XdpkitError("route '%s': gateway %s is %s but the destination is %s" % (
            params['dest'], gateway, family_of(gateway), family))
    route_type = params.get('type') or 'unicast'
    if present and route_type == 'unicast' and gateway is None and not params.get('device'):
        raise XdpkitError("route '%s': a unicast route needs a gateway, a device or both" % params['dest'])
    if route_type != 'unicast' and (gateway is not None or params.get('device')):
        raise XdpkitError("route '%s': a %s route takes neither gateway nor device" % (params['dest'], route_type))
    if params.get('device'):
        check_ifname(params['device'])
    metric = params.get('metric')
    return {
        'namespace': params.get('namespace') or None,
        'dest': str(dest),
        'family': family,
        'gateway': str(gateway) if gateway else None,
        'device': params.get('device') or None,
        'metric': DEFAULT_METRIC[family] if metric is None else metric,
        'table': params.get('table') or TABLE_MAIN,
        'type': route_type,
    }


def route_to_view(msg, ifname_of, namespace, family):
    dst = msg.get_attr('RTA_DST') or ('0.0.0.0' if family == 'ipv4' else '::')
    gateway = msg.get_attr('RTA_GATEWAY')
    oif = msg.get_attr('RTA_OIF')
    return {
        'namespace': namespace,
        'dest': str(ipaddress.ip_network('%s/%d' % (dst, msg['dst_len']))),
        'family': family,
        'gateway': str(ipaddress.ip_address(gateway)) if gateway else None,
        'device': ifname_of(oif) if oif else None,
        'metric': msg.get_attr('RTA_PRIORITY') or 0,
        'table': msg.get_attr('RTA_TABLE') or msg['table'],
        'type': RTN_TYPES.get(msg['type'], str(msg['type'])),
    }


def same_identity(a, b):
    return (a['dest'], a['table'], a['metric']) == (b['dest'], b['table'], b['metric'])


def routes_differ(current, wanted):
    # A route given only a gateway gets its device from the kernel: do not report that.
    keys = ('gateway', 'type') + (('device',) if wanted['device'] else ())
    return any(current[k] != wanted[k] for k in keys)


class RouteManager:
    def __init__(self, params, check_mode=False):
        self.state = params['state']
        self.check_mode = check_mode
        self.wanted = wanted_route(params)

    def _find(self, ipr):
        family = socket.AF_INET if self.wanted['family'] == 'ipv4' else socket.AF_INET6

        def ifname_of(index):
            link = get_link_by_index(ipr, index)
            return link['name'] if link else None

        for msg in dump(ipr.get_routes, family=family, table=self.wanted['table']):
            view = route_to_view(msg, ifname_of, self.wanted['namespace'], self.wanted['family'])
            if same_identity(view, self.wanted):
                return view
        return None

    def run(self):
        ns = self.wanted['namespace']
        if ns and not netns_exists(ns):
            if self.state == 'absent':
                return {'changed': False, 'route': None, 'diff': {'before': None, 'after': None}}
            raise missing_netns_error(ns)
        with iproute(ns) as ipr:
            current = self._find(ipr)
            if self.state == 'absent':
                if current and not self.check_mode:
                    self._delete(ipr, current)
                return {'changed': current is not None, 'route': None,
                        'diff': {'before': current, 'after': None}}
            oif = device_index(ipr, self.wanted)
            changed = current is None or routes_differ(current, self.wanted)
            after = dict(self.wanted) if changed else current
            if changed and not self.check_mode:
                self._replace(ipr, oif)
                after = self._find(ipr)
            return {'changed': changed, 'route': after, 'diff': {'before': current, 'after': after}}

    def _replace(self, ipr, oif):
        replace_route(ipr, self.wanted, oif)

    def _delete(self, ipr, current):
        delete_route(ipr, current)


def device_index(ipr, route):
    """The ifindex of the route's device, None when it names none."""
    if not route['device']:
        return None
    link = get_link(ipr, route['device'])
    if link is None:
        raise MissingDependency("route '%s': device '%s' does not exist in %s (existing: %s)" % (
            route['dest'], route['device'], describe_ns(route['namespace']), ', '.join(link_names(ipr))))
    return link['ifindex']


def route_kwargs(route):
    net = ipaddress.ip_network(route['dest'])
    return {
        'dst': str(net.network_address), 'dst_len': net.prefixlen,
        'family': socket.AF_INET if route['family'] == 'ipv4' else socket.AF_INET6,
        'table': route['table'], 'priority': route['metric'],
    }


def replace_route(ipr, route, oif):
    kwargs = route_kwargs(route)
    kwargs['type'] = route['type']
    if route['gateway']:
        kwargs['gateway'] = route['gateway']
    if oif:
        kwargs['oif'] = oif
    try:
        ipr.route('replace', **kwargs)
    except NetlinkError as exc:
        where = describe_ns(route['namespace'])
        if exc.code == 101:  # ENETUNREACH
            raise XdpkitError(
                "route '%s' in %s: gateway %s is not reachable: no connected network on %s contains it; "
                "give the interface an address in the gateway's subnet first" % (
                    route['dest'], where, route['gateway'], route['device'] or 'any interface'))
        raise XdpkitError("route '%s' in %s: the kernel refused it: %s" % (route['dest'], where, exc))


def delete_route(ipr, route):
    kwargs = route_kwargs(route)
    kwargs['type'] = route['type']
    ipr.route('del', **kwargs)


class RouteSetManager:
    """Many routes of one namespace in one call (a lab's computed routes, a FIB-scale table):
    one dump per family instead of one per route, the same identity and comparison as
    RouteManager."""

    ENTRY_KEYS = ('dest', 'gateway', 'device', 'family', 'metric', 'table', 'type')

    def __init__(self, params, check_mode=False):
        self.state = params['state']
        self.check_mode = check_mode
        self.namespace = params.get('namespace') or None
        self.wanted = []
        seen = {}
        for entry in params['routes']:
            unknown = set(entry) - set(self.ENTRY_KEYS)
            if unknown:
                raise XdpkitError("routes: entry %s has unknown keys %s; an entry takes %s" % (
                    entry, ', '.join(sorted(unknown)), ', '.join(self.ENTRY_KEYS)))
            route = wanted_route(dict({k: entry.get(k) for k in self.ENTRY_KEYS}, namespace=self.namespace,
                                      state=self.state))
            key = (route['dest'], route['table'], route['metric'])
            if key in seen:
                raise XdpkitError("routes: '%s' is given twice (table %d, metric %d)" % key)
            seen[key] = route
            self.wanted.append(route)

    def _current(self, ipr):
        def ifname_of(index):
            link = get_link_by_index(ipr, index)
            return link['name'] if link else None

        found = {}
        tables = {route['table'] for route in self.wanted}
        for family, af in (('ipv4', socket.AF_INET), ('ipv6', socket.AF_INET6)):
            if not any(route['family'] == family for route in self.wanted):
                continue
            for table in tables:
                for msg in dump(ipr.get_routes, family=af, table=table):
                    view = route_to_view(msg, ifname_of, self.namespace, family)
                    found.setdefault((view['dest'], view['table'], view['metric']), view)
        return found

    def run(self):
        ns = self.namespace
        if ns and not netns_exists(ns):
            if self.state == 'absent':
                return {'changed': False, 'routes_changed': 0, 'diff': {'before': [], 'after': []}}
            raise missing_netns_error(ns)
        with iproute(ns) as ipr:
            current = self._current(ipr)
            before, after = [], []
            for route in self.wanted:
                have = current.get((route['dest'], route['table'], route['metric']))
                if self.state == 'absent':
                    if have:
                        before.append(have)
                        if not self.check_mode:
                            delete_route(ipr, have)
                elif have is None or routes_differ(have, route):
                    before.append(have)
                    after.append(route)
                    if not self.check_mode:
                        replace_route(ipr, route, device_index(ipr, route))
        changed = len(before) if self.state == 'absent' else len(after)
        return {'changed': changed > 0, 'routes_changed': changed,
                'diff': {'before': [r for r in before if r], 'after': after}}
