"""Live XDP counters of an interface: per action, why frames were not redirected, and the acceleration share.

    tools/xdp_stats -d uno               # host interface, refreshed every second
    tools/xdp_stats -d veth0 -n dos      # inside namespace dos
    tools/xdp_stats -d uno --count 1     # one sample and exit
    tools/xdp_stats --prometheus --count 1                     # every program, Prometheus text
    tools/xdp_stats --textfile /var/lib/node_exporter/xdpkit.prom   # rewritten every interval
    tools/xdp_stats --png rates.png --window 30                # a plot of the rates over 30 s

The same numbers as the xdpkit.forwarding.xdp_stats module, read the same way (the
program's per-CPU xdp_stats_map and xdp_reasons_map, found through the attached program).
Below the actions, each reason the port's program handed frames to the kernel (or dropped them)
for, with its rate and what it means, the busiest first (only reasons counted at least once; a
program without an xdp_reasons_map, such as xdp_pass, counts none). The acceleration line is
over the last refresh interval: on the port, its redirects over those plus the frames it handed
to the kernel to forward; in the namespace, every program's redirects over those plus the
kernel's own forwarded datagrams. For the router (a program with a port entry) a line says
whether the keeper vouches for the port's cached settings, or that every frame goes to the
kernel because nobody does. Run as root with /usr/bin/python3 (Debian's pyroute2).
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

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease, _reasons  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._common import XdpkitError  # noqa: E402
from ansible_collections.xdpkit.forwarding.plugins.module_utils._metrics import (  # noqa: E402
    collect,
    exposition,
    kernel_forwarded,
    write_textfile,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import (  # noqa: E402
    ACTIONS,
    acceleration_over,
    find_reasons_map,
    find_stats_map,
    interface_program,
    possible_cpus,
    rates,
    read_port,
)


def _percent(share, unknown):
    return '%.1f%%' % (100 * share) if share is not None else unknown


def render(interface, namespace, program, counters, rate, period, port=None, keeper=None, reasons=None,
           reason_rate=None, share=None):
    """The text of one refresh. `reasons`: {reason: {'packets', 'bytes'}}, None when the program
    counts none; `share`: acceleration_over() plus the namespace's 'xdp_pps' and 'kernel_pps'."""
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
    if reasons is None:
        lines.append('reasons: not counted by this program (it has no %s)' % _reasons.REASONS_MAP_NAME)
    else:
        zero = {'pps': 0.0, 'bps': 0.0}
        counted = sorted((name for name, counts in reasons.items() if counts['packets']),
                         key=lambda name: (-(reason_rate or {}).get(name, zero)['pps'], -reasons[name]['packets'],
                                           name))
        if not counted:
            lines.append('reasons: none counted (every frame the program handled was redirected)')
        else:
            lines.append('%-21s %14s %12s %16s %12s  %s' % ('reason', 'packets', 'pps', 'bytes', 'Mbit/s',
                                                            'what it means'))
            for name in counted:
                r = (reason_rate or {}).get(name, zero)
                lines.append('%-21s %14d %12.0f %16d %12.3f  %s' % (
                    name, reasons[name]['packets'], r['pps'], reasons[name]['bytes'], r['bps'] / 1e6,
                    _reasons.describe(name)))
    if share is not None:
        port_share = _percent(share['port'], 'n/a (no reasons counted)' if reasons is None
                              else 'n/a (nothing forwarded)')
        namespace_share = _percent(share['namespace'], 'n/a (nothing forwarded)')
        lines.append('acceleration over %.3fs: port %s, namespace %s (XDP redirected %.0f pps, kernel forwarded '
                     '%.0f pps)' % (period, port_share, namespace_share, share['xdp_pps'], share['kernel_pps']))
    return '\n'.join(lines)


def share_over(first, second, period):
    """acceleration_over() of two read_port()s, with the namespace's rates beside."""
    found = acceleration_over(first, second)
    for key, total in (('xdp_pps', 'namespace_redirected'), ('kernel_pps', 'kernel_forwarded')):
        found[key] = max(0, second['acceleration'][total] - first['acceleration'][total]) / period
    return found


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


