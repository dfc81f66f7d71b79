"""The HTTP exporter as an operator runs it: a real Prometheus (Debian's) scrapes it while pings
cross an XDP router, PromQL through Prometheus' HTTP API sees the redirect rate rise, and every
query of the shipped Grafana dashboard returns series, the reasons and shares among them; and
tools/xdp_stats, live, names the same reasons and shares.

    [NAMEg: g0] ==veth== [NAMEr: r0 | xdp_router | r1] ==veth== [NAMEs: s0 | xdp_pass]

Besides the echo requests to S (redirected at r0, their replies at r1), G pings R itself
(local_destination at r0: R answers, nothing is forwarded) and 10.73.9.9, which R routes back out of
r0 to G (hairpin at r0: the kernel forwards it, so it counts against the port's share).
"""

import json
import re
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import three_namespaces
from conftest import ROOT, free_port, run_module
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.xdpkit.forwarding.plugins.module_utils import _keeper
from ansible_collections.xdpkit.forwarding.plugins.module_utils._netlink import iproute

EXPORTER = os.path.join(ROOT, 'tools', 'xdpkit_exporter')
DASHBOARD = os.path.join(ROOT, 'roles', 'exporter', 'files', 'xdpkit-dashboard.json')
PROMETHEUS = '/usr/bin/prometheus'
SENDER, SINK = '10.73.1.2', '10.73.2.2'
ROUTER, HAIRPIN, HAIRPIN_NET = '10.73.1.1', '10.73.9.9', '10.73.9.0/24'
# Written out, not imported from _reasons: the tests state what an operator reads.
LOCAL_MEANS = "for the router itself (one of its IPv4 addresses or broadcasts)"
HAIRPIN_MEANS = 'the next hop is back out of the ingress port: the kernel forwards it and sends a redirect'


def wait_for(what, condition, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('%s: not within %.0f s' % (what, seconds))
        time.sleep(0.2)


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None, ''


def stop(process):
    """SIGTERM by pid, then wait; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError('pid %d did not end within 15 s of SIGTERM' % process.pid)


@pytest.fixture
def exporter():
    """Start tools/xdpkit_exporter on a free port of 127.0.0.1; stopped by its pid."""
    started = []

    def start(*extra):
        port = free_port()
        process = subprocess.Popen([EXPORTER, '--web.listen-address=127.0.0.1:%d' % port] + list(extra),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        wait_for('the exporter answers on port %d' % port,
                 lambda: process.poll() is not None or http_get('http://127.0.0.1:%d/' % port)[0] == 200, 30)
        assert process.poll() is None, process.communicate()
        return process, port
    yield start
    for process in started:
        stop(process)


@pytest.fixture
def routed(cleanup):
    """G, R, S as in the module docstring: R routes 10.73.1.0/24 <-> 10.73.2.0/24 with xdp_router on
    r0 and r1 (through the module, which starts the keeper); permanent neighbours, so every echo
    request and reply after the first goes the XDP way."""
    names = three_namespaces.build(cleanup, '10.73')
    g, r, s = names.g, names.r, names.s
    names.maps_dir = '/sys/fs/bpf/xdpkit/%s-exp' % names.prefix
    args = {'interfaces': ['r0', 'r1'], 'namespace': r, 'program': 'xdp_router', 'maps_dir': names.maps_dir,
            'receivers': [{'interface': 's0', 'namespace': s}, {'interface': 'g0', 'namespace': g}]}
    result = run_module('xdp_program', args)
    assert result['changed'], result
    yield names
    args.pop('program')
    run_module('xdp_program', dict(args, state='absent'))
    wait_for('the keeper leaves once no router is left', lambda: _keeper.running() is None,
             _keeper.IDLE_EXIT_SECONDS + 5)


def ping(namespace, target, interval, count):
    return subprocess.Popen(['nsenter', '--net=/run/netns/' + namespace, 'ping', '-q', '-i', str(interval), '-c',
                             str(count), target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_traffic(routed, seconds):
    """For about `seconds`: 100 echo requests a second to S (redirected), 20 to R itself
    (local_destination) and 50 to HAIRPIN (hairpin, forwarded by R's kernel back to G, which drops
    them: its forwarding is off). Returns the pings' processes."""
    with iproute(routed.r) as ipr:
        ipr.route('add', dst=HAIRPIN_NET, gateway=SENDER)
    return [ping(routed.g, SINK, 0.01, int(seconds * 100)), ping(routed.g, ROUTER, 0.05, int(seconds * 20)),
            ping(routed.g, HAIRPIN, 0.02, int(seconds * 50))]


def stop_traffic(pings):
    for process in pings:
        process.kill()
        process.wait()


@pytest.fixture
def prometheus(tmp_path):
    """Debian's Prometheus with a configuration of its own, scraping the given target every second;
    its data in tmp_path, its web API on a free port of 127.0.0.1; stopped by its pid."""
    assert os.access(PROMETHEUS, os.X_OK), 'install Debian\'s prometheus (scripts/bootstrap does)'
    started = []

    def start(target_port):
        port = free_port()
        config = tmp_path / 'prometheus.yml'
        config.write_text(json.dumps({
            'global': {'scrape_interval': '1s', 'evaluation_interval': '1s'},
            'scrape_configs': [{'job_name': 'xdpkit', 'static_configs': [
                {'targets': ['127.0.0.1:%d' % target_port]}]}]}))
        log = open(tmp_path / 'prometheus.log', 'w')
        process = subprocess.Popen([PROMETHEUS, '--config.file=%s' % config,
                                    '--storage.tsdb.path=%s' % (tmp_path / 'data'),
                                    '--web.listen-address=127.0.0.1:%d' % port, '--web.enable-lifecycle'],
                                   stdout=log, stderr=subprocess.STDOUT)
        started.append((process, log))
        api = 'http://127.0.0.1:%d/api/v1/' % port
        wait_for('Prometheus is ready', lambda: process.poll() is not None or
                 http_get('http://127.0.0.1:%d/-/ready' % port)[0] == 200, 60)
        assert process.poll() is None, (tmp_path / 'prometheus.log').read_text()[-3000:]
        return api
    yield start
    for process, log in started:
        assert stop(process) == 0
        log.close()


def query(api, promql, **extra):
    url = api + ('query_range' if 'start' in extra else 'query') + '?' + urllib.parse.urlencode(
        dict(extra, query=promql))
    status, body = http_get(url, timeout=15)
    assert status == 200, (promql, status, body)
    answer = json.loads(body)
    assert answer['status'] == 'success', answer
    return answer['data']['result']


def panel_queries():
    """(panel title, expr) of every query in the dashboard, Grafana's variables given values: every
    namespace, and a rate window of 5 s (Prometheus scrapes every second here)."""
    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)
    found = []
    for panel in dashboard['panels']:
        for target in panel['targets']:
            found.append((panel['title'], target['expr'].replace('$namespace', '.*').replace(
                '$__rate_interval', '5s')))
    return found


