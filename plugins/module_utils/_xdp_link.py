# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 1, kernel interfaces] The XDP program on a link. Reading it (IFLA_XDP over netlink),
and attaching, replacing and detaching a loaded program by fd, in a mode, only where the link
still runs what the caller inspected (the kernel checks it in the same call).

Readers (link_info, xdp_stats, the metrics) need neither bcc nor anything that compiles.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket
import struct

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _bpf_sys as sysbpf
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError, describe_ns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
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


# The kernel compares what runs on the link with what the caller expects, in the same call
# that changes it, so a program another tool attached after our inspection is never
# overwritten: XDP_FLAGS_REPLACE with IFLA_XDP_EXPECTED_FD (kernel 5.7+) when something was
# there, XDP_FLAGS_UPDATE_IF_NOEXIST when nothing was. pyroute2 encodes IFLA_XDP_FLAGS in two
# bytes where the kernel wants four, so the request is built here.
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_REPLACE = 1 << 4
RTM_SETLINK = 19
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR = 2
NLMSGERR_ATTR_MSG = 1
IFLA_XDP = 43
IFLA_XDP_FD = 1
IFLA_XDP_FLAGS = 3
IFLA_XDP_EXPECTED_FD = 8
NLA_F_NESTED = 1 << 15
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11


def _nla(kind, payload):
    length = 4 + len(payload)
    return struct.pack('=HH', length, kind) + payload + b'\0' * (-length % 4)


def _extack_message(reply, flags, request_length):
    """The kernel's own words for a refusal (extended ACK), or ''."""
    if not flags & NLM_F_ACK_TLVS:
        return ''
    offset = 16 + 4 + (16 if flags & NLM_F_CAPPED else request_length)
    while offset + 4 <= len(reply):
        length, kind = struct.unpack_from('=HH', reply, offset)
        if length < 4:
            break
        if kind & 0x3FFF == NLMSGERR_ATTR_MSG:
            return reply[offset + 4:offset + length].rstrip(b'\0').decode(errors='replace')
        offset += (length + 3) & ~3
    return ''


def set_link_xdp(ifindex, prog_fd, flags, expected_fd=None):
    """RTM_SETLINK with IFLA_XDP in the calling thread's namespace; OSError with the kernel's
    message on a refusal (EEXIST: not the expected program; EBUSY: one is there already)."""
    attrs = _nla(IFLA_XDP_FD, struct.pack('=i', prog_fd)) + _nla(IFLA_XDP_FLAGS, struct.pack('=I', flags))
    if expected_fd is not None:
        attrs += _nla(IFLA_XDP_EXPECTED_FD, struct.pack('=i', expected_fd))
    body = struct.pack('=BxHiII', socket.AF_UNSPEC, 0, ifindex, 0, 0) + _nla(IFLA_XDP | NLA_F_NESTED, attrs)
    request = struct.pack('=IHHII', 16 + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0) as sock:
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.send(request)
        reply = sock.recv(65536)
    _length, kind, reply_flags, _seq, _pid = struct.unpack_from('=IHHII', reply)
    if kind != NLMSG_ERROR:
        raise OSError(errno.EPROTO, 'unexpected netlink reply type %d' % kind)
    (error,) = struct.unpack_from('=i', reply, 16)
    if error:
        message = _extack_message(reply, reply_flags, len(request))
        raise OSError(-error, os.strerror(-error) + (' (%s)' % message if message else ''))


class HandOverRace(XdpkitError):
    """The link no longer runs the program the caller inspected: something else got there first."""


def _expected_fd(prog_id):
    if prog_id is None:
        return None
    try:
        return sysbpf.prog_fd_by_id(prog_id)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return -1   # freed since: whatever runs there now is not what was inspected
        raise


def _race(namespace, interface, expected, action):
    with iproute(namespace) as ipr:
        link = get_link(ipr, interface)
        now = attached_program(ipr, link['ifindex']) if link else None
    if now:
        info = sysbpf.program_info(now['prog_id']) or {}
        what = 'XDP program id %s (name %s, tag %s, %s mode)' % (
            now['prog_id'], info.get('name'), info.get('tag'), now['mode'])
    else:
        what = 'no XDP program'
    return HandOverRace(
        "'%s' in %s runs %s now, not the %s found when it was checked: another tool changed it in between. "
        "Nothing was %s; run again to see it and decide (force: true replaces another tool's program)" % (
            interface, describe_ns(namespace), what,
            'program id %s' % expected if expected is not None else 'empty link', action))


def attach(namespace, interface, prog_fd, mode, expected=None):
    """Attach `prog_fd` in `mode` to `interface`, provided it still runs `expected` (the program
    id found when it was inspected; None: nothing). The swap itself is atomic in the kernel."""
    with in_netns(namespace):
        ifindex = socket.if_nametoindex(interface)
        expected_fd = _expected_fd(expected)
        flags = MODE_FLAGS[mode] | (XDP_FLAGS_REPLACE if expected is not None else XDP_FLAGS_UPDATE_IF_NOEXIST)
        try:
            set_link_xdp(ifindex, prog_fd, flags, expected_fd)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.EBUSY):
                raise _race(namespace, interface, expected, 'replaced')
            hint = ''
            if exc.errno == errno.ERANGE:
                # veth refuses native XDP while its peer's MTU exceeds what fits in one page.
                hint = ("; for a veth this means the peer's MTU is too large for native XDP (keep it under "
                        "about 3500 bytes) or use mode: generic")
            raise XdpkitError("attaching the XDP program to '%s' in %s (%s mode) failed: %s%s" % (
                interface, describe_ns(namespace), mode, exc, hint))
        finally:
            if expected_fd is not None and expected_fd >= 0:
                os.close(expected_fd)


def detach(namespace, interface, mode, expected):
    """Detach the program `expected` (its id) in `mode`, and nothing else."""
    with in_netns(namespace):
        ifindex = socket.if_nametoindex(interface)
        expected_fd = _expected_fd(expected)
        try:
            set_link_xdp(ifindex, -1, MODE_FLAGS.get(mode, 0) | XDP_FLAGS_REPLACE, expected_fd)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.EBUSY):
                raise _race(namespace, interface, expected, 'detached')
            raise XdpkitError("detaching the XDP program from '%s' in %s failed: %s" % (
                interface, describe_ns(namespace), exc))
        finally:
            if expected_fd is not None and expected_fd >= 0:
                os.close(expected_fd)