def _rate_series(readings):
    """{(namespace, interface, action): [(t, pps), ...]} and {namespace: [(t, datagrams/s), ...]} from
    successive (t, samples, forwarded) readings; a port re-attached in between starts afresh."""
    ports, kernel = {}, {}
    for (t0, before, fwd0), (t1, after, fwd1) in zip(readings, readings[1:], strict=False):
        period = t1 - t0
        old = {(s['namespace'], s['interface'], s['prog_id']): s for s in before}
        for sample in after:
            previous = old.get((sample['namespace'], sample['interface'], sample['prog_id']))
            if previous is None:
                continue
            for action in ('XDP_REDIRECT', 'XDP_PASS', 'XDP_DROP'):
                delta = sample['counters'][action]['packets'] - previous['counters'][action]['packets']
                ports.setdefault((sample['namespace'], sample['interface'], action), []).append(
                    (t1 - readings[0][0], max(0, delta) / period))
        for namespace, counts in fwd1.items():
            if namespace in fwd0:
                delta = sum(counts.values()) - sum(fwd0[namespace].values())
                kernel.setdefault(namespace, []).append((t1 - readings[0][0], max(0, delta) / period))
    return ports, kernel


def plot(path, readings, title):
    """A PNG of the rates, one panel per namespace with a program (the host's too): XDP_REDIRECT per ingress
    port stacked (ports of one flow carry the same rate, so lines would hide each other), XDP_PASS and
    XDP_DROP as lines over it, and the kernel's own forwarding of that namespace as a black line: where
    the kernel forwards, XDP did not."""
    import matplotlib
    matplotlib.use('Agg')  # no display: files only
    import matplotlib.pyplot as plt

    ports, kernel = _rate_series(readings)
    namespaces = sorted({namespace for namespace, _interface, _action in ports})
    figure, panels = plt.subplots(max(1, len(namespaces)), 1, figsize=(10, 1.2 + 2.2 * max(1, len(namespaces))),
                                  sharex=True, squeeze=False)
    for axes, namespace in zip([row[0] for row in panels], namespaces, strict=False):
        interfaces = sorted({i for n, i, _a in ports if n == namespace})
        redirect = [(i, ports[(namespace, i, 'XDP_REDIRECT')]) for i in interfaces
                    if any(rate for _t, rate in ports.get((namespace, i, 'XDP_REDIRECT'), []))]
        # Stacked only over a common time axis: a port attached during the window is drawn as a line.
        longest = max((len(points) for _i, points in redirect), default=0)
        for index, (interface, points) in enumerate(redirect):
            if len(points) < longest:
                axes.plot([t for t, _r in points], [r for _t, r in points], color='C%d' % (index % 10),
                          label='%s redirect' % interface)
        redirect = [(i, points) for i, points in redirect if len(points) == longest]
        if redirect:
            times = [t for t, _r in redirect[0][1]]
            axes.stackplot(times, *[[r for _t, r in points] for _i, points in redirect],
                           labels=['%s redirect' % i for i, _p in redirect], alpha=0.75)
        for index, interface in enumerate(interfaces):
            for action, style in (('XDP_PASS', '--'), ('XDP_DROP', ':')):
                points = ports.get((namespace, interface, action), [])
                if any(rate for _t, rate in points):
                    axes.plot([t for t, _r in points], [r for _t, r in points], style, color='C%d' % (index % 10),
                              label='%s %s' % (interface, action.split('_', 1)[1].lower()))
        points = kernel.get(namespace, [])
        if points:
            axes.plot([t for t, _r in points], [r for _t, r in points], color='black', linewidth=1.2,
                      label='kernel forwarded')
        axes.set_title(namespace or 'host namespace', fontsize=10, loc='left')
        axes.set_ylabel('packets/s')
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=0)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    panels[-1][0].set_xlabel('seconds')
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return sorted((namespace, interface) for namespace, interface, action in ports
                  if action == 'XDP_REDIRECT' and any(rate for _t, rate in ports[(namespace, interface, action)]))


