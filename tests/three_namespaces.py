"""G - R - S, the smallest routed test bed, shared by the tests that need a router namespace
between a sender and a sink:

    [NAMEg: g0 NET.1.2] ==veth== [NAMEr: r0 NET.1.1 | r1 NET.2.1] ==veth== [NAMEs: s0 NET.2.2]

R forwards IPv4 between NET.1.0/24 and NET.2.0/24 and knows both ends' MACs (permanent
neighbours), so every frame after the first can go the XDP way. G and S are quiet: no IPv6
(router solicitations, MLD) and no forwarding, so the router's counters see the test's frames
only. The caller's `cleanup` fixture removes everything.
"""

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import write_sysctl
from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager

NUD_PERMANENT = 0x80


def build(names, net, default_routes=True):
    """Make G, R and S with `names` (a cleanup fixture) on `net` ('10.71'); sets names.g, .r, .s,
    .sender, .sink, .gen_mac and .sink_mac, and returns names."""
    g, r, s = names('g'), names('r'), names('s')
    sender, sink = net + '.1.2', net + '.2.2'
    for ns in (g, r, s):
        create_netns(ns)
    VethManager({'name': 'r0', 'namespace': r, 'addresses': [net + '.1.1/24'], 'state': 'present',
                 'peer': {'name': 'g0', 'namespace': g, 'addresses': [sender + '/24']}}).run()
    VethManager({'name': 'r1', 'namespace': r, 'addresses': [net + '.2.1/24'], 'state': 'present',
                 'peer': {'name': 's0', 'namespace': s, 'addresses': [sink + '/24']}}).run()
    macs = {}
    for ns, end, gateway in ((g, 'g0', net + '.1.1'), (s, 's0', net + '.2.1')):
        write_sysctl(ns, 'net.ipv4.conf.all.forwarding', '0')
        write_sysctl(ns, 'net.ipv6.conf.%s.disable_ipv6' % end, '1')
        with iproute(ns) as ipr:
            macs[end] = get_link(ipr, end)['mac']
            if default_routes:
                ipr.route('add', dst='0.0.0.0/0', gateway=gateway)
    write_sysctl(r, 'net.ipv4.conf.all.forwarding', '1')
    with iproute(r) as ipr:
        ipr.neigh('add', dst=sink, lladdr=macs['s0'], ifindex=get_link(ipr, 'r1')['ifindex'], state=NUD_PERMANENT)
        ipr.neigh('add', dst=sender, lladdr=macs['g0'], ifindex=get_link(ipr, 'r0')['ifindex'], state=NUD_PERMANENT)
    names.g, names.r, names.s = g, r, s
    names.sender, names.sink = sender, sink
    names.gen_mac, names.sink_mac = macs['g0'], macs['s0']
    return names
