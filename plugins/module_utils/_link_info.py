# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] What a namespace's links look like (ifindex, MAC, addresses, XDP, counters), how many
datagrams its kernel forwarded, and on request its routes (who installed each: the kernel, FRR's OSPF, ...): the
facts the scenario roles build on."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_ifname,
    check_netns_name,
    describe_ns,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    dump,
    get_addresses,
    iproute,
    link_names,
    link_to_dict,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    in_netns,
    missing_netns_error,
    netns_exists,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program

STAT_KEYS = ('rx_packets', 'tx_packets', 'rx_bytes', 'tx_bytes', 'rx_dropped', 'tx_dropped')
# rtnetlink's route protocols (linux/rtnetlink.h RTPROT_*): who installed a route.
ROUTE_PROTOCOLS = {0: 'unspec', 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 9: 'ra', 11: 'zebra', 16: 'dhcp',
                   42: 'babel', 186: 'bgp', 187: 'isis', 188: 'ospf', 189: 'rip', 192: 'eigrp', 196: 'zstatic'}
ROUTE_TYPES = {1: 'unicast', 2: 'local', 3: 'broadcast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit'}


RTA_NH_ID = 30


def _is_nh_id(attr):
    # pyroute2 0.7 has no name for RTA_NH_ID: it keeps it as an UNKNOWN attribute with its type.
    name, value = attr[0], attr[1]
    return name == 'RTA_NH_ID' or (name == 'UNKNOWN' and value.get('header', {}).get('type') == RTA_NH_ID)


def describe_route(msg, ifname_of):
    """One main-table route as plain data; a multipath route (or a nexthop group) lists every nexthop
    (the kernel reports a nexthop object's members in the route, nexthop_compat_mode)."""
    family = 'ipv4' if msg['family'] == 2 else 'ipv6'
    dst = msg.get_attr('RTA_DST')
    nexthops = []
    multipath = msg.get_attr('RTA_MULTIPATH')
    for hop in multipath or [msg]:
        gateway = hop.get_attr('RTA_GATEWAY')
        via = hop.get_attr('RTA_VIA')
        if gateway is None and via:
            gateway = via.get('addr')
        index = hop['oif'] if multipath else msg.get_attr('RTA_OIF')
        entry = {'gateway': gateway, 'device': ifname_of(index) if index else None}
        if multipath:
            entry['weight'] = hop['hops'] + 1
        nexthops.append(entry)
    return {
        'dest': 'default' if dst is None and not msg['dst_len'] else '%s/%d' % (dst, msg['dst_len']),
        'family': family,
        'type': ROUTE_TYPES.get(msg['type'], str(msg['type'])),
        'protocol': ROUTE_PROTOCOLS.get(msg['proto'], str(msg['proto'])),
        'metric': msg.get_attr('RTA_PRIORITY'),
        'nexthop_object': any(_is_nh_id(attr) for attr in msg['attrs']),
        'nexthops': nexthops if nexthops != [{'gateway': None, 'device': None}] else [],
    }


def main_table_routes(ipr):
    names = {msg['index']: msg.get_attr('IFLA_IFNAME') for msg in dump(ipr.get_links)}
    routes = []
    for family in (2, 10):
        for msg in dump(ipr.get_routes, family=family, table=254):
            routes.append(describe_route(msg, lambda index: names.get(index, str(index))))
    return routes


def parse_snmp(text):
    """{'Ip': {'ForwDatagrams': n, ...}, ...} from /proc/net/snmp's header/value line pairs."""
    tables = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2]):
        name, _sep, fields = header.partition(':')
        tables[name] = dict(zip(fields.split(), (int(v) for v in values.partition(':')[2].split())))
    return tables


def parse_snmp6(text):
    return {key: int(value) for key, value in (line.split() for line in text.splitlines() if line.strip())}


def forwarded_datagrams(namespace):
    """Datagrams the namespace's kernel forwarded itself (IPv4 and IPv6).

    /proc/thread-self/net follows this thread's namespace; /proc/net would follow the
    process's."""
    with in_netns(namespace):
        with open('/proc/thread-self/net/snmp') as handle:
            ipv4 = parse_snmp(handle.read())['Ip']['ForwDatagrams']
        with open('/proc/thread-self/net/snmp6') as handle:
            ipv6 = parse_snmp6(handle.read()).get('Ip6OutForwDatagrams', 0)
    return {'ipv4': ipv4, 'ipv6': ipv6}


def describe_link(ipr, msg):
    link = link_to_dict(msg)
    stats = msg.get_attr('IFLA_STATS64') or msg.get_attr('IFLA_STATS') or {}
    link['stats'] = {key: stats.get(key, 0) for key in STAT_KEYS}
    link['addresses'] = sorted(str(a) for a in get_addresses(ipr, link['ifindex']))
    link['peer_ifindex'] = link.pop('link')
    attached = attached_program(ipr, link['ifindex'])
    link['xdp'] = None
    if attached:
        info = sysbpf.program_info(attached['prog_id'])
        link['xdp'] = {'prog_id': info['id'], 'name': info['name'], 'tag': info['tag'], 'mode': attached['mode']}
    return link


def predicted_link(name):
    """What check mode reports for a link an earlier task would have created."""
    return {'name': name, 'ifindex': 0, 'kind': None, 'mtu': None, 'mac': '00:00:00:00:00:00', 'state': 'down',
            'stats': {key: 0 for key in STAT_KEYS}, 'addresses': [], 'peer_ifindex': None, 'xdp': None,
            'predicted': True}


class LinkInfoReader:
    def __init__(self, params, check_mode=False):
        self.check_mode = check_mode
        self.namespace = params.get('namespace') or None
        if self.namespace:
            check_netns_name(self.namespace)
        self.names = [check_ifname(n) for n in params.get('names') or []]
        self.routes = bool(params.get('routes'))

    def run(self):
        if self.namespace and not netns_exists(self.namespace):
            if self.check_mode and self.names:
                return self._predicted(self.names, 'network namespace %s does not exist yet' % self.namespace)
            raise missing_netns_error(self.namespace)
        with iproute(self.namespace) as ipr:
            links = {}
            for msg in dump(ipr.get_links):
                link = describe_link(ipr, msg)
                if not self.names or link['name'] in self.names:
                    links[link['name']] = link
            missing = [n for n in self.names if n not in links]
            if missing and self.check_mode:
                predicted = self._predicted(missing, 'interface %s does not exist yet' % ', '.join(missing))
                predicted['links'] = dict(links, **predicted['links'])
                return predicted
            if missing:
                raise XdpkitError("interface '%s' does not exist in %s (existing: %s)" % (
                    missing[0], describe_ns(self.namespace), ', '.join(link_names(ipr))))
            routes = main_table_routes(ipr) if self.routes else None
        result = {'changed': False, 'namespace': self.namespace, 'links': links,
                  'forwarded': forwarded_datagrams(self.namespace)}
        if routes is not None:
            result['routes'] = routes
        return result

    def _predicted(self, names, reason):
        return {'changed': False, 'namespace': self.namespace, 'links': {n: predicted_link(n) for n in names},
                'forwarded': {'ipv4': 0, 'ipv6': 0},
                'warnings': ['check mode: %s; reporting placeholders (ifindex 0, MAC 00:00:00:00:00:00) for '
                             'what an earlier task of this run would create' % reason]}
