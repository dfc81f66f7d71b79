/* SPDX-License-Identifier: GPL-2.0 */
/* Why a forwarding program did not redirect a frame: one counter of packets and bytes per
 * reason, per CPU, in xdp_reasons_map beside xdp_stats_map. A program instance is attached to
 * one port (its pin directory is the port's), so the map is per ingress port too.
 *
 * Every reason is one rule the program follows; user space names them in the same order
 * (plugins/module_utils/_reasons.py, checked against this list by a unit test): append new
 * reasons before XDPKIT_REASON_MAX, never renumber one, so that counts read by an older
 * reader keep their meaning.
 *
 * A redirected frame is counted by its action only: it costs one comparison here, so the
 * fast path pays nothing else for the reasons.
 *
 * Defines:
 *   XDPKIT_REASON_COUNTERS=0  compile the counting out (the benchmark's baseline); default 1
 */
#ifndef XDPKIT_REASONS_H
#define XDPKIT_REASONS_H

#include "xdpkit.h"

#ifndef XDPKIT_REASON_COUNTERS
#define XDPKIT_REASON_COUNTERS 1
#endif

enum xdpkit_reason {
	XDPKIT_REDIRECTED = 0,			/* not a reason: the frame left through XDP */
	XDPKIT_REASON_NOT_IP,			/* not IPv4 or IPv6 (ARP, VLAN-tagged, ...) */
	XDPKIT_REASON_MALFORMED,		/* cut short, bad version, length or header checksum */
	XDPKIT_REASON_PORT_UNKNOWN,		/* nobody wrote the ingress port's entry (XDPKIT_PORT_ENTRY) */
	XDPKIT_REASON_NOT_VOUCHED,		/* the port's entry's lease ran out (no keeper renews it) */
	XDPKIT_REASON_NOT_OUR_MAC,		/* L2 destination not the port's own (other host, broadcast, multicast) */
	XDPKIT_REASON_MARTIAN_DESTINATION,	/* never forwarded as unicast: 0/8, 127/8, multicast, link-local... */
	XDPKIT_REASON_MARTIAN_SOURCE,		/* a source the kernel refuses before any lookup */
	XDPKIT_REASON_LOCAL_SOURCE,		/* the source is one of the namespace's own (or a broadcast) address */
	XDPKIT_REASON_REVERSE_PATH,		/* rp_filter: no route back (strict: not through the ingress port) */
	XDPKIT_REASON_TTL,			/* TTL / hop limit <= 1: the kernel sends time exceeded */
	XDPKIT_REASON_OPTIONS,			/* IPv4 options or IPv6 hop-by-hop options other than padding */
	XDPKIT_REASON_ICMP_ERROR,		/* ICMP error: over multipath the kernel hashes the quoted header */
	XDPKIT_REASON_NO_ROUTE,			/* no route (IPv6: or a destination of the router itself) */
	XDPKIT_REASON_LOCAL_DESTINATION,	/* for the router itself (an IPv4 address or broadcast of its own) */
	XDPKIT_REASON_UNREACHABLE,		/* an unreachable route: the kernel sends the ICMP error */
	XDPKIT_REASON_PROHIBIT,			/* a prohibit route: the kernel sends the ICMP error */
	XDPKIT_REASON_BLACKHOLE,		/* a blackhole route: dropped here, as the kernel would */
	XDPKIT_REASON_FORWARDING_DISABLED,	/* forwarding is off on the ingress port */
	XDPKIT_REASON_UNSUPPORTED_ROUTE,	/* a route with encapsulation (lightweight tunnel) */
	XDPKIT_REASON_NO_NEIGHBOUR,		/* the next hop's MAC is not known yet: the kernel resolves it */
	XDPKIT_REASON_FRAGMENTATION_NEEDED,	/* larger than the egress MTU */
	XDPKIT_REASON_HAIRPIN,			/* next hop back out of the ingress port: the kernel sends a redirect */
	XDPKIT_REASON_EGRESS_WITHOUT_ROUTER,	/* the egress port has no router attached (not in tx_ports) */
	XDPKIT_REASON_LOOKUP_FAILED,		/* bpf_fib_lookup() said something this program does not know */
	XDPKIT_REASON_UNKNOWN_SOURCE_MAC,	/* map program: no entry for the source MAC in mac_table */
	XDPKIT_REASON_NO_EGRESS_PORT,		/* map program: no egress for the ingress port in tx_ports */
	XDPKIT_REASON_REDIRECT_REFUSED,		/* hardcoded program: bpf_redirect() refused the egress */
	XDPKIT_REASON_MAX
};

BPF_TABLE_PINNED("percpu_array", u32, struct xdpkit_datarec, xdp_reasons_map, XDPKIT_REASON_MAX,
		 XDPKIT_PIN_DIR "/xdp_reasons_map");

/* The action a reason stands for: a blackhole is a silent drop in the kernel too (ip_error()
 * sends nothing for it); everything else is the kernel's to handle. */
static __always_inline u32 xdpkit_reason_action(u32 reason)
{
	if (reason == XDPKIT_REDIRECTED)
		return XDP_REDIRECT;
	return reason == XDPKIT_REASON_BLACKHOLE ? XDP_DROP : XDP_PASS;
}

/* Count a frame under a reason (a program that returns an action of its own counts that). */
static __always_inline void xdpkit_count_reason(struct xdp_md *ctx, u32 reason)
{
#if XDPKIT_REASON_COUNTERS
	struct xdpkit_datarec *rec = xdp_reasons_map.lookup(&reason);

	if (rec) {
		rec->rx_packets++;
		rec->rx_bytes += ctx->data_end - ctx->data;
	}
#endif
}

/* Count the frame under its action and, unless it was redirected, under its reason. */
static __always_inline int xdpkit_record_reason(struct xdp_md *ctx, u32 reason)
{
	if (reason != XDPKIT_REDIRECTED)
		xdpkit_count_reason(ctx, reason);
	return xdpkit_record(ctx, xdpkit_reason_action(reason));
}

#endif /* XDPKIT_REASONS_H */
