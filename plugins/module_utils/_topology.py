# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 0, ground] A lab as data: nodes, links between node:port pairs, address pools and routes computed
from the link graph, turned into the module calls that build it and the inventory that
names every node as a netns host. Pure functions: no kernel, no Ansible.

Over 300 lines on purpose: one planner, plan_lab(), and the steps it runs in order (nodes, links
and their address pools, first hops, computed and given routes); each step is a small function
that only plan_lab calls, and they read best in that order, top to bottom."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import deque

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    validate_ifname,
    validate_netns_name,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._frr_config import render_ospf_router

KINDS = ('host', 'router')
FAMILIES = ('ipv4', 'ipv6')
# Point-to-point subnets: /30 and /64 leave the all-zeros address alone, /31 and /127
# (RFC 3021, RFC 6164) use both.
POOL_PREFIXLENS = {'ipv4': (30, 31), 'ipv6': (64, 127)}
DEFAULT_PREFIXLEN = {'ipv4': 30, 'ipv6': 64}
DEFAULT_EXTRA_POOL = '198.18.0.0/15'  # RFC 2544 benchmarking range: never routed on the Internet
FORWARDING_SYSCTLS = ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding')
RECEIVERS = ('gro', 'none')
# static: the planner computes every route; ospf: FRR in every router learns them (hosts keep
# their default routes).
ROUTINGS = ('static', 'ospf')
OSPF_DEFAULTS = {'hello': 1, 'dead': 4, 'area': '0.0.0.0'}


def _error(text):
    return XdpkitError('lab topology: ' + text)


def _parse_endpoint(text, nodes):
    if not isinstance(text, str) or text.count(':') != 1:
        raise _error("link endpoint %r is not 'node:port'" % (text,))
    node, port = text.split(':')
    if node not in nodes:
        raise _error("link endpoint '%s' names node '%s', which is not in nodes (%s)" % (text, node, ', '.join(nodes)))
    port = nodes[node]['port_prefix'] + port
    reason = validate_ifname(port)
    if reason:
        raise _error("link endpoint '%s': %s" % (text, reason))
    return node, port


def _interface(text, family):
    try:
        if '/' not in str(text):
            raise ValueError(text)
        iface = ipaddress.ip_interface(text)
    except ValueError:
        example = '10.0.0.1/30' if family == 'ipv4' else 'fd00::1/64'
        raise _error("address %r is not an %s address with a prefix length (e.g. %s)" % (text, family, example))
    if ('ipv%d' % iface.version) != family:
        raise _error("address '%s' is given as %s" % (text, family))
    return iface


class _Pool:
    """Point-to-point subnets carved in order out of one prefix."""

    def __init__(self, family, prefix, prefixlen):
        if prefixlen not in POOL_PREFIXLENS[family]:
            allowed = ' or '.join('/%d' % n for n in POOL_PREFIXLENS[family])
            raise _error('%s pool prefix length must be one of %s, not %s' % (family, allowed, prefixlen))
        try:
            network = ipaddress.ip_network(prefix)
        except ValueError:
            raise _error("%s pool %r is not a network in CIDR notation" % (family, prefix))
        if ('ipv%d' % network.version) != family or network.prefixlen > prefixlen:
            raise _error("%s pool '%s' cannot hold /%d subnets" % (family, prefix, prefixlen))
        self.family = family
        self.network = network
        self.prefixlen = prefixlen
        self.size = 2 ** (prefixlen - network.prefixlen)
        self.used = 0

    def take(self):
        if self.used >= self.size:
            raise _error("%s pool '%s' has only %d /%d subnets; give a larger pool" % (
                self.family, self.network, self.size, self.prefixlen))
        subnet = ipaddress.ip_network('%s/%d' % (
            self.network.network_address + self.used * 2 ** (self.network.max_prefixlen - self.prefixlen),
            self.prefixlen))
        self.used += 1
        first = 0 if self.prefixlen in (31, 127) else 1
        return [ipaddress.ip_interface('%s/%d' % (subnet.network_address + first + i, self.prefixlen))
                for i in (0, 1)]


