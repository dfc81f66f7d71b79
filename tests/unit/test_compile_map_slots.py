"""The instruction scan that turns bcc's map fds into slots of a kept entry."""

import struct

import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils._compile import NotReusable, map_slots


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack('=BBhi', code, (src << 4) | dst, off, imm)


def ld_map(fd, kind=1):
    # ld_imm64 is two slots; the second one's imm is the upper half of the constant.
    return insn(0x18, dst=1, src=kind, imm=fd) + insn(0, imm=0)


def test_map_loads_are_found_and_their_second_halves_skipped():
    code = insn(0xb7, imm=7) + ld_map(6) + insn(0x85, imm=1) + ld_map(9) + insn(0x95)
    assert map_slots(code) == [(1, 6), (4, 9)]


def test_a_plain_64_bit_constant_is_no_map():
    # Its second half carries a value that would read as a map load if the scan did not skip it.
    code = insn(0x18, dst=2, imm=5) + insn(0x18, src=1, imm=33) + insn(0x95)
    assert map_slots(code) == []


@pytest.mark.parametrize('kind', [2, 5, 6])
def test_map_values_and_indexes_are_not_kept(kind):
    with pytest.raises(NotReusable):
        map_slots(ld_map(3, kind) + insn(0x95))
