/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by every xdpkit program: per-action stats, the devmap declaration, packet helpers.
 *
 * Compile-time values arrive as -D defines from the xdp_program module, which validates
 * them first:
 *   XDPKIT_PIN_DIR   bpffs directory of this program instance (its stats map lives there)
 *   XDPKIT_MAPS_DIR  bpffs directory of the maps programs may share (default: PIN_DIR)
 */
#ifndef XDPKIT_H
#define XDPKIT_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#ifndef XDPKIT_PIN_DIR
#error "XDPKIT_PIN_DIR is not defined: load this program with the xdpkit.forwarding.xdp_program module"
#endif
#ifndef XDPKIT_MAPS_DIR
#define XDPKIT_MAPS_DIR XDPKIT_PIN_DIR
#endif

/* XDP_ABORTED .. XDP_REDIRECT: the classic xdp_stats layout, one slot per action. */
#define XDPKIT_ACTION_MAX (XDP_REDIRECT + 1)

struct xdpkit_datarec {
	__u64 rx_packets;
	__u64 rx_bytes;
};

/* Per-CPU so counting never contends; readers sum the CPUs. Pinned per program instance,
 * so a replaced program keeps counting where the old one stopped. */
BPF_TABLE_PINNED("percpu_array", u32, struct xdpkit_datarec, xdp_stats_map, XDPKIT_ACTION_MAX,
		 XDPKIT_PIN_DIR "/xdp_stats_map");

/* A DEVMAP_HASH keyed by ifindex, pinned in XDPKIT_MAPS_DIR. bcc 0.26 cannot create this map
 * type, so the xdp_program module creates and pins it before compiling (it finds the
 * declarations by this macro's name) and bcc reuses the pin. Keyed by ifindex, it works for
 * any ifindex value; a plain DEVMAP fails once an ifindex reaches max_entries. */
