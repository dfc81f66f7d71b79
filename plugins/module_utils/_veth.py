# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] veth pairs: read both ends, compare with the wanted state, converge."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import (
    XdpkitError,
    check_ifname,
    check_netns_name,
    describe_ns,
    normalize_mac,
    parse_interface_address,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import (
    NetlinkError,
    add_address,
    del_address,
    get_addresses,
    get_gro,
    get_tx_checksum,
    get_link,
    iproute,
    set_gro,
    set_tx_checksum,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import (
    missing_netns_error,
    netns_exists,
)


def _end_spec():
    return dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str'),
        addresses=dict(type='list', elements='str'),
        mtu=dict(type='int'),
        mac=dict(type='str'),
        link_state=dict(type='str', default='up', choices=['up', 'down']),
        gro=dict(type='bool'),
        tx_checksum=dict(type='bool'),
    )


def veth_argument_spec():
    """The options of one pair, for the veth module and for each of the lab module's links."""
    spec = _end_spec()
    spec.update(
        peer=dict(type='dict', required=True, options=_end_spec()),
        address_mode=dict(type='str', default='exact', choices=['exact', 'append']),
    )
    return spec


def wanted_end(spec):
    """Validate and normalise one end's parameters into the wanted-state dict."""
    check_ifname(spec['name'])
    if spec.get('namespace'):
        check_netns_name(spec['namespace'])
    addresses = spec.get('addresses')
    mtu = spec.get('mtu')
    if mtu is not None and not 68 <= mtu <= 65535:
        raise XdpkitError("veth '%s': MTU %d is outside 68..65535" % (spec['name'], mtu))
    return {
        'name': spec['name'],
        'namespace': spec.get('namespace') or None,
        'addresses': None if addresses is None else {parse_interface_address(a) for a in addresses},
        'mtu': mtu,
        'mac': normalize_mac(spec['mac']) if spec.get('mac') else None,
        'link_state': spec.get('link_state'),
        'gro': spec.get('gro'),
        'tx_checksum': spec.get('tx_checksum'),
    }


def end_view(current, addresses):
    """A comparable, printable picture of an existing end."""
    return {
        'name': current['name'],
        'namespace': current['namespace'],
        'ifindex': current['ifindex'],
        'mtu': current['mtu'],
        'mac': current['mac'],
        'link_state': current['state'],
        'gro': current['gro'],
        'tx_checksum': current['tx_checksum'],
        'addresses': sorted(str(a) for a in addresses),
    }


def converged_view(before, wanted, address_mode):
    """What an end looks like after convergence. `before` is None for a new end."""
    after = dict(before) if before else {
        'name': wanted['name'], 'namespace': wanted['namespace'], 'ifindex': None,
        'mtu': 1500, 'mac': None, 'link_state': 'down', 'gro': False, 'tx_checksum': True, 'addresses': [],
    }
    for field in ('mtu', 'mac', 'link_state', 'gro', 'tx_checksum'):
        if wanted[field] is not None:
            after[field] = wanted[field]
    if wanted['addresses'] is not None:
        current = {parse_interface_address(a) for a in after['addresses']}
        target = wanted['addresses'] if address_mode == 'exact' else current | wanted['addresses']
        after['addresses'] = sorted(str(a) for a in target)
    return after


def address_changes(before, after):
    """(to_add, to_remove) between two views, as ipaddress interfaces."""
    old = {parse_interface_address(a) for a in (before or {}).get('addresses', [])}
    new = {parse_interface_address(a) for a in after['addresses']}
    return sorted(new - old, key=str), sorted(old - new, key=str)


def _comparable(view):
    # ifindex is an outcome, not something the user asks for.
    return None if view is None else {k: v for k, v in view.items() if k != 'ifindex'}


