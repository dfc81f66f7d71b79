"""Live per-action XDP counters of an interface, refreshed every second.

    tools/xdp_stats -d uno               # host interface
    tools/xdp_stats -d veth0 -n dos      # inside namespace dos
    tools/xdp_stats -d uno --count 1     # one sample and exit
    tools/xdp_stats --prometheus --count 1                     # every program, Prometheus text
    tools/xdp_stats --textfile /var/lib/node_exporter/xdpkit.prom   # rewritten every interval

The same numbers as the xdpkit.forwarding.xdp_stats module, read the same way (the
program's per-CPU xdp_stats_map, found through the attached program). For the router (a
program with a port table) a line says whether the keeper vouches for the port's cached
settings, or that every frame goes to the kernel because nobody does. Run as root with
/usr/bin/python3 (Debian's pyroute2).
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A checkout (bootstrap links it under .collections) or an installed collection.
for candidate in (os.path.join(HERE, '.collections'), os.path.abspath(os.path.join(HERE, '..', '..', '..'))):
    if os.path.isdir(os.path.join(candidate, 'ansible_collections', 'xdpkit', 'forwarding')):
        sys.path.insert(0, candidate)
        break

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._metrics import (  # noqa: E402
    collect,
    exposition,
    kernel_forwarded,
    write_textfile,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (  # noqa: E402
    ACTIONS,
    attached_on,
    find_stats_map,
    possible_cpus,
    rates,
    read_counters,
)


def render(interface, namespace, program, counters, rate, period, port=None, keeper=None):
    where = '%s in namespace %s' % (interface, namespace) if namespace else interface
    lines = ['%s: XDP program %s (id %d, tag %s, %s mode), period %.3fs' % (
        where, program['name'], program['id'], program['tag'], program['mode'], period)]
    if port is not None:
        lines.append('port: %s' % _lease.describe_port(port, keeper))
    lines.append('%-13s %14s %12s %16s %12s' % ('XDP action', 'packets', 'pps', 'bytes', 'Mbit/s'))
    for action in ACTIONS:
        r = rate[action] if rate else {'pps': 0.0, 'bps': 0.0}
        lines.append('%-13s %14d %12.0f %16d %12.3f' % (
            action, counters[action]['packets'], r['pps'], counters[action]['bytes'], r['bps'] / 1e6))
    return '\n'.join(lines)


def export(args):
    """Every counting program on the host and in every namespace, as Prometheus text: printed, or
    written to --textfile (whole, by rename), every --interval until --count samples."""
    shown = 0
    try:
        while True:
            samples = collect()
            text = exposition(samples, _lease.keeper_state(), kernel_forwarded(s['namespace'] for s in samples))
            if args.textfile:
                write_textfile(args.textfile, text)
                if not sys.stdout.isatty():
                    print('%s: %d lines written' % (args.textfile, text.count('\n')), flush=True)
            else:
                print(text, end='', flush=True)
            shown += 1
            if args.count and shown >= args.count:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('-d', '--dev', help='interface (not with --prometheus or --textfile)')
    parser.add_argument('-n', '--netns', help='network namespace of the interface (default: host)')
    parser.add_argument('-i', '--interval', type=float, default=1.0, help='seconds between samples')
    parser.add_argument('-c', '--count', type=int, default=0, help='samples to show (default: until Ctrl-C)')
    parser.add_argument('--prometheus', action='store_true',
                        help='every program on the host and in every namespace, in the Prometheus text format')
    parser.add_argument('--textfile', metavar='PATH',
                        help='write the Prometheus text to PATH (node_exporter textfile collector) instead')
    args = parser.parse_args(argv)
    if args.prometheus or args.textfile:
        if args.dev:
            parser.error('--prometheus and --textfile cover every program; leave out -d')
        return export(args)
    if not args.dev:
        parser.error('give -d INTERFACE, or --prometheus / --textfile for every program')
    try:
        ifindex, program = attached_on(args.netns, args.dev)
        if program is None:
            print('%s: no XDP program attached' % args.dev, file=sys.stderr)
            return 1
        fd = find_stats_map(program['id'])
        if fd is None:
            print('%s: program %s has no xdp_stats_map' % (args.dev, program['name']), file=sys.stderr)
            return 1
    except XdpkitError as exc:
        print(exc, file=sys.stderr)
        return 1
    ncpus = possible_cpus()
    previous, previous_time = read_counters(fd, ncpus), time.monotonic()
    shown = 0
    interactive = sys.stdout.isatty()
    try:
        while not args.count or shown < args.count:
            time.sleep(args.interval)
            now, now_time = read_counters(fd, ncpus), time.monotonic()
            period = now_time - previous_time
            text = render(args.dev, args.netns, program, now, rates(previous, now, period), period,
                          _lease.port_state(program['id'], ifindex), _lease.keeper_state())
            print(('\033[H\033[J' if interactive else '') + text + ('' if interactive else '\n'), flush=True)
            previous, previous_time = now, now_time
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        os.close(fd)
    return 0


if __name__ == '__main__':
    sys.exit(main())