def record(args):
    """Read every program's counters each --interval for --window seconds, then write --png."""
    readings = []
    started = time.monotonic()
    try:
        while True:
            samples = collect()
            readings.append((time.monotonic(), samples, kernel_forwarded(s['namespace'] for s in samples)))
            if time.monotonic() - started >= args.window:
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass  # plot what there is
    if len(readings) < 2:
        print('%s: fewer than two readings, nothing to plot' % args.png, file=sys.stderr)
        return 1
    shown = plot(args.png, readings, 'xdpkit: rates over %.0f s, every %.1f s, from %s' % (
        readings[-1][0] - readings[0][0], args.interval, time.strftime('%Y-%m-%d %H:%M:%S')))
    print('%s: %d readings plotted; redirecting: %s' % (args.png, len(readings), ', '.join(
        '%s/%s' % (namespace or 'host', interface) for namespace, interface in shown) or 'nothing'))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='xdp_stats', description=__doc__.split('\n', maxsplit=1)[0],
                                     epilog=__doc__.split('\n', maxsplit=1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-d', '--dev', help='interface (not with --prometheus or --textfile)')
    parser.add_argument('-n', '--netns', help='network namespace of the interface (default: host)')
    parser.add_argument('-i', '--interval', type=float, default=1.0,
                        help='seconds between samples (default: %(default)s)')
    parser.add_argument('-c', '--count', type=int, default=0, help='samples to show (default: until Ctrl-C)')
    parser.add_argument('--prometheus', action='store_true',
                        help='every program on the host and in every namespace, in the Prometheus text format')
    parser.add_argument('--textfile', metavar='PATH',
                        help='write the Prometheus text to PATH (node_exporter textfile collector) instead')
    parser.add_argument('--png', metavar='FILE',
                        help='read every program for --window seconds, then plot the rates to FILE '
                             '(needs python3-matplotlib)')
    parser.add_argument('--window', type=float, default=30.0, metavar='SECONDS',
                        help='how long --png records (default: %(default)s)')
    args = parser.parse_args(argv)
    if args.png:
        if args.dev or args.prometheus or args.textfile:
            parser.error('--png covers every program on its own; leave out -d, --prometheus and --textfile')
        return record(args)
    if args.prometheus or args.textfile:
        if args.dev:
            parser.error('--prometheus and --textfile cover every program; leave out -d')
        return export(args)
    if not args.dev:
        parser.error('give -d INTERFACE, or --prometheus / --textfile for every program')
    try:
        program = interface_program(args.netns, args.dev)
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
    reasons_fd = find_reasons_map(program['id'])
    ncpus = possible_cpus()
    shown = 0
    interactive = sys.stdout.isatty()
    try:
        previous, previous_time = read_port(fd, reasons_fd, args.netns, ncpus), time.monotonic()
        while not args.count or shown < args.count:
            time.sleep(args.interval)
            now, now_time = read_port(fd, reasons_fd, args.netns, ncpus), time.monotonic()
            period = now_time - previous_time
            text = render(args.dev, args.netns, program, now['stats'], rates(previous['stats'], now['stats'], period),
                          period, _lease.port_state(program['id']), _lease.keeper_state(),
                          reasons=now['reasons'],
                          reason_rate=rates(previous['reasons'], now['reasons'], period) if now['reasons'] else None,
                          share=share_over(previous, now, period))
            print(('\033[H\033[J' if interactive else '') + text + ('' if interactive else '\n'), flush=True)
            previous, previous_time = now, now_time
            shown += 1
    except KeyboardInterrupt:
        pass
    except XdpkitError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        os.close(fd)
        if reasons_fd is not None:
            os.close(reasons_fd)
    return 0


if __name__ == '__main__':
    sys.exit(main())