class VethManager:
    def __init__(self, params, check_mode=False):
        self.state = params['state']
        self.address_mode = params.get('address_mode') or 'exact'
        self.check_mode = check_mode
        self.local = wanted_end(params)
        self.peer = wanted_end(params['peer'])
        if (self.local['name'], self.local['namespace']) == (self.peer['name'], self.peer['namespace']):
            raise XdpkitError("veth '%s': both ends have the same name in the same namespace" % self.local['name'])
        if self.state == 'present' and self.local['link_state'] is None:
            self.local['link_state'] = 'up'
        if self.state == 'present' and self.peer['link_state'] is None:
            self.peer['link_state'] = 'up'

    # -- reading -----------------------------------------------------------------------
    def _read_end(self, end):
        """(link dict with addresses, or None). A missing namespace reads as 'no link'."""
        if end['namespace'] and not netns_exists(end['namespace']):
            return None
        with iproute(end['namespace']) as ipr:
            link = get_link(ipr, end['name'])
            if link is None:
                return None
            link['namespace'] = end['namespace']
            link['addresses'] = get_addresses(ipr, link['ifindex'])
        link['gro'] = get_gro(end['namespace'], end['name'])
        link['tx_checksum'] = get_tx_checksum(end['namespace'], end['name'])
        return link

    def _check_pair(self, local, peer):
        """Raise unless the existing links are exactly the requested veth pair."""
        for link, end in ((local, self.local), (peer, self.peer)):
            if link is not None and link['kind'] != 'veth':
                raise XdpkitError(
                    "veth '%s': interface '%s' already exists in %s and is a %s device, not a veth; "
                    "choose another name or remove it" % (
                        self.local['name'], end['name'], describe_ns(end['namespace']),
                        link['kind'] or 'physical'))
        if local is None and peer is None:
            return False
        if local is not None and peer is not None and \
                local['link'] == peer['ifindex'] and peer['link'] == local['ifindex']:
            return True
        present, other = (local, self.peer) if local is not None else (peer, self.local)
        raise XdpkitError(
            "veth '%s': interface '%s' already exists in %s but is not paired with '%s' in %s; "
            "remove it or choose other names" % (
                self.local['name'], present['name'], describe_ns(present['namespace']),
                other['name'], describe_ns(other['namespace'])))

    # -- writing -----------------------------------------------------------------------
    def _create_pair(self):
        # Create both ends in one netlink request, each already in its namespace, so no
        # failure can leave a veth behind in the wrong namespace.
        first, second = self.local, self.peer
        if first['namespace'] and not second['namespace']:
            first, second = second, first
        peer_spec = {'ifname': second['name']}
        if second['namespace']:
            peer_spec['net_ns_fd'] = second['namespace']
        with iproute(first['namespace']) as ipr:
            try:
                ipr.link('add', ifname=first['name'], kind='veth', peer=peer_spec)
            except NetlinkError as exc:
                raise XdpkitError("veth '%s': creating the pair failed: %s" % (self.local['name'], exc))

    def _delete_pair(self):
        for end in (self.local, self.peer):
            if end['namespace'] and not netns_exists(end['namespace']):
                continue
            with iproute(end['namespace']) as ipr:
                link = get_link(ipr, end['name'])
                if link is not None and link['kind'] == 'veth':
                    ipr.link('del', index=link['ifindex'])
                    return

    def _apply_end(self, end, before, after):
        with iproute(end['namespace']) as ipr:
            ifindex = get_link(ipr, end['name'])['ifindex']
            old = before or {'mtu': None, 'mac': None, 'link_state': None}
            if after['mac'] and after['mac'] != old['mac']:
                self._set_mac(ipr, ifindex, after['mac'])
            if after['mtu'] != old['mtu']:
                ipr.link('set', index=ifindex, mtu=after['mtu'])
            if after['link_state'] != old['link_state']:
                # Up before addresses: taking a link down flushes its IPv6 addresses.
                ipr.link('set', index=ifindex, state=after['link_state'])
            if after['gro'] != old.get('gro', False):
                # GRO on a veth end turns on NAPI, so it accepts redirected frames (5.13+).
                set_gro(end['namespace'], end['name'], after['gro'])
            if after['tx_checksum'] != old.get('tx_checksum', True):
                # A veth hands its peer a UDP or TCP checksum left for offload (CHECKSUM_PARTIAL);
                # a frame XDP redirects loses that state and arrives with the checksum unfinished.
                set_tx_checksum(end['namespace'], end['name'], after['tx_checksum'])
            to_add, to_remove = address_changes(before, after)
            for iface in to_remove:
                del_address(ipr, ifindex, iface)
            for iface in to_add:
                try:
                    add_address(ipr, ifindex, iface)
                except NetlinkError as exc:
                    raise XdpkitError("veth '%s': adding address %s to '%s' failed: %s" % (
                        self.local['name'], iface, end['name'], exc))

    @staticmethod
    def _set_mac(ipr, ifindex, mac):
        try:
            ipr.link('set', index=ifindex, address=mac)
        except NetlinkError as exc:
            if exc.code != errno.EBUSY:
                raise
            # Some drivers refuse a MAC change while up: bounce the link around it.
            ipr.link('set', index=ifindex, state='down')
            ipr.link('set', index=ifindex, address=mac)
            ipr.link('set', index=ifindex, state='up')

    # -- the whole run -----------------------------------------------------------------
    def run(self):
        local = self._read_end(self.local)
        peer = self._read_end(self.peer)
        exists = self._check_pair(local, peer)
        before = {
            'interface': end_view(local, local['addresses']) if exists else None,
            'peer': end_view(peer, peer['addresses']) if exists else None,
        }
        if self.state == 'absent':
            after = {'interface': None, 'peer': None}
            changed = exists
            if changed and not self.check_mode:
                self._delete_pair()
            return self._result(changed, before, after)

        for end in (self.local, self.peer):
            if end['namespace'] and not netns_exists(end['namespace']):
                raise missing_netns_error(end['namespace'])
        after = {
            'interface': converged_view(before['interface'], self.local, self.address_mode),
            'peer': converged_view(before['peer'], self.peer, self.address_mode),
        }
        changed = any(_comparable(before[k]) != _comparable(after[k]) for k in before)
        if changed and not self.check_mode:
            if not exists:
                self._create_pair()
            try:
                self._apply_end(self.local, before['interface'], after['interface'])
                self._apply_end(self.peer, before['peer'], after['peer'])
            except Exception:
                if not exists:
                    # Nothing half-made: a pair we just created goes again.
                    self._delete_pair()
                raise
            actual = {
                'interface': end_view(*self._read_with_addresses(self.local)),
                'peer': end_view(*self._read_with_addresses(self.peer)),
            }
            return self._result(changed, before, after, actual)
        return self._result(changed, before, after)

    def _read_with_addresses(self, end):
        link = self._read_end(end)
        return link, link['addresses']

    @staticmethod
    def _result(changed, before, after, actual=None):
        # The diff is the plan that decided `changed`; the returned ends are what the
        # kernel reports afterwards (ifindex and a random MAC are only known then).
        actual = actual or after
        return {
            'changed': changed,
            'interface': actual['interface'],
            'peer': actual['peer'],
            'diff': {'before': before, 'after': after},
        }