def _nodes(spec):
    nodes = spec.get('nodes')
    if not isinstance(nodes, dict) or not nodes:
        raise _error('nodes must be a non-empty mapping of node name to {kind: host|router}')
    prefix = spec.get('prefix') or ''
    found = {}
    for name, node in nodes.items():
        node = node or {}
        kind = node.get('kind', 'host')
        if kind not in KINDS:
            raise _error("node '%s' has kind '%s'; kinds are %s" % (name, kind, ', '.join(KINDS)))
        if node.get('lab_host'):
            # The lab host itself (where the play runs): its ports live beside every other
            # lab's in its own namespace, so they carry the lab prefix as namespaces do.
            found[str(name)] = {'kind': kind, 'netns': None, 'port_prefix': prefix}
            continue
        netns = node.get('netns') or prefix + str(name)
        reason = validate_netns_name(netns)
        if reason:
            raise _error("node '%s': %s" % (name, reason))
        found[str(name)] = {'kind': kind, 'netns': netns, 'port_prefix': ''}
    if sum(1 for node in found.values() if node['netns'] is None) > 1:
        raise _error('only one node can be the lab host (lab_host: true)')
    return found


def _links(spec, nodes):
    pools = {}
    for family in FAMILIES:
        prefix = (spec.get('pools') or {}).get(family)
        if prefix:
            pools[family] = _Pool(family, prefix, int((spec.get('pools') or {}).get(
                family + '_prefixlen', DEFAULT_PREFIXLEN[family])))
    links = []
    seen_ports = set()
    for index, link in enumerate(spec.get('links') or []):
        if isinstance(link, (list, tuple)):
            link = {'endpoints': link}
        ends = link.get('endpoints')
        if not isinstance(ends, (list, tuple)) or len(ends) != 2:
            raise _error('link %d needs endpoints: exactly two node:port strings' % (index + 1,))
        ends = [_parse_endpoint(end, nodes) for end in ends]
        if ends[0][0] == ends[1][0]:
            raise _error("link %d joins node '%s' to itself" % (index + 1, ends[0][0]))
        for end in ends:
            if end in seen_ports:
                raise _error("port '%s:%s' is used by two links" % (*end,))
            seen_ports.add(end)
        addresses = {}
        for family in FAMILIES:
            given = link.get(family)
            if given:
                if not isinstance(given, (list, tuple)) or len(given) != 2:
                    raise _error('link %d: %s must list two addresses, one per endpoint' % (index + 1, family))
                pair = [_interface(text, family) for text in given]
                if pair[0].network != pair[1].network:
                    raise _error("link %d: %s and %s are not in one subnet" % (index + 1, given[0], given[1]))
                addresses[family] = pair
            elif family in pools:
                addresses[family] = pools[family].take()
        links.append({'ends': ends, 'addresses': addresses, 'mtu': link.get('mtu'),
                      'ospf': link.get('ospf', True), 'cost': link.get('cost')})
    if not links:
        raise _error('links is empty: a lab needs at least one link')
    return links


def _first_hops(nodes, links):
    """first_hop[a][b] = (link index, neighbour) of the shortest path from a to b, and the
    distance in hops of every node reachable from a. Ties go to
    the neighbour whose name sorts first, so paths are the same in both directions on a ring
    or a diamond and strict reverse-path filtering holds."""
    adjacency = {name: [] for name in nodes}
    for index, link in enumerate(links):
        (a, _pa), (b, _pb) = link['ends']
        adjacency[a].append((b, index))
        adjacency[b].append((a, index))
    hops, distances = {}, {}
    for source in nodes:
        first = {}
        distance = {source: 0}
        queue = deque()
        for neighbour, index in sorted(adjacency[source]):
            if neighbour not in first:
                first[neighbour] = (index, neighbour)
                distance[neighbour] = 1
                queue.append(neighbour)
        while queue:
            here = queue.popleft()
            for neighbour, _index in sorted(adjacency[here]):
                if neighbour not in distance:
                    first[neighbour] = first[here]
                    distance[neighbour] = distance[here] + 1
                    queue.append(neighbour)
        hops[source] = first
        distances[source] = distance
    return hops, distances


def _gateway(links, index, neighbour, family):
    link = links[index]
    if family not in link['addresses']:
        return None
    side = 0 if link['ends'][0][0] == neighbour else 1
    return str(link['addresses'][family][side].ip)


def _computed_routes(nodes, links):
    hops, distances = _first_hops(nodes, links)
    routes = {name: [] for name in nodes}
    for source, node in nodes.items():
        own = [i for i, link in enumerate(links) if source in (link['ends'][0][0], link['ends'][1][0])]
        if node['kind'] == 'host' and len(own) == 1:
            # A host with one link has a router or a host at its end: a default route, as on a LAN.
            link = links[own[0]]
            peer = link['ends'][1][0] if link['ends'][0][0] == source else link['ends'][0][0]
            for family in FAMILIES:
                gateway = _gateway(links, own[0], peer, family)
                if gateway:
                    routes[source].append({'dest': 'default', 'gateway': gateway, 'family': family})
            continue
        distance = distances[source]
        for index, link in enumerate(links):
            if index in own:
                continue
            ends = [end for end, _port in link['ends'] if end in distance]
            if not ends:
                continue  # another island of the graph
            target = min(ends, key=lambda end: (distance[end], end))
            hop_index, neighbour = hops[source][target]
            for family, pair in sorted(link['addresses'].items()):
                gateway = _gateway(links, hop_index, neighbour, family)
                if gateway:
                    routes[source].append({'dest': str(pair[0].network), 'gateway': gateway, 'family': family})
    return routes, hops


