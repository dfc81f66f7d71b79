#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: xdp_stats
short_description: Read the XDP program and its per-action counters on an interface
version_added: 0.1.0
description:
  - Reports the XDP program attached to an interface (id, name, tag, mode) and its packet and byte
    counters per XDP action (aborted, drop, pass, tx, redirect), summed over CPUs.
  - For a program that counts them (every forwarding program of the collection), the frames it did not redirect
    by reason (no neighbour yet, TTL, spoofed source, not for this router, ...; one per rule the program follows),
    the leading reasons with what each means and what to do, and the acceleration share.
  - The acceleration share is the part of the forwarded frames XDP redirected. In the namespace, every
    program's XDP_REDIRECT count over that plus what the namespace's kernel forwarded itself (its SNMP counters
    C(Ip ForwDatagrams) and C(Ip6OutForwDatagrams)). On the port, the kernel keeps no count of what it forwarded
    by ingress port, so the port's share counts as the kernel's the frames the program handed over for a reason
    after which the kernel forwards them (no neighbour yet, egress port without the router, hairpin, ICMP error,
    options, encapsulated route, lease ran out, port unknown).
  - With O(interval), reads twice and adds rates and the shares over the interval (the ones without it are since
    the program and the namespace started counting). Never changes anything.
  - For a program that caches what it knows of its ports (the router's port entry, with its port's MAC,
    rp_filter and accept_local), reports whether the keeper vouches for the interface's entry (it renews
    a lease on it). Once a lease ran out (no keeper runs, or an older one) the router hands every frame
    that arrives on the port to the kernel, and the module warns saying so and what to do.
  - The same view, refreshed every second, is C(tools/xdp_stats) in the collection (also C(--png) for a plot of
    the rates); C(tools/xdpkit_exporter) serves every program's counters to Prometheus, and the
    P(xdpkit.forwarding.exporter#role) role installs it as a service.
requirements:
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  interface:
    description: Interface to look at.
    type: str
    required: true
  namespace:
    description: Namespace of the interface; omitted means the host.
    type: str
  interval:
    description: Seconds between two reads for rates.
    type: float
extends_documentation_fragment:
  - xdpkit.forwarding.attributes.INFO_MODULE
  - xdpkit.forwarding.attributes.action_group
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: Counters of the router on port uno
  xdpkit.forwarding.xdp_stats:
    interface: uno
  register: uno_stats

- name: Rates over two seconds
  xdpkit.forwarding.xdp_stats:
    interface: veth0
    namespace: dos
    interval: 2
'''

RETURN = r'''
program:
  description: The attached program, null when none is attached.
  returned: success
  type: dict
  contains:
    id:
      description: Program id.
      type: int
    name:
      description: Program name.
      type: str
    tag:
      description: Program tag.
      type: str
    mode:
      description: native or generic.
      type: str
stats:
  description: Counters per action, null when no program is attached.
  returned: success
  type: dict
  sample: {XDP_REDIRECT: {packets: 10, bytes: 980}, XDP_PASS: {packets: 2, bytes: 84}}
rates:
  description: Packets and bits per second per action over O(interval).
  returned: when interval is given
  type: dict
interface:
  description: The interface.
  returned: success
  type: str
namespace:
  description: The namespace, null for the host.
  returned: success
  type: str
reasons:
  description:
    - Packets and bytes the program handed to the kernel (or dropped, for C(blackhole)) per reason, summed over
      CPUs; every reason the program knows, zeros included. Null when no program is attached or the program counts
      no reasons (C(xdp_pass), another tool's program, one loaded by an older collection).
    - "Reasons: C(not_ip), C(malformed), C(port_unknown), C(not_vouched), C(not_our_mac), C(martian_destination),
      C(martian_source), C(local_source), C(reverse_path), C(ttl), C(options), C(icmp_error), C(no_route),
      C(local_destination), C(unreachable), C(prohibit), C(blackhole), C(forwarding_disabled),
      C(unsupported_route), C(no_neighbour), C(fragmentation_needed), C(hairpin), C(egress_without_router),
      C(lookup_failed), C(unknown_source_mac), C(no_egress_port), C(redirect_refused)."
  returned: success
  type: dict
  sample: {no_neighbour: {packets: 3, bytes: 294}, ttl: {packets: 0, bytes: 0}}
leading_reasons:
  description: Up to three reasons with the most packets, most first, each with what it means and what to do.
  returned: success
  type: list
  elements: dict
  sample:
    - reason: no_neighbour
      packets: 3
      means: "the next hop's MAC is not known yet: the kernel resolves it and forwards"
reason_rates:
  description: Packets and bits per second per reason over O(interval).
  returned: when interval is given and the program counts reasons
  type: dict
acceleration:
  description: The share of forwarded frames XDP redirected, since counting started. Null when no program is attached.
  returned: success
  type: dict
  contains:
    port:
      description:
        - On this port, 0 to 1; null when nothing was forwarded or the program counts no reasons.
      type: float
    namespace:
      description: In the interface's namespace, 0 to 1; null when nothing was forwarded there.
      type: float
    namespace_redirected:
      description: Frames every XDP program in the namespace redirected.
      type: int
    kernel_forwarded:
      description: Datagrams the namespace's kernel forwarded itself (IPv4 and IPv6).
      type: int
  sample: {port: 0.98, namespace: 0.97, namespace_redirected: 9700, kernel_forwarded: 300}
acceleration_over_interval:
  description: The shares on the port and in the namespace over O(interval) alone (C(port), C(namespace)).
  returned: when interval is given
  type: dict
port:
  description:
    - The program's port entry (the interface's), and its lease. The router trusts the entry
      only while the lease runs; otherwise it hands every frame that arrives here to the kernel.
    - Null when no program is attached or the program has no port entry.
  returned: success
  type: dict
  contains:
    vouched:
      description: Whether the entry is vouched for now (the router uses it).
      type: bool
    lease_seconds:
      description:
        - Seconds left of the lease; negative when it ran out that long ago.
        - Null when the port has no entry or it was never vouched for.
      type: float
    rp_filter:
      description: The effective rp_filter the entry holds (0 off, 1 strict, 2 loose), null without an entry.
      type: int
    accept_local:
      description: The effective accept_local the entry holds, null without an entry.
      type: int
    mac:
      description: The port's MAC the entry holds, null without an entry.
      type: str
  sample: {vouched: true, lease_seconds: 1.31, rp_filter: 0, accept_local: 0, mac: "02:00:00:00:00:01"}
keeper:
  description: The host's keeper, which keeps every router's port entries current and renews the leases.
  returned: success
  type: dict
  contains:
    running:
      description: Whether a keeper runs on the host.
      type: bool
    pid:
      description: Its process id, null when none runs.
      type: int
    version:
      description: Its version (a digest of its code), null when none runs.
      type: str
    started:
      description: When it started (seconds since the epoch), null when none runs.
      type: float
    current:
      description:
        - Whether it is the version of the collection this reads from; null when none runs or that
          cannot be told here (this module does not carry the keeper's code; C(tools/xdp_stats) and
          M(xdpkit.forwarding.xdp_program) compare).
      type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_stats import XdpStatsReader


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str', required=True),
            namespace=dict(type='str'),
            interval=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    run_manager(module, XdpStatsReader, changes=False)


if __name__ == '__main__':
    main()
