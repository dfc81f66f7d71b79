# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 1, kernel interfaces] The XDP program on a link. Reading it (IFLA_XDP over netlink),
attaching a loaded program by fd and detaching it (bcc's netlink calls), in a mode.

Readers (link_info, xdp_stats, the metrics) import only the reading half, which needs neither
bcc nor anything that compiles: bcc is imported when a program is attached or detached.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, describe_ns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import in_netns

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
MODE_FLAGS = {'native': XDP_FLAGS_DRV_MODE, 'generic': XDP_FLAGS_SKB_MODE}
# IFLA_XDP_ATTACHED, as a number or as pyroute2's names for the numbers
ATTACHED_MODES = {1: 'native', 2: 'generic', 3: 'offload', 4: 'multi',
                  'xdp': 'native', 'xdpgeneric': 'generic', 'xdpoffload': 'offload', 'xdpmulti': 'multi'}


def attached_program(ipr, ifindex):
    """{'prog_id', 'mode'} of the XDP program on a link, or None.

    With programs in two modes at once ('multi'), the native one is reported.
    """
    msg = ipr.link('get', index=ifindex)[0]
    xdp = msg.get_attr('IFLA_XDP')
    if not xdp:
        return None
    attached = xdp.get_attr('IFLA_XDP_ATTACHED') or 0
    if not attached:
        return None
    mode = ATTACHED_MODES.get(attached, str(attached))
    prog_id = xdp.get_attr('IFLA_XDP_PROG_ID')
    if mode == 'multi':
        prog_id = xdp.get_attr('IFLA_XDP_DRV_PROG_ID') or xdp.get_attr('IFLA_XDP_SKB_PROG_ID')
        mode = 'native' if xdp.get_attr('IFLA_XDP_DRV_PROG_ID') else 'generic'
    return {'prog_id': prog_id, 'mode': mode}


def _bcc_xdp():
    from bcc import BPF
    return BPF


def attach(namespace, interface, prog_fd, mode):
    """Attach in `mode`; an existing program in that mode is replaced atomically by the kernel."""
    bpf_cls = _bcc_xdp()
    with in_netns(namespace):
        try:
            bpf_cls.attach_xdp(interface.encode(), bpf_cls.Function(None, b'', prog_fd), MODE_FLAGS[mode])
        except Exception as exc:
            hint = ''
            if 'out of range' in str(exc):
                # veth refuses native XDP while its peer's MTU exceeds what fits in one page.
                hint = ("; for a veth this means the peer's MTU is too large for native XDP (keep it under "
                        "about 3500 bytes) or use mode: generic")
            raise XdpkitError("attaching the XDP program to '%s' in %s (%s mode) failed: %s%s" % (
                interface, describe_ns(namespace), mode, exc, hint))


def detach(namespace, interface, mode):
    bpf_cls = _bcc_xdp()
    with in_netns(namespace):
        bpf_cls.remove_xdp(interface.encode(), MODE_FLAGS.get(mode, 0))