def _extra_routes(spec, nodes, links, hops):
    extra = spec.get('extra_prefixes') or {}
    count = int(extra.get('count') or 0)
    if count <= 0:
        return {}
    hosts = [name for name, node in nodes.items() if node['kind'] == 'host']
    towards = extra.get('towards') or (hosts[-1] if hosts else None)
    if towards not in nodes:
        raise _error("extra_prefixes.towards names '%s', which is not a node" % (towards,))
    try:
        pool = ipaddress.ip_network(extra.get('pool') or DEFAULT_EXTRA_POOL)
    except ValueError:
        raise _error('extra_prefixes.pool %r is not a network in CIDR notation' % (extra.get('pool'),))
    prefixlen = int(extra.get('prefixlen') or (28 if pool.version == 4 else 64))
    if prefixlen < pool.prefixlen or 2 ** (prefixlen - pool.prefixlen) < count:
        raise _error("extra_prefixes: %d /%d prefixes do not fit in '%s'" % (count, prefixlen, pool))
    step = 2 ** (pool.max_prefixlen - prefixlen)
    family = 'ipv%d' % pool.version
    prefixes = ['%s/%d' % (pool.network_address + i * step, prefixlen) for i in range(count)]
    routes = {}
    for name, node in nodes.items():
        if node['kind'] != 'router' or name == towards or towards not in hops[name]:
            continue
        hop_index, neighbour = hops[name][towards]
        gateway = _gateway(links, hop_index, neighbour, family)
        if gateway:
            routes[name] = [{'dest': prefix, 'gateway': gateway, 'family': family} for prefix in prefixes]
    return routes


def _given_routes(spec, nodes):
    routes = {name: [] for name in nodes}
    for route in spec.get('routes') or []:
        node = route.get('node')
        if node not in nodes:
            raise _error("route %s names node '%s', which is not in nodes" % (route, node))
        routes[node].append({k: v for k, v in route.items() if k != 'node'})
    return routes


def _loopbacks(spec, routers):
    """One loopback address per router and family, in node order, from pools.loopback_ipv4/_ipv6."""
    found = {name: [] for name in routers}
    for family, bits in (('ipv4', 32), ('ipv6', 128)):
        text = (spec.get('pools') or {}).get('loopback_' + family)
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text)
        except ValueError:
            raise _error("pools.loopback_%s %r is not a network in CIDR notation" % (family, text))
        if 'ipv%d' % network.version != family or network.num_addresses < len(routers) + 1:
            raise _error("pools.loopback_%s '%s' cannot hold %d %s loopbacks" % (family, text, len(routers), family))
        for index, name in enumerate(routers):
            found[name].append('%s/%d' % (network.network_address + index + 1, bits))
    return found


def _ospf_flags(index, link, nodes):
    """Whether each end of a link runs OSPF; an adjacency needs both ends."""
    flags = link['ospf']
    if not isinstance(flags, (list, tuple)):
        flags = [flags, flags]
    if len(flags) != 2 or not all(isinstance(flag, bool) for flag in flags):
        raise _error('link %d: ospf is true, false or one of them per endpoint ([true, false])' % (index + 1,))
    (a, pa), (b, pb) = link['ends']
    if flags[0] != flags[1] and nodes[a]['kind'] == nodes[b]['kind'] == 'router':
        raise _error('link %d (%s:%s - %s:%s) has OSPF on only one end: an adjacency needs both; give ospf: true or '
                     'false for the link' % (index + 1, a, pa, b, pb))
    return flags


