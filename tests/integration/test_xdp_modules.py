"""xdp_program, xdp_map and xdp_stats through Ansible against real interfaces."""

import os
import re
import subprocess

import pytest
from conftest import ROOT, in_ns, run_module

from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import get_link, iproute
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netns import create_netns
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_link import attached_program


@pytest.fixture
def pair(cleanup):
    """Host end NAMEh (10.66.0.1/24) <-> veth0 in namespace NAMEns (10.66.0.2/24)."""
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
    names = cleanup
    create_netns(names('ns'))
    VethManager({'name': names('h'), 'addresses': ['10.66.0.1/24'], 'state': 'present',
                 'peer': {'name': 'veth0', 'namespace': names('ns'), 'addresses': ['10.66.0.2/24']}}).run()
    return names


def attached(interface, ns=None):
    with iproute(ns) as ipr:
        return attached_program(ipr, get_link(ipr, interface)['ifindex'])


def test_xdp_program_attach_rerun_change_and_detach(pair):
    host = pair('h')
    args = {'interface': host, 'program': 'xdp_redirect',
            'defines': {'DEST_IFINDEX': 1, 'DEST_MAC': '02:00:00:00:00:01'}}

    checked = run_module('xdp_program', args, check=True)
    assert checked['changed'] and attached(host) is None

    first = run_module('xdp_program', args, diff=True)
    assert first['changed'], first
    prog = first['program']
    assert prog['name'] == 'xdp_redirect' and prog['mode'] == 'native' and len(prog['tag']) == 16
    assert attached(host) == {'prog_id': prog['prog_id'], 'mode': 'native'}
    assert first['pin_dir'] == '/sys/fs/bpf/xdpkit/@' + host
    assert os.path.exists(first['maps']['xdp_stats_map'])

    again = run_module('xdp_program', args)
    assert not again['changed']
    assert again['program']['prog_id'] == prog['prog_id'], 'an unchanged re-run must not load a new program'

    args['defines']['DEST_IFINDEX'] = 2
    changed = run_module('xdp_program', args, diff=True)
    assert changed['changed'] and changed['program']['prog_id'] != prog['prog_id']
    assert changed['diff']['before']['prog_id'] == prog['prog_id']
    assert attached(host)['prog_id'] == changed['program']['prog_id']

    gone = run_module('xdp_program', {'interface': host, 'state': 'absent'})
    assert gone['changed'] and attached(host) is None
    assert not os.path.exists(first['pin_dir'])
    assert not run_module('xdp_program', {'interface': host, 'state': 'absent'})['changed']


def test_xdp_program_generic_mode_and_switching_back(pair):
    args = {'interface': 'veth0', 'namespace': pair('ns'), 'program': 'xdp_pass', 'mode': 'generic'}
    assert run_module('xdp_program', args)['changed']
    assert attached('veth0', pair('ns'))['mode'] == 'generic'
    assert run_module('xdp_program', dict(args, mode='native'))['changed']
    assert attached('veth0', pair('ns'))['mode'] == 'native'


def test_two_programs_in_two_namespaces_at_once(cleanup):
    names = cleanup
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
    for side in ('a', 'b'):
        create_netns(names(side))
        VethManager({'name': names('h' + side), 'state': 'present',
                     'peer': {'name': 'veth0', 'namespace': names(side)}}).run()
    one = run_module('xdp_program', {'interface': 'veth0', 'namespace': names('a'), 'program': 'xdp_pass'})
    two = run_module('xdp_program', {'interface': 'veth0', 'namespace': names('b'), 'program': 'xdp_router',
                                     'defines': {'FIB_LOOKUP_DIRECT': 1}})
    assert one['changed'] and two['changed']
    assert attached('veth0', names('a'))['prog_id'] == one['program']['prog_id']
    assert attached('veth0', names('b'))['prog_id'] == two['program']['prog_id']
    assert one['pin_dir'] != two['pin_dir']
    # The router's default pin dir holds its own port map; the pass program has none.
    assert 'tx_ports' in two['maps'] and 'tx_ports' not in one['maps']