def test_the_exporter_says_how_to_run_it_and_leaves_cleanly_on_sigterm(exporter):
    usage = subprocess.run([EXPORTER, '--help'], capture_output=True, text=True, check=True).stdout
    for said in ('--web.listen-address', '--web.telemetry-path', '--collector.textfile', ':9435'):
        assert said in usage, usage
    bad = subprocess.run([EXPORTER, '--web.listen-address=::1:9435'], capture_output=True, text=True, check=False)
    assert bad.returncode == 64 and 'brackets' in bad.stderr, bad
    process, port = exporter()
    status, body = http_get('http://127.0.0.1:%d/metrics' % port)
    assert status == 200 and '# TYPE xdpkit_xdp_packets_total counter' in body, body[:500]
    assert http_get('http://127.0.0.1:%d/nothing' % port)[0] == 404
    assert stop(process) == 0
    out, err = process.communicate()
    assert 'stopping on signal 15' in err and 'Traceback' not in err, err
    assert http_get('http://127.0.0.1:%d/metrics' % port)[0] is None, 'the port is closed'


def test_prometheus_sees_the_redirect_rate_rise_while_pings_flow_and_every_panel_has_series(
        routed, exporter, prometheus):
    _process, port = exporter()
    api = prometheus(port)
    wait_for('Prometheus scraped the exporter', lambda: query(api, 'up{job="xdpkit"} == 1'), 30)
    redirect_rate = 'sum(rate(xdpkit_xdp_packets_total{namespace="%s",action="XDP_REDIRECT"}[5s]))' % routed.r
    quiet = time.time()
    time.sleep(4)
    pings = start_traffic(routed, 15)
    try:
        time.sleep(8)
        flowing = query(api, redirect_rate)
        series = query(api, redirect_rate, start=quiet, end=time.time(), step=1)
        panels = [(title, expr, query(api, expr)) for title, expr in panel_queries()]
        assert all(process.poll() is None for process in pings), 'the pings still flowed when Prometheus was asked'
    finally:
        stop_traffic(pings)
    rate = float(flowing[0]['value'][1])
    values = [float(value) for _time, value in series[0]['values']]
    print('redirect rate while pings flow: %.1f pps; range: %s' % (rate, ['%.0f' % v for v in values]))
    # 100 echo requests a second redirected at r0 and as many replies at r1.
    assert rate >= 100, (rate, values)
    assert values[0] < 10 <= 100 <= max(values), 'the rate rose from nothing while the pings flowed: %s' % values
    for title, expr, result in panels:
        assert result, 'dashboard panel %r: no series for %s' % (title, expr)
    by_title = {title: result for title, _expr, result in panels}
    # Per namespace: 200 redirects a second over those plus the 50 hairpin frames R's kernel forwards.
    share = [float(s['value'][1]) for s in by_title['Acceleration share per namespace']
             if s['metric'].get('namespace') == routed.r]
    assert len(share) == 1 and 0.65 < share[0] < 0.92, share
    # Per port: r0 redirects 100 and hands the kernel 50 to forward (hairpin; local_destination is
    # not forwarded); r1 redirects every reply. The receivers' xdp_pass counts no reasons: no share.
    ports = {(s['metric']['namespace'], s['metric']['interface']): float(s['value'][1])
             for s in by_title['Acceleration share per port']}
    assert set(ports) == {(routed.r, 'r0'), (routed.r, 'r1')}, ports
    assert 0.5 < ports[(routed.r, 'r0')] < 0.85 and ports[(routed.r, 'r1')] > 0.95, ports
    leading = {s['metric']['reason']: float(s['value'][1]) for s in by_title['Leading pass reasons']
               if s['metric']['namespace'] == routed.r}
    print('shares: namespace %.3f, ports %s; leading reasons: %s' % (share[0], ports, leading))
    assert leading.get('hairpin', 0) > 25 and leading.get('local_destination', 0) > 8, leading


