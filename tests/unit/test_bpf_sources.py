import pytest

from ansible_collections.xdpkit.forwarding.plugins.module_utils._bpf_source import (
    declared_pins,
    define_flags,
    define_value,
    devmap_hash_declarations,
    flatten_sources,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError

HEADER = ('#ifndef H\n#define H\n'
          'BPF_TABLE_PINNED("percpu_array", u32, u64, stats, 5, XDPKIT_PIN_DIR "/stats");\n#endif\n')
MAIN = ('#include "h.h"\nXDPKIT_DEVMAP_HASH(tx_ports, 64);\n'
        'BPF_TABLE_PINNED("hash", u32, u32, macs, 8, XDPKIT_MAPS_DIR "/macs");\nint prog(void *c) { return 2; }\n')


def test_flatten_pastes_local_headers_with_line_markers():
    text = flatten_sources('main.c', {'main.c': MAIN, 'h.h': HEADER})
    assert '#line 1 "h.h"' in text and '#line 2 "main.c"' in text
    assert text.index('stats') < text.index('tx_ports')


def test_flatten_reports_a_missing_header():
    with pytest.raises(XdpkitError, match='includes "h.h", which is not beside it'):
        flatten_sources('main.c', {'main.c': MAIN})


def test_declared_pins_cover_stats_tables_and_devmaps():
    text = flatten_sources('main.c', {'main.c': MAIN, 'h.h': HEADER})
    assert devmap_hash_declarations(text) == [('tx_ports', 64)]
    assert declared_pins(text, '/sys/fs/bpf/x/p', '/sys/fs/bpf/x/m') == [
        '/sys/fs/bpf/x/m/macs', '/sys/fs/bpf/x/m/tx_ports', '/sys/fs/bpf/x/p/stats']


@pytest.mark.parametrize('value, expected', [
    (7, '7'), ('0x1F', '0x1F'), (True, '1'), ('02:00:00:00:00:0A', '0x02000000000aULL'), ('10u', '10u'),
])
def test_define_values_are_numbers_or_macs(value, expected):
    assert define_value('X', value) == expected


@pytest.mark.parametrize('name, value, fragment', [
    ('X', '1); system("id"', 'not a number or a MAC'),
    ('X', '1 + 1', 'not a number or a MAC'),
    ('X', '"/etc/passwd"', 'not a number or a MAC'),
    ('1X', 1, 'not a C identifier'),
    ('X Y', 1, 'not a C identifier'),
    ('XDPKIT_PIN_DIR', 1, 'reserved'),
    ('__KERNEL__', 1, 'reserved'),
])
def test_defines_that_could_inject_code_are_refused(name, value, fragment):
    with pytest.raises(XdpkitError, match=fragment):
        define_flags({name: value})
