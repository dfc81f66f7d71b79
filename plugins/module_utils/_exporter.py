# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""[Layer 3, managers] The Prometheus exporter of xdpkit-exporter.service: the metrics of _metrics served over
HTTP with prometheus_client, read afresh at every scrape (no cache, no background sampling), or written to a
node_exporter textfile collector's directory every --interval seconds as the alternative.

    python3 -m ansible_collections.xdpkit.forwarding.plugins.module_utils._exporter \\
        --web.listen-address=127.0.0.1:9435
    python3 -m ansible_collections.xdpkit.forwarding.plugins.module_utils._exporter \\
        --collector.textfile=/var/lib/prometheus/node-exporter/xdpkit.prom

The flags follow node_exporter's (--web.listen-address=[HOST]:PORT, --web.telemetry-path); the default
port 9435 is xdpkit's own. The exporter ends cleanly on SIGTERM and SIGINT (the socket closed, exit 0).
The number of ports exported is capped (--collector.max-ports): a host whose namespaces churn cannot grow
Prometheus' series without bound; what the cap leaves out is counted in xdpkit_exporter_ports_omitted.
The exporter role installs this code under /usr/local/lib/xdpkit-exporter (nothing here imports Ansible).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import signal
import socket
import sys
import threading
import time

try:
    from http.server import ThreadingHTTPServer

    from prometheus_client import CollectorRegistry, ProcessCollector
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import MetricsHandler
    HAS_PROMETHEUS_CLIENT = True
except ImportError:
    HAS_PROMETHEUS_CLIENT = False
    MetricsHandler = object

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _lease
from ansible_collections.xdpkit.forwarding.plugins.module_utils._metrics import (
    collect,
    exposition,
    families,
    kernel_forwarded,
    write_textfile,
)

# xdpkit's own default port, clear of node_exporter's 9100 and Prometheus' 9090; not yet claimed on the
# Prometheus wiki's list of default port allocations (to do before a release).
DEFAULT_PORT = 9435
DEFAULT_ADDRESS = ':%d' % DEFAULT_PORT
DEFAULT_MAX_PORTS = 1024
EX_USAGE = 64


def parse_listen_address(text):
    """(host, port) of a node_exporter-style listen address: ':9435', '127.0.0.1:9435', '[::1]:9435'.
    An empty host listens on every address."""
    host, sep, port = text.rpartition(':')
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('listen address %r: expected [HOST]:PORT, e.g. 127.0.0.1:%d or :%d' % (
            text, DEFAULT_PORT, DEFAULT_PORT))
    if host.startswith('['):
        if not host.endswith(']'):
            raise ValueError('listen address %r: an IPv6 address goes in brackets, e.g. [::1]:%d' % (
                text, DEFAULT_PORT))
        host = host[1:-1]
    elif ':' in host:
        raise ValueError('listen address %r: put an IPv6 address in brackets, e.g. [%s]:%s' % (text, host, port))
    return host, int(port)


def bounded(samples, max_ports):
    """The first max_ports samples in a stable order (namespace, interface), and how many were left out."""
    ordered = sorted(samples, key=lambda sample: (sample['namespace'], sample['interface'], sample['prog_id']))
    return ordered[:max_ports], max(0, len(ordered) - max_ports)


def read_all(max_ports):
    """One reading of everything: the families of _metrics.families() plus the exporter's own."""
    started = time.monotonic()
    samples, omitted = bounded(collect(), max_ports)
    found = families(samples, _lease.keeper_state(), kernel_forwarded(sample['namespace'] for sample in samples))
    found.append(('xdpkit_exporter_ports_omitted', 'gauge',
                  'Ports with a counting XDP program left out of this scrape by --collector.max-ports.',
                  [((), omitted)]))
    found.append(('xdpkit_exporter_collect_duration_seconds', 'gauge',
                  'How long reading every program\'s counters took for this scrape.',
                  [((), time.monotonic() - started)]))
    return found


class XdpkitCollector:
    """A prometheus_client collector that reads the counters at every scrape."""

    def __init__(self, max_ports=DEFAULT_MAX_PORTS, reader=read_all):
        self.max_ports = max_ports
        self.reader = reader
        # One reading at a time: each enters the namespaces in turn (setns on its own thread) and two
        # scrapes at once would only do the same work twice.
        self.lock = threading.Lock()

    def collect(self):
        with self.lock:
            found = self.reader(self.max_ports)
        for name, kind, text, values in found:
            keys = [key for key, _value in values[0][0]] if values else []
            family = (CounterMetricFamily if kind == 'counter' else GaugeMetricFamily)(name, text, labels=keys)
            for labels, value in values:
                family.add_metric([str(item) for _key, item in labels], value)
            yield family

    def describe(self):
        return []  # nothing read at registration; the families are known only at a scrape


