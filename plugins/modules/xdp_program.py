#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: xdpkit developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: xdp_program
short_description: Compile, load and attach an XDP program to an interface in any namespace
version_added: 0.1.0
description:
  - Compiles a BPF C program with bcc, loads it and attaches it to an interface, in the host or
    in a network namespace, in native (driver) or generic mode.
  - The program comes from the collection's C(bpf/) directory (O(program)) or from a file on the
    controller (O(src)); an action plugin reads it on the controller, so the module works the same
    over SSH as on localhost.
  - Maps are pinned under O(pin_dir) (the program's per-action stats map and a small record of
    what was loaded) and O(maps_dir) (maps that programs on several ports share). bpffs is
    mounted on C(/sys/fs/bpf) when it is not.
  - A re-run with the same source, defines and mode reports no change without compiling.
    bcc compiles a source with given defines once per host; the instructions are kept in
    C(/run/xdpkit/compiled) and loaded again, on the new port's own pins, for the next port or
    namespace that asks for the same program (RV(compiled) says which happened).
    A changed source or define loads the new program and swaps it in with one netlink call, so
    the interface is never without a program. Only a change of O(mode) detaches first.
  - O(state=absent) detaches the program and removes its pins; shared maps in O(maps_dir) go when
    no other instance uses them.
  - A program that xdpkit did not attach (another tool's, a libxdp dispatcher, one from
    C(ip link set ... xdp obj ...)) is never replaced or detached unless O(force=true); the
    failure names it (id, name, tag, mode).
  - Attach, replace and detach name to the kernel the program found when the interface was
    checked (C(XDP_FLAGS_REPLACE) with the expected program, or C(XDP_FLAGS_UPDATE_IF_NOEXIST) on an
    empty interface), so a program another tool attaches between the check and the change is never
    overwritten - the run fails naming it, and a first attach that failed leaves no pins behind.
  - Programs that send frames on past the stack (any redirect, or C(XDP_TX)) skip netfilter.
    Before attaching one, and on every run while it is attached, the module reads the
    namespace's netfilter state and fails, naming the chains, when nftables or iptables
    (nft or legacy) chains on the prerouting, forward, postrouting (or netdev ingress / egress)
    hooks have rules or a drop policy, unless O(netfilter=bypass).
  - They skip traffic control too (tc ingress of the port a frame arrives on, and the qdisc, tc egress
    and tcx programs of the port it leaves by, since a redirect goes straight to the driver). The module fails,
    naming them, when the interface (and the C(DEST_IFINDEX) of C(xdp_redirect)) has tc filters, tcx
    programs or a qdisc someone configured (a non-zero handle; the kernel's own default qdiscs only
    queue), unless O(traffic_control=bypass).
  - Programs that declare a port entry (C(XDPKIT_PORT_ENTRY) in C(bpf/xdpkit.h), as
    C(xdp_router) does) get the port's MAC and its effective C(rp_filter) and C(accept_local)
    written there (C(port_entry) in the instance's O(pin_dir), as every instance serves one port); a re-run
    refreshes them when the sysctls or the MAC changed since.
  - Programs that declare egress ports (C(XDPKIT_EGRESS_PORTS), the C(tx_ports) of C(xdp_router)) get each
    port they are attached to added there (ifindex to ifindex) and taken out on detach, so they send out of
    exactly the ports they run on.
requirements:
  - bcc (Debian package C(python3-bpfcc)), run by C(/usr/bin/python3)
  - a kernel build tree at C(/lib/modules/$(uname -r)/build)
  - pyroute2 (Debian package C(python3-pyroute2))
  - root privileges on the target
options:
  interface:
    description:
      - Interface to attach to.
      - One of O(interface) and O(interfaces) is required.
    type: str
  interfaces:
    description:
      - Many interfaces, each a name (in O(namespace)) or a dict with C(interface) and C(namespace) (other keys,
        such as the C(node) of a lab plan's C(lab_peers), are ignored), to get
        the same program, defines and mode in one run (one module start and one compile instead of one per
        interface), for example a router's ports.
      - Every interface is checked first (namespace, link, another tool's program, netfilter, traffic control), so
        bad input fails before anything changes; then each converges in order with its own default O(pin_dir).
      - The result is RV(programs), one entry per interface.
    type: list
    elements: raw
  exclusive:
    description:
      - With O(interfaces) and O(state=present), take the program off the ports it was attached to earlier with the
        same O(maps_dir) in the same namespace that are no longer listed (a port dropped from a router's list).
        Each is detached, and its egress port entry and its pins (its port entry with them) removed. The result is
        RV(removed).
      - Only instances on their default pin dir are found (every instance O(interfaces) attaches is). A program
        another tool has put on such a port since is left attached; only this collection's pins go.
    type: bool
    default: false
  receivers:
    description:
      - veth ends that receive what the program redirects, each a name (in O(namespace)) or a dict with
        C(interface) and C(namespace). A veth delivers frames redirected into it only when its peer has an XDP
        program (or GRO on), so each gets the collection's C(xdp_pass) in the same run (O(state=absent) detaches
        it), with the same O(mode), O(force), O(netfilter) and O(traffic_control), each on its own default pin dir.
      - They are checked with the interfaces before anything changes. The result is RV(receivers).
    type: list
    elements: raw
  receiver_source_files:
    description: The C(xdp_pass) sources for O(receivers); set by the action plugin.
    type: dict
  map_entries:
    description:
      - Entries to keep in maps the program pins in O(maps_dir) (a port map, a MAC table), written in the same run
        after the program is attached, as M(xdpkit.forwarding.xdp_map) writes them (one module start instead of
        two). Interface names are resolved in O(namespace).
      - Every entry is checked before anything changes (an ifindex, an interface that exists, or a MAC address),
        and so is every map that is already pinned (its type, its capacity). A map the program creates in this
        run can only be checked once it is loaded; when it cannot take the entries, the programs this run
        attached where none was are detached again and the run fails.
      - With O(interfaces), the interfaces must share one O(maps_dir). Ignored with O(state=absent), which
        removes the maps with the program. The result is RV(map_entries).
    type: list
    elements: dict
    suboptions:
      name:
        description: The map's name in O(maps_dir), as the program declares it (for example C(tx_ports)).
        type: str
        required: true
      entries:
        description: Entries, each with C(key) and C(value) (interface name, ifindex or MAC address).
        type: list
        elements: dict
        default: []
        suboptions:
          key:
            description: Interface name, ifindex or MAC address.
            type: raw
            required: true
          value:
            description: Interface name, ifindex or MAC address.
            type: raw
            required: true
      exclusive:
        description: Remove the map's entries that are not listed.
        type: bool
        default: false
  namespace:
    description: Namespace of the interface; omitted means the host namespace.
    type: str
  program:
    description:
      - Name of a program in the collection's C(bpf/) directory
        (V(xdp_pass), V(xdp_redirect), V(xdp_redirect_map), V(xdp_router)).
      - Mutually exclusive with O(src).
    type: str
  src:
    description:
      - Path on the controller of a BPF C file (bcc dialect). Quoted includes beside it are sent too.
      - It may include the collection's C(xdpkit.h) if a copy lies beside it.
    type: path
  function:
    description: Entry function; defaults to the file name without C(.c).
    type: str
  defines:
    description:
      - Compile-time defines, name to value. Values must be numbers (decimal or C(0x) hex) or MAC
        addresses, which become 48-bit integers; anything else is refused, so no C code can be injected.
      - Names starting with C(XDPKIT_) or C(__) are reserved.
    type: dict
    default: {}
  mode:
    description: V(native) runs in the driver (veth supports it); V(generic) in the network stack.
    type: str
    choices: [native, generic]
    default: native
  pin_dir:
    description:
      - bpffs directory of this program instance. Defaults to C(/sys/fs/bpf/xdpkit/NAMESPACE@INTERFACE)
        (empty NAMESPACE for the host). Not with O(interfaces).
    type: str
  maps_dir:
    description:
      - bpffs directory of the maps the program shares (C(tx_ports), C(mac_table)). Programs given the
        same O(maps_dir) share those maps. Defaults to O(pin_dir).
    type: str
  source_files:
    description:
      - Program sources, file name to C text. Set by the action plugin from O(program) or O(src);
        give it directly only to pass C text inline (with O(source_main)).
    type: dict
  source_main:
    description: The file in O(source_files) to compile.
    type: str
  force:
    description:
      - Replace or detach an XDP program that xdpkit did not attach. Without it the module fails
        and names the program, so that another tool's program is never taken over silently.
    type: bool
    default: false
  netfilter:
    description:
      - What to do when the program forwards frames (redirect or C(XDP_TX)) and the namespace has
        netfilter rules it would skip.
      - V(refuse) fails and names the nftables / iptables chains found.
      - V(bypass) attaches anyway. Forwarded traffic then skips every prerouting, forward and
        postrouting rule of the namespace (filtering, NAT, conntrack) and the netdev ingress /
        egress chains; only traffic the program hands to the kernel still meets them.
    type: str
    choices: [refuse, bypass]
    default: refuse
  traffic_control:
    description:
      - What to do when the program forwards frames (redirect or C(XDP_TX)) and its ports have traffic control
        it would skip.
      - V(refuse) fails and names the tc filters, tcx programs and configured qdiscs found. The ports that
        O(map_entries) write into a port map as values (where frames are redirected to) are checked the same way,
        as M(xdpkit.forwarding.xdp_map) checks them.
      - V(bypass) attaches anyway. Forwarded traffic then skips the ingress filters of the port it arrives on
        and the qdisc (shaping, queueing discipline, netem), filters and tcx programs of the port it leaves by;
        only traffic the program hands to the kernel still meets them.
    type: str
    choices: [refuse, bypass]
    default: refuse
  keeper:
    description:
      - A program with a port entry (V(xdp_router)) trusts it (its MAC, rp_filter and accept_local)
        only for a lease of 1.5 seconds; the keeper, one process per host, follows the kernel's netlink
        events and re-reads the settings four times a second, rewrites entries that drifted (C(sysctl -w),
        C(ip link set ... address), a port renamed or re-created, addresses added or removed) and renews the
        leases. Without a keeper the router hands every frame to the kernel once the lease has run out, so
        it is never wrong, only slower.
      - V(start) starts a keeper in the background when none of this version runs (an older one is stopped
        first); it leaves by itself a few seconds after the last router is gone.
      - V(external) leaves that to a service manager (the C(xdpkit-keeper) systemd unit) and only warns
        when no keeper of this version runs.
    type: str
    choices: [start, external]
    default: start
  state:
    description: Whether the program should be attached.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports whether a program would be (re)attached without compiling or attaching.
  diff_mode:
    support: full
    description: Shows the attached program (id, name, tag, mode) before and after.
  idempotent:
    support: full
    description: A re-run with the same source, defines and mode reports no change and does not compile.
  action:
    support: full
    description: An action plugin reads the sources on the controller.
  async:
    support: full
    description: Runs with C(async) and C(poll) like any module; the sources are read before it starts.
notes:
  - A veth delivers redirected frames only when its peer has an XDP program (or GRO on); the
    collection's roles attach C(xdp_pass) there. This module attaches just what it is told.
extends_documentation_fragment:
  - xdpkit.forwarding.attributes.action_group
author:
  - xdpkit developers (@xdpkit)
'''

EXAMPLES = r'''
- name: The FIB router on the host port 'uno', sharing its port map with the other ports
  xdpkit.forwarding.xdp_program:
    interface: uno
    program: xdp_router
    maps_dir: /sys/fs/bpf/xdpkit/fib

- name: Hardcoded redirect with compile-time ifindex and MAC
  xdpkit.forwarding.xdp_program:
    interface: dos
    program: xdp_redirect
    defines:
      DEST_IFINDEX: 7
      DEST_MAC: "02:00:00:00:00:01"

- name: The receiving end of a veth
  xdpkit.forwarding.xdp_program:
    interface: veth0
    namespace: uno
    program: xdp_pass

- name: The router on two ports in one run (one compile), and xdp_pass on the veth ends behind them
  xdpkit.forwarding.xdp_program:
    interfaces: [uno, dos]
    program: xdp_router
    maps_dir: /sys/fs/bpf/xdpkit/fib

- name: The same, with xdp_pass on the veth ends behind the ports so they accept the redirected frames
  xdpkit.forwarding.xdp_program:
    interfaces: [uno, dos]
    program: xdp_router
    maps_dir: /sys/fs/bpf/xdpkit/fib
    receivers:
      - {interface: veth0, namespace: uno}
      - {interface: veth0, namespace: dos}

- name: bpf_redirect_map between two ports, its port map and MAC table filled in the same run
  xdpkit.forwarding.xdp_program:
    interfaces: [uno, dos]
    program: xdp_redirect_map
    maps_dir: /sys/fs/bpf/xdpkit/map
    map_entries:
      - name: tx_ports
        entries: [{key: uno, value: dos}, {key: dos, value: uno}]
        exclusive: true
      - name: mac_table
        entries:
          - {key: "02:00:00:00:00:01", value: "02:00:00:00:00:02"}
          - {key: "02:00:00:00:00:02", value: "02:00:00:00:00:01"}
        exclusive: true

- name: Detach and unpin
  xdpkit.forwarding.xdp_program:
    interface: uno
    state: absent

- name: Route with XDP on a host whose forward chain is known to be irrelevant to this traffic
  xdpkit.forwarding.xdp_program:
    interface: eth1
    program: xdp_router
    maps_dir: /sys/fs/bpf/xdpkit/router
    netfilter: bypass

- name: Route with XDP on a port whose egress shaping is meant for locally sent traffic only
  xdpkit.forwarding.xdp_program:
    interface: eth1
    program: xdp_router
    maps_dir: /sys/fs/bpf/xdpkit/router
    traffic_control: bypass

- name: Take over from a program another tool attached
  xdpkit.forwarding.xdp_program:
    interface: eth1
    program: xdp_router
    force: true
'''

RETURN = r'''
program:
  description: The attached program after the run (null when absent).
  returned: success, with O(interface)
  type: dict
  contains:
    prog_id:
      description: Kernel program id (null in check mode before a first load).
      type: int
    name:
      description: Program name as the kernel knows it (15 characters at most).
      type: str
      sample: xdp_router
    tag:
      description: The program's tag (hash of its instructions).
      type: str
    mode:
      description: native or generic.
      type: str
    interface:
      description: The interface.
      type: str
    namespace:
      description: The namespace, null for the host.
      type: str
    managed:
      description: Whether xdpkit loaded this program (false for one attached by another tool).
      type: bool
    port:
      description:
        - The port entry of the interface, for programs that declare one (null otherwise).
        - C(mac), C(rp_filter) (0 off, 1 strict, 2 loose) and C(accept_local), as the kernel applies them.
      type: dict
pin_dir:
  description: bpffs directory of this program instance.
  returned: when present
  type: str
  sample: /sys/fs/bpf/xdpkit/@uno
maps_dir:
  description: bpffs directory of the shared maps.
  returned: when present
  type: str
compiled:
  description:
    - Whether bcc compiled the program in this run. The instructions of a compile are kept on the host
      (C(/run/xdpkit/compiled), until the last xdpkit pin goes) and loaded again for the same source and
      defines, so one program on many ports, or on many namespaces of one host, compiles once.
  returned: always
  type: bool
compile_seconds:
  description: Seconds the bcc compile took (0 when nothing was compiled).
  returned: always
  type: float
keeper:
  description: The keeper that renews the port entries of the program (a started one is a change).
  returned: when the program has a port entry
  type: dict
  contains:
    pid:
      description: Its process id (null in check mode when it would be started).
      type: int
    version:
      description: A digest of the keeper's code; a keeper of another version is replaced.
      type: str
    started:
      description: Whether this run started it.
      type: bool
maps:
  description: Pinned maps by name, with their paths.
  returned: when present
  type: dict
  sample: {xdp_stats_map: /sys/fs/bpf/xdpkit/@uno/xdp_stats_map, tx_ports: /sys/fs/bpf/xdpkit/fib/tx_ports}
programs:
  description:
    - With O(interfaces), one entry per interface in the given order, each with C(changed) and the keys
      RV(program), RV(pin_dir), RV(maps_dir), RV(maps), RV(compiled) and RV(compile_seconds) have for one interface.
    - RV(compiled) and RV(compile_seconds) at the top sum them up.
  returned: success, with O(interfaces)
  type: list
  elements: dict
removed:
  description:
    - With O(exclusive), the ports the program was taken off in this run, each with C(interface), C(namespace),
      C(pin_dir) and C(program) (what was attached, as RV(program); null when only pins were left).
  returned: success, with O(exclusive)
  type: list
  elements: dict
receivers:
  description: With O(receivers), one entry per receiver, with the same keys as an entry of RV(programs).
  returned: success, with O(receivers)
  type: list
  elements: dict
map_entries:
  description:
    - With O(map_entries), one entry per map in the given order, each with C(path), C(changed), C(entries) (all
      entries of the map after the run, key to value, as text) and C(map) (path, type, max_entries, id), as the
      C(maps) result of M(xdpkit.forwarding.xdp_map).
  returned: success, with O(map_entries) and O(state=present)
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xdpkit.forwarding.plugins.module_utils._module import (
    require_pyroute2,
    run_manager,
)
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_map import entries_argument_spec
from ansible_collections.xdpkit.forwarding.plugins.module_utils._xdp_program_set import XdpProgramSetManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str'),
            interfaces=dict(type='list', elements='raw'),
            receivers=dict(type='list', elements='raw'),
            exclusive=dict(type='bool', default=False),
            receiver_source_files=dict(type='dict'),
            map_entries=dict(type='list', elements='dict', options=dict(
                name=dict(type='str', required=True),
                entries=entries_argument_spec(value_required=True),
                exclusive=dict(type='bool', default=False),
            )),
            namespace=dict(type='str'),
            program=dict(type='str'),
            src=dict(type='path'),
            function=dict(type='str'),
            defines=dict(type='dict', default={}),
            mode=dict(type='str', default='native', choices=['native', 'generic']),
            pin_dir=dict(type='str'),
            maps_dir=dict(type='str'),
            source_files=dict(type='dict'),
            source_main=dict(type='str'),
            force=dict(type='bool', default=False),
            netfilter=dict(type='str', default='refuse', choices=['refuse', 'bypass']),
            traffic_control=dict(type='str', default='refuse', choices=['refuse', 'bypass']),
            keeper=dict(type='str', default='start', choices=['start', 'external']),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        mutually_exclusive=[('program', 'src'), ('interface', 'interfaces')],
        required_one_of=[('interface', 'interfaces')],
        required_together=[('source_files', 'source_main')],
        supports_check_mode=True,
    )
    require_pyroute2(module)
    # The set manager with one interface is the single manager plus what a run needs around
    # it (the keeper, receivers, map entries).
    run_manager(module, XdpProgramSetManager)


if __name__ == '__main__':
    main()