def _ospf_routers(spec, nodes, links):
    """routing: ospf - one FRR instance per router (its frr.conf), and what each must learn: a
    route to every subnet with a host on it, both families."""
    unknown = sorted(set(spec.get('ospf') or {}) - set(OSPF_DEFAULTS))
    if unknown:
        raise _error('ospf has no %s; it takes %s' % (', '.join(unknown), ', '.join(OSPF_DEFAULTS)))
    ospf = dict(OSPF_DEFAULTS, **(spec.get('ospf') or {}))
    try:
        hello, dead = int(ospf['hello']), int(ospf['dead'])
    except (TypeError, ValueError):
        raise _error('ospf.hello and ospf.dead are whole seconds, e.g. {hello: 1, dead: 4}')
    if not 0 < hello < dead:
        raise _error('ospf.dead (%s s) must be longer than ospf.hello (%s s)' % (dead, hello))
    routers = [name for name, node in nodes.items() if node['kind'] == 'router']
    interfaces = {name: [] for name in routers}
    linked = set()
    host_subnets = []
    for index, link in enumerate(links):
        flags = _ospf_flags(index, link, nodes)
        cost = int(link['cost']) if link['cost'] else None
        for side, (node, port) in enumerate(link['ends']):
            if nodes[node]['kind'] != 'router' or not flags[side]:
                continue
            linked.add(node)
            other = link['ends'][1 - side][0]
            interfaces[node].append({'name': port, 'cost': cost,
                                     'mode': 'p2p' if nodes[other]['kind'] == 'router' else 'passive'})
            if nodes[other]['kind'] == 'host':
                # Advertised by this router: every router must learn it. A host subnet no router
                # runs OSPF on is nobody's to advertise, so nobody waits for it.
                host_subnets += [str(pair[0].network) for _family, pair in sorted(link['addresses'].items())]
    for name in routers:
        if name not in linked:
            raise _error("router '%s' has no link that runs OSPF: with routing: ospf every router needs one" % name)
        if nodes[name]['netns'] is None:
            raise _error("router '%s' is the lab host: routing: ospf runs FRR in each router's own namespace" % name)
    loopbacks = _loopbacks(spec, routers)
    instances = []
    for index, name in enumerate(routers):
        own_ipv4 = sorted(pair[side].ip for link in links for side, (node, _port) in enumerate(link['ends'])
                          if node == name for family, pair in link['addresses'].items() if family == 'ipv4')
        router_id = next((a.split('/')[0] for a in loopbacks[name] if ':' not in a), None) or \
            (str(own_ipv4[0]) if own_ipv4 else '0.0.0.%d' % (index + 1))
        config = render_ospf_router({'node': name, 'namespace': nodes[name]['netns'], 'router_id': router_id,
                                     'loopback': loopbacks[name], 'interfaces': interfaces[name],
                                     'hello': hello, 'dead': dead, 'area': str(ospf['area'])})
        instances.append({'node': name, 'namespace': nodes[name]['netns'], 'config': config,
                          'router_id': router_id, 'loopback': loopbacks[name]})
    wanted = sorted(set(host_subnets))
    waits = [{'namespace': nodes[name]['netns'], 'label': name, 'prefixes': wanted} for name in routers]
    return instances, waits


def _router_sysctls(spec):
    wanted = {key: '1' for key in FORWARDING_SYSCTLS}
    extra = spec.get('router_sysctls') or {}
    if not isinstance(extra, dict):
        raise _error('router_sysctls must map sysctl names to values, e.g. {net.ipv4.conf.all.rp_filter: 2}')
    wanted.update(extra)
    return wanted


def _in_namespace(netns, **args):
    """Module arguments, with the namespace left out for the lab host's own."""
    return dict(args, namespace=netns) if netns else args