class _Handler(MetricsHandler):
    """prometheus_client's handler on the telemetry path, a landing page on /, 404 elsewhere."""

    telemetry_path = '/metrics'

    def do_GET(self):
        path = self.path.split('?', 1)[0]
        if path == self.telemetry_path:
            MetricsHandler.do_GET(self)
            return
        if path == '/':
            body = ('<html><head><title>xdpkit exporter</title></head><body><h1>xdpkit exporter</h1>'
                    '<p><a href="%s">Metrics</a></p></body></html>\n' % self.telemetry_path).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
        else:
            body = b'404 page not found\n'
            self.send_response(404)
            self.send_header('Content-Type', 'text/plain; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # a scrape every 15 s is not news for the journal


class _Stop(Exception):
    pass


def _stop(signum, frame):
    raise _Stop(signum)


class _Server(ThreadingHTTPServer if HAS_PROMETHEUS_CLIENT else object):
    daemon_threads = True


def make_server(address, max_ports, telemetry_path='/metrics'):
    host, port = parse_listen_address(address)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(XdpkitCollector(max_ports))
    ProcessCollector(registry=registry)
    handler = type('XdpkitHandler', (_Handler,), {'registry': registry, 'telemetry_path': telemetry_path})
    server_class = type('XdpkitServer', (_Server,), {'address_family': socket.AF_INET6 if ':' in host
                                                     else socket.AF_INET})
    return server_class((host, port), handler)


def serve(server, log):
    """Serve until SIGTERM or SIGINT; close the socket and return 0."""
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    host, port = server.server_address[:2]
    log('xdpkit exporter listening on %s:%d' % ('[%s]' % host if ':' in host else host, port))
    try:
        server.serve_forever()
    except _Stop as stop:
        log('stopping on signal %d' % stop.args[0])
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def textfile_loop(path, interval, count, max_ports, log):
    """The textfile collector's alternative: the same metrics written to path (whole, by rename) every
    interval seconds, until SIGTERM or count files."""
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    written = 0
    try:
        while True:
            samples, _omitted = bounded(collect(), max_ports)
            write_textfile(path, exposition(samples, _lease.keeper_state(),
                                            kernel_forwarded(sample['namespace'] for sample in samples)))
            written += 1
            if count and written >= count:
                return 0
            time.sleep(interval)
    except _Stop as stop:
        log('stopping on signal %d after %d files' % (stop.args[0], written))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _log(text):
    sys.stderr.write('%s\n' % text)
    sys.stderr.flush()


def parser():
    found = argparse.ArgumentParser(
        prog='xdpkit-exporter', description=__doc__.split('\n\n', maxsplit=1)[0].split('] ', 1)[1],
        epilog='Metrics: xdpkit_xdp_packets_total and xdpkit_xdp_bytes_total {namespace, interface, program, '
               'prog_id, action}; xdpkit_xdp_reason_packets_total and xdpkit_xdp_reason_bytes_total {the same but '
               'reason instead of action: why a forwarding program did not redirect, per ingress port}; '
               'xdpkit_kernel_forwarded_datagrams_total {namespace, family}; '
               'xdpkit_port_vouched, xdpkit_port_lease_remaining_seconds; xdpkit_keeper_up, xdpkit_keeper_info, '
               'xdpkit_keeper_start_time_seconds (where a router runs). Run as root: reading BPF maps needs it.')
    found.add_argument('--web.listen-address', dest='listen_address', default=DEFAULT_ADDRESS, metavar='[HOST]:PORT',
                       help='address to serve the metrics on (default: %(default)s, every address)')
    found.add_argument('--web.telemetry-path', dest='telemetry_path', default='/metrics', metavar='PATH',
                       help='path of the metrics (default: %(default)s)')
    found.add_argument('--collector.max-ports', dest='max_ports', type=int, default=DEFAULT_MAX_PORTS, metavar='N',
                       help='export at most N ports; the rest is counted in xdpkit_exporter_ports_omitted '
                            '(default: %(default)s)')
    found.add_argument('--collector.textfile', dest='textfile', metavar='FILE',
                       help='instead of serving HTTP, write the metrics to FILE (a *.prom file in node_exporter\'s '
                            '--collector.textfile.directory) every --interval seconds')
    found.add_argument('--interval', type=float, default=15.0, metavar='SECONDS',
                       help='seconds between textfile writes (default: %(default)s)')
    found.add_argument('--count', type=int, default=0, help='textfile writes before leaving (default: until SIGTERM)')
    return found


def main(argv=None):
    args = parser().parse_args(argv)
    if not HAS_PROMETHEUS_CLIENT and not args.textfile:
        _log('xdpkit-exporter needs prometheus_client: install python3-prometheus-client '
             '(or use --collector.textfile, which does not)')
        return 1
    if args.max_ports < 1:
        _log('--collector.max-ports must be at least 1')
        return EX_USAGE
    if args.textfile:
        return textfile_loop(args.textfile, args.interval, args.count, args.max_ports, _log)
    try:
        server = make_server(args.listen_address, args.max_ports, args.telemetry_path)
    except ValueError as exc:
        _log(str(exc))
        return EX_USAGE
    except OSError as exc:
        _log('cannot listen on %s: %s' % (args.listen_address, exc))
        return 1
    return serve(server, _log)


if __name__ == '__main__':
    # (raise, not sys.exit: ansible-test's pylint keeps sys.exit out of module_utils)
    raise SystemExit(main())