def rendered_unit(tmp_path, **variables):
    """The exporter role's unit as the role renders it (its template, defaults and derived vars)."""
    role = os.path.join(ROOT, 'roles', 'exporter')
    unit = tmp_path / 'xdpkit-exporter.service'
    playbook = tmp_path / 'render.yml'
    playbook.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'vars_files': [os.path.join(role, 'defaults', 'main.yml'), os.path.join(role, 'vars', 'main.yml')],
        'tasks': [{'ansible.builtin.template': {'src': os.path.join(role, 'templates', 'xdpkit-exporter.service.j2'),
                                                'dest': str(unit), 'mode': '0644'}}]}]))
    variables = dict(variables, ansible_python_interpreter='/usr/bin/python3')
    proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                           str(playbook), '-e', json.dumps(variables)], capture_output=True, text=True, check=False,
                          cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg')))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return unit


def exec_start(unit):
    """ExecStart of a unit file as argv (continuation lines joined)."""
    import shlex
    text = unit.read_text().replace('\\\n', ' ')
    [line] = [line for line in text.splitlines() if line.startswith('ExecStart=')]
    return shlex.split(line[len('ExecStart='):])


def test_the_role_unit_passes_systemd_analyze_and_its_command_serves_or_writes(tmp_path):
    """Both of the role's units (HTTP on an IPv6 loopback address and a port of the test's, and the
    textfile alternative) verify offline, and the commands they run work with this checkout's code."""
    port = free_port()
    http = rendered_unit(tmp_path, exporter_listen_address='::1', exporter_port=port)
    verify = subprocess.run(['systemd-analyze', 'verify', str(http)], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    argv = exec_start(http)
    assert '--web.listen-address=[::1]:%d' % port in argv, argv
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, '.collections'))
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status, body = wait_for('the unit\'s exporter answers on [::1]:%d' % port, lambda: process.poll() is not None
                                or (http_get('http://[::1]:%d/metrics' % port)[0] == 200 and
                                    http_get('http://[::1]:%d/metrics' % port)), 30)
        assert status == 200 and 'xdpkit_exporter_ports_omitted 0.0' in body, body[-500:]
    finally:
        assert stop(process) == 0, process.communicate()

    directory = tmp_path / 'textfile'
    textfile = rendered_unit(tmp_path, exporter_method='textfile', exporter_textfile_directory=str(directory),
                             exporter_textfile_interval=1)
    verify = subprocess.run(['systemd-analyze', 'verify', str(textfile)], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert 'ReadWritePaths=%s' % directory in textfile.read_text()
    directory.mkdir()
    process = subprocess.Popen(exec_start(textfile), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_for('the unit writes xdpkit.prom', (directory / 'xdpkit.prom').exists, 30)
    finally:
        assert stop(process) == 0, process.communicate()
    assert '# TYPE xdpkit_xdp_packets_total counter' in (directory / 'xdpkit.prom').read_text()
    assert os.listdir(directory) == ['xdpkit.prom']


def test_xdp_stats_plots_the_rates_of_the_ports_that_redirect(routed, tmp_path):
    png = tmp_path / 'rates.png'
    ping = subprocess.Popen(['nsenter', '--net=/run/netns/' + routed.g, 'ping', '-q', '-i', '0.01', '-c', '600',
                             SINK], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([os.path.join(ROOT, 'tools', 'xdp_stats'), '--png', str(png), '--window', '3',
                              '--interval', '0.5'], capture_output=True, text=True, check=True, timeout=60).stdout
        assert ping.poll() is None, 'the pings still flowed while it recorded'
    finally:
        ping.kill()
        ping.wait()
    # Echo requests arrive on r0, replies on r1: both redirect; nothing else does.
    assert out.strip().endswith('redirecting: %s/r0, %s/r1' % (routed.r, routed.r)), out
    with open(png, 'rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert png.stat().st_size > 10000


def tool_samples(out):
    """tools/xdp_stats' output cut into its samples (each starts with the header line)."""
    found = []
    for line in out.splitlines():
        if re.match(r'^\S.*: XDP program ', line):
            found.append([])
        if found and line:
            found[-1].append(line)
    return found


def test_xdp_stats_tool_names_why_frames_were_not_redirected_and_the_share_over_the_interval(routed):
    pings = start_traffic(routed, 15)
    try:
        time.sleep(1)
        out = subprocess.run([os.path.join(ROOT, 'tools', 'xdp_stats'), '-d', 'r0', '-n', routed.r, '--count', '2',
                              '--interval', '2'], capture_output=True, text=True, check=True, timeout=60).stdout
        text = subprocess.run([os.path.join(ROOT, 'tools', 'xdp_stats'), '--prometheus', '--count', '1'],
                              capture_output=True, text=True, check=True, timeout=60).stdout
        assert all(process.poll() is None for process in pings), 'the pings still flowed while it read'
    finally:
        stop_traffic(pings)
    print(out)
    samples = tool_samples(out)
    assert len(samples) == 2, out
    last = samples[-1]
    [table] = [index for index, line in enumerate(last) if line.startswith('reason ')] or [None]
    assert table is not None, 'no table of reasons: %s' % out
    assert last[table].split()[:6] == ['reason', 'packets', 'pps', 'bytes', 'Mbit/s', 'what'], last
    rows = {}
    for line in last[table + 1:]:
        if line.startswith('acceleration '):
            break
        name, packets, pps, size, _mbits, means = line.split(None, 5)
        rows[name] = (int(packets), float(pps), int(size), means)
    # Counted reasons only, the busiest first: hairpin (50/s) above local_destination (20/s); each
    # with what it means. Echo requests are 98-byte frames.
    assert list(rows)[:2] == ['hairpin', 'local_destination'], rows
    assert all(packets > 0 for packets, _pps, _size, _means in rows.values()), rows
    hairpin, local = rows['hairpin'], rows['local_destination']
    # (ping -i 0.01 sends about 60 a second here, -i 0.02 about 40, -i 0.05 about 18.)
    assert 20 <= hairpin[1] <= 70 and hairpin[2] == 98 * hairpin[0] and hairpin[3] == HAIRPIN_MEANS, hairpin
    assert 8 <= local[1] <= 30 and local[2] == 98 * local[0] and local[3] == LOCAL_MEANS, local
    [redirect] = [float(line.split()[2]) for line in last if line.startswith('XDP_REDIRECT ')]
    # Over the last interval: r0's redirects over those plus the hairpin frames the kernel forwards
    # (local_destination is not forwarded); R's redirects (replies at r1 too) over those plus the
    # kernel's forwards (the hairpin frames).
    [line] = [line for line in last if line.startswith('acceleration ')]
    match = re.fullmatch(r'acceleration over [0-9.]+s: port ([0-9.]+)%, namespace ([0-9.]+)% '
                         r'\(XDP redirected ([0-9]+) pps, kernel forwarded ([0-9]+) pps\)', line)
    assert match, line
    port, namespace, xdp, kernel = (float(value) for value in match.groups())
    assert 40 < port < 90 and abs(port - 100 * redirect / (redirect + hairpin[1])) < 2, (line, redirect, hairpin)
    assert 1.8 * redirect <= xdp <= 2.2 * redirect and abs(kernel - hairpin[1]) <= 3, (line, redirect, hairpin)
    assert port < namespace < 95 and abs(namespace - 100 * xdp / (xdp + kernel)) < 2, line

    # The Prometheus text has the same counters, every reason labelled, zeros included.
    reasons = {s.labels['reason']: s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == 'xdpkit_xdp_reason_packets_total'
               and (s.labels['namespace'], s.labels['interface']) == (routed.r, 'r0')}
    assert reasons['hairpin'] >= hairpin[0] and reasons['local_destination'] >= local[0], reasons
    assert reasons['ttl'] == 0 and 'redirected' not in reasons and len(reasons) > 20, reasons