def plan_lab(spec):
    """The module arguments that build the lab of `spec`, and its inventory."""
    if not isinstance(spec, dict):
        raise _error('the topology must be a mapping with nodes and links')
    nodes = _nodes(spec)
    links = _links(spec, nodes)
    routing = spec.get('routing') or 'static'
    if routing not in ROUTINGS:
        raise _error("routing is '%s'; it is one of %s" % (routing, ', '.join(ROUTINGS)))
    # Every sender in a lab is a veth: with checksum offload on, the UDP and TCP it sends through an
    # XDP redirect arrive unfinished (see the veth module's tx_checksum), so labs checksum in software.
    tx_checksum = spec.get('tx_checksum', False)
    if not isinstance(tx_checksum, bool):
        raise _error('tx_checksum is true or false (checksum offload on every veth end; false by default)')
    receivers = spec.get('receivers', 'gro')
    if receivers not in RECEIVERS:
        raise _error("receivers is '%s'; it is gro (every veth end accepts redirected frames) or none" % (receivers,))
    if spec.get('routes', 'computed') == 'computed':
        routes, hops = _computed_routes(nodes, links)
    else:
        if not isinstance(spec['routes'], list):
            raise _error("routes is 'computed' or a list of routes, each with node, dest and gateway")
        routes = _given_routes(spec, nodes)
        hops = _first_hops(nodes, links)[0]
    frr, frr_waits = [], []
    if routing == 'ospf':
        if int((spec.get('extra_prefixes') or {}).get('count') or 0) > 0:
            raise _error('extra_prefixes needs routing: static (with ospf, FRR decides every router\'s routes)')
        frr, frr_waits = _ospf_routers(spec, nodes, links)
        # FRR learns the routers' routes; the hosts keep theirs (a default route each).
        routes = {name: node_routes if nodes[name]['kind'] == 'host' else []
                  for name, node_routes in routes.items()}
    for name, extra in _extra_routes(spec, nodes, links, hops).items():
        routes[name] = routes[name] + extra

    veths = []
    ports = {name: {} for name in nodes}
    peers = {name: {} for name in nodes}
    for link in links:
        ends = []
        for side, (node, port) in enumerate(link['ends']):
            addresses = [str(link['addresses'][family][side]) for family in FAMILIES if family in link['addresses']]
            ports[node][port] = addresses
            end = {'name': port, 'addresses': addresses, 'gro': True if receivers == 'gro' else None,
                   'tx_checksum': tx_checksum}
            if nodes[node]['netns']:
                end['namespace'] = nodes[node]['netns']
            ends.append(end)
        for side, (node, port) in enumerate(link['ends']):
            other_node, other_port = link['ends'][1 - side]
            peers[node][port] = {'node': other_node, 'namespace': nodes[other_node]['netns'], 'interface': other_port}
        veth = dict(ends[0], peer=ends[1])
        if link['mtu']:
            veth['mtu'] = veth['peer']['mtu'] = int(link['mtu'])
        veths.append(veth)

    hosts = {}
    for name, node in nodes.items():
        first = {}
        for addresses in ports[name].values():
            for address in addresses:
                family = 'ipv%d' % ipaddress.ip_interface(address).version
                first.setdefault(family, address.split('/')[0])
        hosts[name] = {
            'ansible_netns': node['netns'],
            'lab_kind': node['kind'],
            'lab_ports': ports[name],
            'lab_peers': peers[name],
            'lab_ipv4': first.get('ipv4'),
            'lab_ipv6': first.get('ipv6'),
            'lab_routing': routing,
        }
        for instance in frr:
            if instance['node'] == name:
                hosts[name].update(lab_router_id=instance['router_id'], lab_loopback=instance['loopback'])
        if node['kind'] == 'router':
            hosts[name]['router_interfaces'] = sorted(ports[name])
    # The lab host is the play's own host, not a netns host of the lab's inventory.
    groups = {kind: {'hosts': {name: hosts[name] for name in nodes
                               if nodes[name]['kind'] == kind and nodes[name]['netns']}}
              for kind in KINDS}
    # Pings that prove the lab: every host to every other host's first address of each family.
    probes = [{'from': source, 'namespace': nodes[source]['netns'], 'to_node': target, 'to': hosts[target][family]}
              for source in nodes for target in nodes
              if source != target and nodes[source]['kind'] == nodes[target]['kind'] == 'host'
              and nodes[source]['netns'] and nodes[target]['netns']
              for family in ('lab_ipv4', 'lab_ipv6') if hosts[target][family]]
    inventory = {'all': {
        'children': {kind: group for kind, group in groups.items() if group['hosts']},
        # inventory_vars: e.g. ansible_netns_transport, ansible_host for a lab on a lab host.
        'vars': dict({'ansible_connection': 'xdpkit.forwarding.netns',
                      'ansible_python_interpreter': '/usr/bin/python3'}, **(spec.get('inventory_vars') or {})),
    }}
    if groups['router']['hosts']:
        # The lab host built the lab, so it has what the router needs already, and the lab turned
        # forwarding on in every router (its sysctls).
        groups['router']['vars'] = {'router_prerequisites': False, 'router_forwarding': False}
    return {
        'namespaces': [node['netns'] for node in nodes.values() if node['netns']],
        'links': veths,
        'routes': [_in_namespace(nodes[name]['netns'], **route)
                   for name, node_routes in routes.items() for route in node_routes],
        'route_count': sum(len(node_routes) for node_routes in routes.values()),
        'sysctls': [_in_namespace(node['netns'], name=key, value=str(value))
                    for node in nodes.values() if node['kind'] == 'router'
                    for key, value in _router_sysctls(spec).items()],
        'nodes': hosts,
        'routing': routing,
        # The frr module's instances, and each router's configuration by node for the lab's directory.
        'frr': [{'namespace': i['namespace'], 'config': i['config']} for i in frr],
        'frr_configs': {i['node']: i['config'] for i in frr},
        'frr_waits': frr_waits,
        'probes': probes,
        'inventory': inventory,
    }