#define XDPKIT_DEVMAP_HASH(_name, _max_entries) \
	BPF_XDP_REDIRECT_MAP("devmap:" XDPKIT_MAPS_DIR "/" #_name, int, _name, _max_entries)

/* A DEVMAP_HASH of the ports the program may send out of: exactly the ports it is attached to.
 * The xdp_program module adds each port it attaches the program to (ifindex -> ifindex) and
 * takes it out again on detach, so no second call has to keep the set in step. */
#define XDPKIT_EGRESS_PORTS(_name, _max_entries) XDPKIT_DEVMAP_HASH(_name, _max_entries)

/* What the kernel knows about an ingress port and XDP cannot ask it: the port's own MAC (for
 * the PACKET_HOST test) and the IPv4 source-validation settings in force on it. The
 * xdp_program module writes them when it attaches a program (it finds the declaration by the
 * macro's name, XDPKIT_PORT_ENTRY below), and the keeper keeps them current between runs. An
 * entry nobody wrote (all zeros) is an unknown port: programs hand its frames to the kernel.
 * So is a port whose entry nobody vouched for lately: the settings may have changed since they
 * were read (xdpkit_vouched()). */
struct xdpkit_port {
	unsigned char mac[ETH_ALEN];
	__u8 rp_filter;		/* max(conf/all, conf/DEV): 0 off, 1 strict, 2 loose */
	__u8 accept_local;	/* conf/all || conf/DEV */
	__u64 vouched_until;	/* CLOCK_MONOTONIC ns: the writer read these values then, and
				 * vouches for them until this time (the keeper renews it) */
	__u64 vouched_until_jiffies;	/* the same time in jiffies, for the jiffies lease clock */
};

/* The clock leases are read against, once per packet. bpf_ktime_get_ns() costs about 26 ns
 * a call on a VM's TSC, as much as all the router's other checks together; the coarse clock
 * (kernel 5.11 and later) about 4; jiffies (bpf_jiffies64(), 5.5 and later, which the verifier
 * turns into one load) under 1. xdpkit probes the running kernel once and says which it may
 * use: XDPKIT_JIFFIES_CLOCK when the kernel has the helper and user space can tell its
 * jiffies and HZ (/proc/timer_list: writers give each lease's end in jiffies too),
 * XDPKIT_COARSE_CLOCK otherwise where it can. Both tick clocks count CLOCK_MONOTONIC a tick at a
 * time: never ahead, at most a tick behind, and a writer's conversion to jiffies may be a tick
 * late. So each lease ends early by the slack (three ticks; two ticks of HZ=100 for the coarse
 * clock, whose writers convert nothing): none is trusted past its end. */
#ifndef XDPKIT_JIFFIES_CLOCK
#define XDPKIT_JIFFIES_CLOCK 0
#endif
#ifndef XDPKIT_COARSE_CLOCK
#define XDPKIT_COARSE_CLOCK 0
#endif
#define XDPKIT_LEASE_SLACK_TICKS 3ULL
#define XDPKIT_LEASE_SLACK_NS 20000000ULL

static __always_inline __u64 xdpkit_lease_clock(void)
{
#if XDPKIT_JIFFIES_CLOCK
	return bpf_jiffies64() + XDPKIT_LEASE_SLACK_TICKS;
#elif XDPKIT_COARSE_CLOCK
	return bpf_ktime_get_coarse_ns() + XDPKIT_LEASE_SLACK_NS;
#else
	return bpf_ktime_get_ns();
#endif
}

/* The end of an entry's lease on the clock xdpkit_lease_clock() reads. */
#if XDPKIT_JIFFIES_CLOCK
#define XDPKIT_LEASE_END(entry) ((entry)->vouched_until_jiffies)
#else
#define XDPKIT_LEASE_END(entry) ((entry)->vouched_until)
#endif

/* Whether the entry is still vouched for at `now` (xdpkit_lease_clock()). Without a keeper
 * renewing it (killed, crashed, never started, one too old to write today's entries) the
 * settings may be stale: a frame whose fate depends on them is the kernel's, slower but never
 * wrong. */
static __always_inline int xdpkit_vouched(struct xdpkit_port *port, __u64 now)
{
	return now < XDPKIT_LEASE_END(port);
}

/* The entry of the one port this program instance is attached to (xdp_program attaches an
 * instance to exactly one port): an array of one, key 0, pinned in the instance's own
 * XDPKIT_PIN_DIR beside its stats. A lookup with a constant key in an array is inlined by the
 * verifier into an address computation (about 0.5 ns); the hash keyed by ifindex that earlier
 * releases shared between all instances of a maps directory cost 7-8 ns a packet. The name is
 * fixed, as local_state's, because readers that only hold the program (xdp_stats, the
 * metrics) tell the two arrays of one apart by it; the path is written "/" "name" so that
 * only a program that uses the macro declares the pin (_bpf_source finds it by this name). */
#define XDPKIT_PORT_ENTRY() \
	BPF_TABLE_PINNED("array", u32, struct xdpkit_port, port_entry, 1, XDPKIT_PIN_DIR "/" "port_entry")

/* The namespace's own IPv4 addresses, for the cheap source check Linux makes where it makes
 * no reverse lookup (fib_validate_source() with rp_filter 0: "is the source one of ours?").
 * Two maps pinned in XDPKIT_MAPS_DIR under fixed names, which the keeper fills and vouches for
 * (_local_sources.py):
 *   local_addrs  hash: source address (network order) -> struct xdpkit_local_addr; every
 *                IFA_LOCAL address of the router's namespace, and the /32 destinations of its
 *                routes of a type other than unicast (broadcast, local, multicast...), whose
 *                sources Linux refuses when it does make the full check;
 *   local_state  array of one: what the table is worth (struct xdpkit_local_state).
 * A router without a vouched local_state makes the full reverse lookup, as before. (The paths
 * are written "/" "name" so that only a program that uses the macro declares these pins:
 * _bpf_source finds them by the macro's name.) */
#define XDPKIT_LOCAL_ADDRESS 1	/* an address of the namespace (inet_lookup_ifaddr_rcu() finds it) */
#define XDPKIT_LOCAL_ROUTE 2	/* the /32 destination of a non-unicast route */

struct xdpkit_local_addr {
	__u32 kind;		/* XDPKIT_LOCAL_ADDRESS | XDPKIT_LOCAL_ROUTE */
};

/* Why the namespace needs the full check (bits of xdpkit_local_state.full_check). */
#define XDPKIT_FULL_CUSTOM_LOCAL_ROUTES 1	/* net->ipv4.fib_has_custom_local_routes */
#define XDPKIT_FULL_CUSTOM_RULES 2		/* fib4_has_custom_rules(net) */
#define XDPKIT_FULL_TCLASSID 4			/* fib_num_tclassid_users(net): routes or rules with realms */
#define XDPKIT_FULL_WIDE_ROUTES 8		/* a non-unicast route wider than /32: no table holds it */

/* A filter in front of local_addrs: one bit per hash of an address, set for every address the
 * table holds (and, while the keeper changes the table, for those about to go in). Most sources
 * are no address of the router's: their bit is clear and the hash lookup is skipped, an array
 * value already at hand against a hash lookup of about 5 ns a packet; a set bit leaves the
 * answer to the table. _local_sources.filter_bit() is the same hash. */
#define XDPKIT_LOCAL_FILTER_WORDS 64	/* 4096 bits: 12 bits of hash */

static __always_inline __u32 xdpkit_local_filter_bit(__be32 address)
{
	return ((__u32)address * 2654435761U) >> 20;
}

struct xdpkit_local_state {
	__u64 vouched_until;	/* CLOCK_MONOTONIC ns, as xdpkit_port's: the keeper read the
				 * namespace's addresses, routes and rules then and renews it */
	__u32 full_check;	/* XDPKIT_FULL_* bits; 0: the address table decides */
	__u32 addresses;	/* entries in local_addrs, for people reading the map */
	__u64 vouched_until_jiffies;	/* the same time in jiffies (xdpkit_lease_clock()) */
	__u64 filter[XDPKIT_LOCAL_FILTER_WORDS];	/* bit xdpkit_local_filter_bit(a) for every a in local_addrs */
};

/* Whether `address` may be in local_addrs (a clear bit: it is not). */
static __always_inline int xdpkit_maybe_local(struct xdpkit_local_state *local, __be32 address)
{
	__u32 bit = xdpkit_local_filter_bit(address);

	return (local->filter[bit >> 6] >> (bit & 63)) & 1;
}

#define XDPKIT_LOCAL_SOURCES(_max_entries) \
	BPF_TABLE_PINNED("hash", __be32, struct xdpkit_local_addr, local_addrs, _max_entries, \
			 XDPKIT_MAPS_DIR "/" "local_addrs"); \
	BPF_TABLE_PINNED("array", u32, struct xdpkit_local_state, local_state, 1, XDPKIT_MAPS_DIR "/" "local_state")

/* Every return goes through here, so the counters see exactly the actions taken. */
static __always_inline int xdpkit_record(struct xdp_md *ctx, u32 action)
{
	struct xdpkit_datarec *rec;

	if (action >= XDPKIT_ACTION_MAX)
		return XDP_ABORTED;
	rec = xdp_stats_map.lookup(&action);
	if (!rec)
		return XDP_ABORTED;
	rec->rx_packets++;
	rec->rx_bytes += ctx->data_end - ctx->data;
	return action;
}

/* MACs travel as 48-bit integers in defines (0x020000000001): no C text from the user. */
static __always_inline void xdpkit_mac_from_u64(unsigned char *mac, __u64 value)
{
	mac[0] = value >> 40;
	mac[1] = value >> 32;
	mac[2] = value >> 24;
	mac[3] = value >> 16;
	mac[4] = value >> 8;
	mac[5] = value;
}

/* One's complement sum of a 20-byte IPv4 header, folded to 16 bits: 0xFFFF when its
 * checksum is right; its complement is the checksum to write (with check set to 0). Summed as
 * five 32-bit words and folded: the same sum (RFC 1071, 2(B): it does not depend on the word
 * size) in half the loads, on every packet the router forwards. */
static __always_inline __u16 xdpkit_ipv4_header_sum(struct iphdr *iph)
{
	__u32 *word = (__u32 *)iph;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*iph) / 4); i++)
		sum += word[i];
	sum = (sum & 0xFFFFFFFF) + (sum >> 32);
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return sum;
}

/* Compared as three 16-bit words: both MACs must be 2-byte aligned, as an Ethernet header's
 * are (the packet starts 2 bytes before a 4-byte boundary, NET_IP_ALIGN, so its MACs are not
 * 4-byte aligned) and a map value's first bytes are. */
static __always_inline int xdpkit_mac_equal(const unsigned char *a, const unsigned char *b)
{
	const __u16 *x = (const __u16 *)a;
	const __u16 *y = (const __u16 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

static __always_inline void xdpkit_copy_mac(unsigned char *dst, const unsigned char *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

#endif /* XDPKIT_H */