def test_xdp_program_counts_real_traffic(pair):
    run_module('xdp_program', {'interface': 'veth0', 'namespace': pair('ns'), 'program': 'xdp_pass'})
    subprocess.run(['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.66.0.2'], check=True, capture_output=True)
    stats = run_module('xdp_stats', {'interface': 'veth0', 'namespace': pair('ns')})
    assert not stats['changed'] and stats['program']['name'] == 'xdp_pass'
    assert stats['stats']['XDP_PASS']['packets'] >= 3
    assert stats['stats']['XDP_PASS']['bytes'] >= 3 * 98


def test_xdp_stats_rates_and_no_program(pair):
    none = run_module('xdp_stats', {'interface': pair('h')})
    assert none['program'] is None and none['stats'] is None
    run_module('xdp_program', {'interface': pair('h'), 'program': 'xdp_pass'})
    # Traffic for longer than the module can take to start on a busy machine, stopped after the
    # measurement: the rate window always falls inside it.
    ping = subprocess.Popen(['nsenter', '--net=/run/netns/' + pair('ns'), 'ping', '-c', '600', '-i', '0.05',
                             '10.66.0.1'], stdout=subprocess.DEVNULL)
    try:
        rated = run_module('xdp_stats', {'interface': pair('h'), 'interval': 0.5})
    finally:
        ping.terminate()
        ping.wait(timeout=30)
    assert set(rated['rates']) == {'XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'}
    assert rated['rates']['XDP_PASS']['pps'] > 0


TOOL_HEADER = re.compile(r'^(?P<where>.+): XDP program (?P<name>\S+) \(id (?P<id>\d+), tag (?P<tag>[0-9a-f]+), '
                         r'(?P<mode>\w+) mode\), period [0-9.]+s$')


def tool_sample(*argv):
    """tools/xdp_stats' one sample: its header's fields, {action: (packets, bytes)} in order, and the
    lines after the actions (reasons, acceleration)."""
    argv = [os.path.join(ROOT, 'tools', 'xdp_stats')] + list(argv) + ['--count', '1', '--interval', '0.2']
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    header, columns, *rows = out.strip().splitlines()
    match = TOOL_HEADER.match(header)
    assert match, out
    assert columns.split() == ['XDP', 'action', 'packets', 'pps', 'bytes', 'Mbit/s'], out
    counters = {}
    for row in rows[:5]:
        action, packets, _pps, size, _mbits = row.split()
        counters[action] = (int(packets), int(size))
    return match.groupdict(), counters, rows[5:]


def test_xdp_stats_tool_prints_the_counters_of_the_program_attached(pair):
    ns = pair('ns')
    host = run_module('xdp_program', {'interface': pair('h'), 'program': 'xdp_pass'})['program']
    inside = run_module('xdp_program', {'interface': 'veth0', 'namespace': ns, 'program': 'xdp_pass'})['program']
    assert host['prog_id'] != inside['prog_id']
    # Echo requests pass the host end's program, the replies the one inside the namespace.
    in_ns(ns, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.66.0.1')
    for argv, where, program in ((('-d', pair('h')), pair('h'), host),
                                 (('-d', 'veth0', '-n', ns), 'veth0 in namespace %s' % ns, inside)):
        header, counters, after = tool_sample(*argv)
        assert header == {'where': where, 'name': 'xdp_pass', 'id': str(program['prog_id']), 'tag': program['tag'],
                          'mode': program['mode']}, header
        assert list(counters) == ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'], counters
        assert counters['XDP_PASS'][0] >= 3 and counters['XDP_PASS'][1] >= 3 * 98, counters
        assert all(counters[action] == (0, 0) for action in counters if action != 'XDP_PASS'), counters
        # xdp_pass forwards nothing: no reasons, no share of its own to give.
        assert after[0] == 'reasons: not counted by this program (it has no xdp_reasons_map)', after
        assert re.fullmatch(r'acceleration over [0-9.]+s: port n/a \(no reasons counted\), namespace .+',
                            after[1]), after
        assert len(after) == 2, after


def test_xdp_program_bad_input_fails_with_the_reason(pair, tmp_path):
    broken = tmp_path / 'broken.c'
    broken.write_text('int broken(struct xdp_md *ctx) { return XDP_PASS }\n')
    unsafe = tmp_path / 'unsafe.c'
    unsafe.write_text('#include <uapi/linux/bpf.h>\n'
                      'int unsafe(struct xdp_md *ctx) {\n'
                      '  unsigned char *p = (void *)(long)ctx->data;\n'
                      '  return p[100] ? XDP_PASS : XDP_DROP;\n}\n')
    host = pair('h')
    cases = [
        ({'interface': host, 'program': 'xdp_nonesuch'}, "unknown program 'xdp_nonesuch'"),
        ({'interface': host, 'src': str(tmp_path / 'missing.c')}, 'missing.c'),
        ({'interface': host, 'src': str(tmp_path)}, 'not a regular file'),
        ({'interface': host, 'src': str(broken)}, "expected ';'"),
        ({'interface': host, 'src': str(unsafe)}, 'verifier rejected'),
        ({'interface': host, 'program': 'xdp_redirect', 'defines': {'DEST_IFINDEX': '1); system("x'}},
         'not a number or a MAC'),
        ({'interface': host, 'program': 'xdp_redirect', 'defines': {'XDPKIT_PIN_DIR': 1}}, 'reserved'),
        ({'interface': host, 'program': 'xdp_redirect'}, 'DEST_IFINDEX is not defined'),
        ({'interface': 'nope0', 'program': 'xdp_pass'}, "interface 'nope0' does not exist"),
        ({'interface': 'veth0', 'namespace': pair('gone'), 'program': 'xdp_pass'}, 'does not exist'),
        ({'interface': host, 'program': 'xdp_pass', 'pin_dir': '/tmp/x'}, 'under /sys/fs/bpf'),
    ]
    for args, fragment in cases:
        result = run_module('xdp_program', args)
        assert result.get('failed'), (args, result)
        assert fragment in result['msg'], (fragment, result['msg'])
        assert attached(host) is None, 'a failed run attaches nothing'
    assert not os.path.exists('/sys/fs/bpf/xdpkit/@' + host), 'a failed first load leaves no pins'


def test_xdp_program_accepts_inline_sources(pair):
    header = open(os.path.join(ROOT, 'bpf', 'xdpkit.h')).read()
    text = '#include "xdpkit.h"\nint inline_drop(struct xdp_md *ctx) { return xdpkit_record(ctx, XDP_DROP); }\n'
    result = run_module('xdp_program', {'interface': pair('h'), 'source_main': 'inline_drop.c',
                                        'source_files': {'inline_drop.c': text, 'xdpkit.h': header}})
    assert result['changed'] and result['program']['name'] == 'inline_drop'


def test_xdp_map_port_entries_by_name(pair):
    names = pair
    res = run_module('xdp_program', {'interface': names('h'), 'program': 'xdp_router',
                                     'maps_dir': '/sys/fs/bpf/xdpkit/' + names('fib')})
    path = res['maps']['tx_ports']
    with iproute() as ipr:
        lo = get_link(ipr, 'lo')['ifindex']
    args = {'path': path, 'entries': [{'key': names('h'), 'value': names('h')}, {'key': 'lo', 'value': 'lo'}]}

    checked = run_module('xdp_map', args, check=True, diff=True)
    # xdp_program put the router's own port in its egress ports (XDPKIT_EGRESS_PORTS).
    assert checked['changed'] and checked['diff']['before'] == {names('h'): names('h')}
    assert run_module('xdp_map', {'path': path, 'entries': []})['entries'] == {names('h'): names('h')}

    first = run_module('xdp_map', args, diff=True)
    assert first['changed'] and first['entries'] == {names('h'): names('h'), 'lo': 'lo'}
    assert first['map']['type'] == 'devmap_hash'
    assert not run_module('xdp_map', args)['changed']
    assert not run_module('xdp_map', dict(args, entries=[{'key': lo, 'value': lo}]))['changed'], 'ifindex = name'

    only = run_module('xdp_map', {'path': path, 'entries': [{'key': 'lo', 'value': 'lo'}], 'exclusive': True})
    assert only['changed'] and only['entries'] == {'lo': 'lo'}

    removed = run_module('xdp_map', {'path': path, 'entries': [{'key': 'lo'}], 'state': 'absent'})
    assert removed['changed'] and removed['entries'] == {}


def test_xdp_map_mac_table_and_namespace_resolution(pair):
    names = pair
    res = run_module('xdp_program', {'interface': 'veth0', 'namespace': names('ns'), 'program': 'xdp_redirect_map'})
    mac_path, port_path = res['maps']['mac_table'], res['maps']['tx_ports']
    macs = {'path': mac_path, 'entries': [{'key': '02:00:00:00:00:0A', 'value': '02-00-00-00-00-0b'}]}
    first = run_module('xdp_map', macs)
    assert first['changed'] and first['entries'] == {'02:00:00:00:00:0a': '02:00:00:00:00:0b'}
    assert not run_module('xdp_map', macs)['changed']
    ports = {'path': port_path, 'namespace': names('ns'), 'entries': [{'key': 'veth0', 'value': 'veth0'}]}
    assert run_module('xdp_map', ports)['entries'] == {'veth0': 'veth0'}
    # veth0 does not exist in the host: the name is resolved where the program runs.
    host = run_module('xdp_map', dict(ports, namespace=None))
    assert host.get('failed') and "interface 'veth0' does not exist in the host namespace" in host['msg']

    # Both maps in one run: every entry of both is checked before either is written.
    both = {'namespace': names('ns'), 'maps': [
        {'path': port_path, 'entries': [{'key': 'veth0', 'value': 'lo'}], 'exclusive': True},
        {'path': mac_path, 'entries': [{'key': '02:00:00:00:00:0c', 'value': '02:00:00:00:00:0d'}]}]}
    bad = run_module('xdp_map', {'namespace': names('ns'), 'maps': [both['maps'][0], dict(
        both['maps'][1], entries=[{'key': 'zz', 'value': '02:00:00:00:00:0d'}])]})
    assert bad.get('failed') and 'zz' in bad['msg'], bad
    assert run_module('xdp_map', ports)['entries'] == {'veth0': 'veth0'}, 'the bad run wrote nothing'
    done = run_module('xdp_map', both, diff=True)
    assert done['changed'] and [m['path'] for m in done['maps']] == [port_path, mac_path]
    assert done['maps'][0]['entries'] == {'veth0': 'lo'}
    assert done['maps'][1]['entries'] == {'02:00:00:00:00:0a': '02:00:00:00:00:0b',
                                          '02:00:00:00:00:0c': '02:00:00:00:00:0d'}
    assert sorted(done['diff']['after']) == sorted([port_path, mac_path])
    assert not run_module('xdp_map', both)['changed']


def tiny_program():
    """A program with a MAC table of two entries, passed inline."""
    small = ('#include "xdpkit.h"\n'
             'BPF_TABLE_PINNED("hash", struct { unsigned char a[6]; }, struct { unsigned char a[6]; }, '
             'tiny, 2, XDPKIT_MAPS_DIR "/tiny");\n'
             'int tiny_prog(struct xdp_md *ctx) { return xdpkit_record(ctx, XDP_PASS); }\n')
    header = open(os.path.join(ROOT, 'bpf', 'xdpkit.h')).read()
    return {'source_main': 'tiny_prog.c', 'source_files': {'tiny_prog.c': small, 'xdpkit.h': header}}


def test_xdp_map_bad_input_and_full_map(pair):
    names = pair
    res = run_module('xdp_program', dict(tiny_program(), interface=names('h')))
    assert res['changed'], res
    tiny = res['maps']['tiny']
    three = [{'key': '02:00:00:00:00:0%d' % i, 'value': '02:00:00:00:01:00'} for i in range(3)]
    cases = [
        ({'path': tiny, 'entries': three}, 'is full: it holds at most 2 entries and the run needs 3'),
        ({'path': tiny, 'entries': [{'key': 'zz:00:00:00:00:00', 'value': '02:00:00:00:00:01'}]}, 'malformed MAC'),
        ({'path': tiny, 'entries': [{'key': '02:00:00:00:00:01'}]}, 'a value is needed'),
        ({'path': '/sys/fs/bpf/xdpkit/%s/nothing' % names('x'), 'entries': []}, 'no pinned map at'),
        ({'path': res['maps']['xdp_stats_map'], 'entries': []}, 'percpu_array'),
        ({'path': '/etc/passwd', 'entries': []}, 'not under /sys/fs/bpf'),
    ]
    for args, fragment in cases:
        result = run_module('xdp_map', args)
        assert result.get('failed'), (args, result)
        assert fragment in result['msg'], (fragment, result['msg'])
    assert run_module('xdp_map', {'path': tiny, 'entries': []})['entries'] == {}, 'nothing half-written'


def test_xdp_program_fills_its_maps_in_the_same_run(pair):
    names = pair
    host, maps_dir = names('h'), '/sys/fs/bpf/xdpkit/' + names('m')
    mac_a, mac_b = '02:00:00:00:00:0a', '02:00:00:00:00:0b'
    args = {'interfaces': [host], 'program': 'xdp_redirect_map', 'maps_dir': maps_dir, 'map_entries': [
        {'name': 'tx_ports', 'entries': [{'key': host, 'value': host}], 'exclusive': True},
        {'name': 'mac_table', 'entries': [{'key': mac_a, 'value': mac_b}], 'exclusive': True}]}

    # Bad entries fail before anything is attached or pinned.
    ports, macs = args['map_entries']
    for bad, fragment in (([ports, dict(macs, entries=[{'key': 'zz', 'value': mac_b}])],
                           "'zz' is neither an interface in the host namespace"),
                          ([dict(ports, entries=[{'key': 'nope0', 'value': host}]), macs], "'nope0'"),
                          ([ports, dict(macs, name='../x')], 'is not the name of a map')):
        failed = run_module('xdp_program', dict(args, map_entries=bad))
        assert failed.get('failed') and fragment in failed['msg'], failed
        assert attached(host) is None and not os.path.exists(maps_dir), 'nothing half-made'

    checked = run_module('xdp_program', args, check=True, diff=True)
    assert checked['changed'] and attached(host) is None
    assert [m['entries'] for m in checked['map_entries']] == [{host: host}, {mac_a: mac_b}]
    assert any('not pinned yet' in w for w in checked['warnings'])

    first = run_module('xdp_program', args, diff=True)
    assert first['changed'] and attached(host)['prog_id'] == first['programs'][0]['program']['prog_id']
    assert [m['path'] for m in first['map_entries']] == [maps_dir + '/tx_ports', maps_dir + '/mac_table']
    assert [m['entries'] for m in first['map_entries']] == [{host: host}, {mac_a: mac_b}]
    assert first['diff']['after']['map_entries'] == {maps_dir + '/tx_ports': {host: host},
                                                     maps_dir + '/mac_table': {mac_a: mac_b}}
    assert run_module('xdp_map', {'path': maps_dir + '/mac_table', 'entries': []})['entries'] == {mac_a: mac_b}
    assert not run_module('xdp_program', args)['changed']

    # A map entry changed behind its back is put back; the program stays as it is.
    run_module('xdp_map', {'path': maps_dir + '/mac_table', 'entries': [{'key': mac_a, 'value': mac_a}]})
    mended = run_module('xdp_program', args, diff=True)
    assert mended['changed'] and mended['map_entries'][1]['entries'] == {mac_a: mac_b}
    assert mended['programs'][0]['program']['prog_id'] == first['programs'][0]['program']['prog_id']
    assert mended['diff']['before']['map_entries'] == {maps_dir + '/mac_table': {mac_a: mac_a}}

    # Too many entries for a map that is pinned already: refused before any change.
    full = dict(args, map_entries=[ports, dict(macs, entries=[
        {'key': '02:00:00:00:%02x:%02x' % (i // 256, i % 256), 'value': mac_b} for i in range(1100)])])
    refused = run_module('xdp_program', full)
    assert refused.get('failed') and 'is full' in refused['msg'], refused
    assert run_module('xdp_map', {'path': maps_dir + '/mac_table', 'entries': []})['entries'] == {mac_a: mac_b}

    gone = run_module('xdp_program', dict(args, state='absent'))
    assert gone['changed'] and attached(host) is None and not os.path.exists(maps_dir)


def test_xdp_program_takes_back_a_fresh_attach_whose_new_map_cannot_take_the_entries(pair):
    names = pair
    three = [{'key': '02:00:00:00:00:0%d' % i, 'value': '02:00:00:00:01:00'} for i in range(3)]
    args = dict(tiny_program(), interface='veth0', namespace=names('ns'),
                map_entries=[{'name': 'tiny', 'entries': three}])
    failed = run_module('xdp_program', args)
    assert failed.get('failed') and 'is full' in failed['msg'] and 'detached again: veth0' in failed['msg'], failed
    assert attached('veth0', names('ns')) is None
    two = dict(args, map_entries=[{'name': 'tiny', 'entries': three[:2]}])
    done = run_module('xdp_program', two)
    assert done['changed'] and len(done['map_entries'][0]['entries']) == 2
    # The program never reads tiny (user space fills it): it is still up to date, and so is its map.
    again = run_module('xdp_program', two)
    assert not again['changed'] and again['program']['prog_id'] == done['program']['prog_id'], again
    assert run_module('xdp_program', dict(args, state='absent'))['changed']


def test_router_on_two_host_ports_forwards_pings_between_namespaces(cleanup):
    """The FIB program attached by the modules forwards real pings (IPv4 and IPv6) and counts them."""
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._route import RouteManager
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._sysctl import SysctlManager
    from ansible_collections.xdpkit.forwarding.plugins.module_utils._veth import VethManager
    names = cleanup
    maps_dir = '/sys/fs/bpf/xdpkit/' + names('fib')
    sides = {'a': ('10.67.1', 'fd67:1'), 'b': ('10.67.2', 'fd67:2')}
    for side, (v4, v6) in sides.items():
        create_netns(names(side))
        VethManager({'name': names(side), 'addresses': [v4 + '.1/24', v6 + '::1/64'], 'state': 'present',
                     'peer': {'name': 'veth0', 'namespace': names(side),
                              'addresses': [v4 + '.2/24', v6 + '::2/64']}}).run()
        for gw in (v4 + '.1', v6 + '::1'):
            RouteManager({'namespace': names(side), 'dest': 'default', 'gateway': gw, 'state': 'present'}).run()
    saved = []
    for key in ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding'):
        saved.append(SysctlManager({'name': key, 'value': '1', 'state': 'present'}).run())
    try:
        for side in sides:
            assert run_module('xdp_program', {'interface': names(side), 'program': 'xdp_router',
                                              'maps_dir': maps_dir})['changed']
            assert run_module('xdp_program', {'interface': 'veth0', 'namespace': names(side),
                                              'program': 'xdp_pass'})['changed']
        run_module('xdp_map', {'path': maps_dir + '/tx_ports',
                               'entries': [{'key': names(s), 'value': names(s)} for s in sides]})
        in_ns(names('a'), 'ping', '-c', '4', '-i', '0.2', '-W', '2', '10.67.2.2')
        in_ns(names('a'), 'ping', '-c', '4', '-i', '0.2', '-W', '2', 'fd67:2::2')
        in_ns(names('b'), 'ping', '-c', '4', '-i', '0.2', '-W', '2', '10.67.1.2')
        redirected = sum(run_module('xdp_stats', {'interface': names(s)})['stats']['XDP_REDIRECT']['packets']
                         for s in sides)
        # 12 echo requests and 12 replies; the first of each direction may go to the kernel (ARP/ND).
        assert redirected >= 20, redirected
        for side in sides:
            run_module('xdp_program', {'interface': names(side), 'maps_dir': maps_dir, 'state': 'absent'})
        assert not os.path.exists(maps_dir), 'shared maps go with the last program that used them'
    finally:
        for key in ('net.ipv4.conf.all.forwarding', 'net.ipv6.conf.all.forwarding'):
            SysctlManager({'name': key, 'state': 'absent'}).run()
