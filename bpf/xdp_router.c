/* SPDX-License-Identifier: GPL-2.0 */
/* An IPv4 and IPv6 router on the kernel's own FIB and neighbour tables, meant to be a
 * transparent accelerator of Linux forwarding: it forwards a frame itself only when Linux
 * would forward that very frame unchanged, and hands everything else to the kernel with
 * XDP_PASS, where the normal stack does what it always does (drop, resolve a neighbour, send
 * an ICMP error or redirect, fragment, process options). The wire shows the same bytes with or
 * without it.
 *
 * bpf_fib_lookup() finds the egress port and next-hop MACs; the program rewrites both MACs,
 * decrements TTL (with an incremental checksum update) or hop limit, and redirects through
 * tx_ports, a DEVMAP_HASH of the egress ports it may use (key and value: the ifindex): the
 * ports it is attached to, which the xdp_program module keeps there (XDPKIT_EGRESS_PORTS).
 *
 * The kernel's input rules it follows (ip_rcv_core, ip_route_input_slow, fib_validate_source,
 * ip_forward, ipv6_rcv, ip6_forward), each a reason to hand the frame over:
 *   - the destination MAC is not the ingress port's own (PACKET_OTHERHOST, broadcast,
 *     multicast): Linux forwards only PACKET_HOST frames;
 *   - IPv4 destinations never routed as unicast: 0/8, 127/8, multicast, 255.255.255.255;
 *   - martian IPv4 sources (0/8, 127/8, multicast, 255.255.255.255) and refused IPv6 ones;
 *   - IPv4 source validation (fib_validate_source): where Linux makes its fast check
 *     (rp_filter 0, no custom local routes, rules or realms), "is the source one of the
 *     namespace's addresses", from local_addrs (kept by the keeper); elsewhere, and whenever
 *     that table's lease ran out, a reverse lookup of the source from the egress port, as
 *     the kernel's full check. A local or broadcast source (unless accept_local) and, with
 *     rp_filter, a source without a unicast route back (strict: back through the ingress
 *     port) are the kernel's to drop;
 *   - routes of type unreachable and prohibit (and no route): the kernel sends the ICMP error;
 *   - a next hop out of the ingress port: the kernel forwards and sends an ICMP redirect;
 *   - ICMP and ICMPv6 errors, redirects included: over a multipath route the kernel hashes the header they quote
 *     (ip_multipath_l3_keys(), ip6_multipath_l3_keys()), where bpf_fib_lookup() hashes the
 *     outer one, so the kernel picks their path.
 * Every frame handed over (or dropped) is counted under the rule it met (xdpkit_reasons.h).
 * Both lookups carry what the kernel's flow dissector gives policy rules (ipproto, sport,
 * dport) and the L4 multipath hash: the protocol and the first four bytes of the transport
 * header (AH: its SPI), none for fragments; the reverse lookup has them swapped, as in
 * fib_validate_source().
 * Blackhole routes are a silent drop either way; the router drops those itself.
 *
 * Intentional differences, all on the side of handing over more than needed (same wire):
 *   - a multipath route back to the source is checked against the one path the lookup picked;
 *   - with accept_local, a local source is handed over rather than validated here;
 *   - 0/8 IPv4 destinations and ::, IPv4-mapped IPv6 addresses: kernels differ (6.x forwards
 *     them along a default route, older ones drop them), so the kernel decides;
 *   - padding-only IPv4 options in a packet of under IPV4_HEADER_MAX bytes, and hop-by-hop
 *     padding other than six Pad1 or one four-byte PadN, go to the kernel.
 * And one that is not: the ingress port's entry (rp_filter, accept_local, MAC; each instance
 * of the program is attached to one port and holds that port's, XDPKIT_PORT_ENTRY), which
 * xdp_program writes when it attaches and the keeper keeps current (within a second of a
 * change); an entry the keeper has not vouched for within its lease sends every frame to the
 * kernel. The
 * same holds for local_addrs and local_state (addresses, custom local routes and rules):
 * without a lease the router makes the full reverse lookup.
 * Not modelled, so do not attach it where they matter: multicast routing, proxy_ndp, IPsec
 * policies, netfilter and traffic control (the xdp_program module refuses to attach over
 * either). Multipath routes pick the path the kernel picks with fib_multipath_hash_policy 0
 * and, without a receive hash from the NIC (the kernel then uses the NIC's), with 1; with 2 or
 * 3 the kernel may hash inner headers of tunnelled packets that the router does not see. IPv6
 * packets with extension headers are looked up with the outer next header, as the kernel does
 * unless a policy rule matches ipproto or ports (it then reads the header chain).
 *
 * Defines:
 *   FIB_LOOKUP_DIRECT=1  skip policy routing rules (BPF_FIB_LOOKUP_DIRECT); default: full
 *   XDPKIT_FIB_SKIP_NEIGH  set by xdpkit from a probe of the running kernel (see below)
 *   XDPKIT_JIFFIES_CLOCK, XDPKIT_COARSE_CLOCK  the same: the lease clock (xdpkit.h)
 */
#include "xdpkit_reasons.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define IPV6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)
#define IPV4_MORE_FRAGMENTS bpf_htons(0x2000)
#define IPV4_FRAGMENT_OFFSET bpf_htons(0x1FFF)
#ifndef IPPROTO_DCCP
#define IPPROTO_DCCP 33
#endif
#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

#if defined(FIB_LOOKUP_DIRECT) && FIB_LOOKUP_DIRECT
#define XDPKIT_FIB_FLAGS BPF_FIB_LOOKUP_DIRECT
#else
#define XDPKIT_FIB_FLAGS 0
#endif

/* The reverse lookup of the source check needs the route, not the neighbour: kernel 6.5's
 * BPF_FIB_LOOKUP_SKIP_NEIGH says so, and older kernels refuse the flag (-EINVAL). xdpkit
 * probes the running kernel once when it loads the program and says which it is in
 * XDPKIT_FIB_SKIP_NEIGH (1: the kernel takes the flag). Without the flag the lookup also
 * looks at the neighbour: NO_NEIGH is as good a route back as SUCCESS, so the answer is the
 * same, only dearer. */
#ifndef XDPKIT_FIB_SKIP_NEIGH
#error "XDPKIT_FIB_SKIP_NEIGH is not defined: load this program with the xdpkit.forwarding.xdp_program module"
#endif
#if XDPKIT_FIB_SKIP_NEIGH
#ifndef BPF_FIB_LOOKUP_SKIP_NEIGH
#define BPF_FIB_LOOKUP_SKIP_NEIGH (1U << 2)	/* missing from UAPI headers before 6.5 */
#endif
#define XDPKIT_REVERSE_FIB_FLAGS (XDPKIT_FIB_FLAGS | BPF_FIB_LOOKUP_SKIP_NEIGH)
#else
#define XDPKIT_REVERSE_FIB_FLAGS XDPKIT_FIB_FLAGS
#endif

XDPKIT_EGRESS_PORTS(tx_ports, 256);
XDPKIT_PORT_ENTRY();
/* Sized for a router namespace's addresses and broadcast routes; the keeper says when more do not fit. */
XDPKIT_LOCAL_SOURCES(4096);

/* RFC 1624 incremental update for a TTL decrement, as the kernel's ip_decrease_ttl(). */
static __always_inline void ipv4_decrease_ttl(struct iphdr *iph)
{
	u32 check = (u32)iph->check;

	check += (u32)bpf_htons(0x0100);
	iph->check = (__sum16)(check + (check >= 0xFFFF));
	iph->ttl--;
}

/* This-network (0/8), loopback (127/8), multicast (224/4) and limited broadcast: the IPv4
 * addresses ip_route_input_slow() never routes as unicast, whether as source or as
 * destination. bpf_fib_lookup() looks at none of this. */
static __always_inline int ipv4_never_unicast(__be32 address)
{
	u32 addr = bpf_ntohl(address);

	return (addr >> 24) == 0 || (addr >> 24) == 127 || (addr >> 28) == 0xE || addr == 0xFFFFFFFF;
}

/* Multicast (ff00::/8), link-local (fe80::/10), unspecified (::), loopback (::1) and
 * IPv4-mapped (::ffff:0:0/96, RFC 4291 2.5.5.2): the IPv6 addresses the kernel never
 * forwards between ports, whether as source or as destination. */
static __always_inline int ipv6_never_forwarded(struct in6_addr *address)
{
	__u32 w0 = bpf_ntohl(address->in6_u.u6_addr32[0]);
	__u32 w1 = address->in6_u.u6_addr32[1];
	__u32 w2 = bpf_ntohl(address->in6_u.u6_addr32[2]);
	__u32 w3 = bpf_ntohl(address->in6_u.u6_addr32[3]);

	if ((w0 >> 24) == 0xFF || (w0 & 0xFFC00000) == 0xFE800000)
		return 1;
	return w0 == 0 && w1 == 0 && (w2 == 0xFFFF || (w2 == 0 && w3 <= 1));
}

/* The most an IPv4 header can be; frames with options shorter than this many bytes of IP go to
 * the kernel, so that every option byte is read at a constant offset the verifier has seen
 * checked. */
#define IPV4_HEADER_MAX 60

/* Options that Linux forwards untouched: NOPs, then end-of-list to the end of the header
 * (ip_options_compile() rewrites anything after an end-of-list, and ip_forward_options()
 * record route, timestamps and source routes). In memory order the bytes run 1..1 0..0, so
 * each 32-bit word is one of five values. The caller has checked IPV4_HEADER_MAX bytes. */
static __always_inline int ipv4_options_are_padding(struct iphdr *iph)
{
	__u32 *word = (__u32 *)(iph + 1);
	int words = iph->ihl - 5;
	int ended = 0;
	int i;

#pragma unroll
	for (i = 0; i < 10; i++) {
		__u32 w = bpf_ntohl(word[i]);

		if (i < words) {
			if (ended && w != 0)
				return 0;
			if (w != 0x01010101 && w != 0x01010100 && w != 0x01010000 && w != 0x01000000 && w != 0)
				return 0;
			ended = w != 0x01010101;
		}
	}
	return 1;
}

/* The checksum test for a header with options (xdpkit_ipv4_header_sum() covers 20 bytes). */
static __always_inline __u16 ipv4_header_sum_with_options(struct iphdr *iph)
{
	__u16 *word = (__u16 *)iph;
	int words = iph->ihl * 2;
	u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < IPV4_HEADER_MAX / 2; i++) {
		if (i < words)
			sum += word[i];
	}
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return sum;
}

/* The next header behind an 8-byte hop-by-hop header holding nothing but padding (six Pad1,
 * or one PadN of four zeros), which ip6_parse_tlv() accepts and forwarding leaves alone;
 * -1 for anything else (router alert, jumbograms, unknown options: the kernel's). */
static __always_inline int ipv6_padding_hop_by_hop(struct ipv6hdr *ip6h, void *data_end)
{
	__u8 *hbh = (void *)(ip6h + 1);
	__u16 pad_n;

	if ((void *)(hbh + 8) > data_end || hbh[1] != 0)
		return -1;
	if (*(__u32 *)(hbh + 4) != 0)
		return -1;
	pad_n = *(__u16 *)(hbh + 2);
	if (pad_n != 0 && pad_n != bpf_htons((IPV6_TLV_PADN << 8) | 4))
		return -1;
	return hbh[0];
}

/* The kernel trims a frame to its IP length before forwarding (Ethernet padding, trailing
 * bytes); do the same, as the last step, since it invalidates packet pointers. */
static __always_inline void trim_to_ip_length(struct xdp_md *ctx, void *l3, __u32 ip_length, void *data_end)
{
	long excess = data_end - (l3 + ip_length);

	if (excess > 0)
		bpf_xdp_adjust_tail(ctx, (int)-excess);
}

/* The ports the kernel's flow dissector reads for policy rules and the L4 multipath hash
 * (proto_ports_offset()): the first four bytes of TCP, UDP, UDP-Lite, DCCP, SCTP and ESP (the
 * SPI), the second four of AH (its SPI); nothing for other protocols or a cut-off header. The
 * caller leaves fragments out, as the dissector does. */
static __always_inline void read_l4_ports(struct bpf_fib_lookup *fib, int protocol, void *l4, void *data_end)
{
	__be16 *ports;

	switch (protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_DCCP:
	case IPPROTO_SCTP:
	case IPPROTO_ESP:
		ports = l4;
		break;
	case IPPROTO_AH:
		ports = l4 + 4;
		break;
	default:
		return;
	}
	if ((void *)(ports + 2) > data_end)
		return;
	fib->sport = ports[0];
	fib->dport = ports[1];
}

/* ICMP errors as the kernel's multipath hash tells them (icmp_is_err(), icmpv6_is_err()): it
 * hashes these by the header they quote, everything else by its own. */
static __always_inline int icmp_error(__u8 *icmp, void *data_end, int family)
{
	__u8 type;

	if ((void *)(icmp + 1) > data_end)
		return 0;
	type = icmp[0];
	if (family == AF_INET)
		return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
		       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG || type == ICMPV6_TIME_EXCEED ||
	       type == ICMPV6_PARAMPROB;
}

/* Why a lookup result other than success is not forwarded here. A blackhole is the one
 * reason that drops (xdpkit_reason_action()). UNREACHABLE, PROHIBIT and NOT_FWDED without a
 * route: the kernel answers with the ICMP error the sender must see. NO_NEIGH: the kernel
 * resolves the neighbour, later frames go fast. FRAG_NEEDED: the kernel fragments or sends
 * "fragmentation needed". FWD_DISABLED, NOT_FWDED (local, broadcast, multicast), UNSUPP_LWT:
 * its job. */
static __always_inline int fib_failure_reason(int rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_BLACKHOLE:
		return XDPKIT_REASON_BLACKHOLE;
	case BPF_FIB_LKUP_RET_UNREACHABLE:
		return XDPKIT_REASON_UNREACHABLE;
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return XDPKIT_REASON_PROHIBIT;
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		return XDPKIT_REASON_NO_ROUTE;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return XDPKIT_REASON_FORWARDING_DISABLED;
	case BPF_FIB_LKUP_RET_UNSUPP_LWT:
		return XDPKIT_REASON_UNSUPPORTED_ROUTE;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return XDPKIT_REASON_NO_NEIGHBOUR;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return XDPKIT_REASON_FRAGMENTATION_NEEDED;
	default:
		return XDPKIT_REASON_LOOKUP_FAILED;
	}
}

/* fib_validate_source() (net/ipv4/fib_frontend.c, 6.x) for a frame the kernel would route out
 * of `egress`: may XDP forward it? 0: yes; otherwise the reason it is the kernel's call (never
 * "drop"). Linux's function
 * has a fast path and a full check:
 *
 *	int r = secpath_exists(skb) ? 0 : IN_DEV_RPFILTER(idev);
 *	if (!r && !fib_num_tclassid_users(net) &&
 *	    (dev->ifindex != oif || !IN_DEV_TX_REDIRECTS(idev))) {
 *		if (IN_DEV_ACCEPT_LOCAL(idev))
 *			goto ok;
 *		if (net->ipv4.fib_has_custom_local_routes || fib4_has_custom_rules(net))
 *			goto full_check;
 *		if (inet_lookup_ifaddr_rcu(net, src))
 *			return -EINVAL;
 *	ok:	...return 0;
 *	}
 *	full_check:
 *	return __fib_validate_source(...);
 *
 * An XDP frame has no secpath, and oif == the ingress port never gets here (the caller hands
 * a hairpin to the kernel), so the fast path's test is rp_filter 0 and no realms. What the
 * fast path needs from the namespace (its addresses, whether it has custom local routes,
 * custom rules or realms) is in local_addrs and local_state, which the keeper keeps and
 * vouches for; when nobody vouches for them lately, the full check decides. */
static __always_inline int ipv4_source_refused(struct xdp_md *ctx, struct iphdr *iph, struct xdpkit_port *port,
					       struct bpf_fib_lookup *fwd, __u32 egress, __u64 now)
{
	struct bpf_fib_lookup rev = {};
	struct xdpkit_local_state *local;
	__be32 saddr = iph->saddr;
	u32 zero = 0;
	int rc;

	/* `if (!r && !fib_num_tclassid_users(net) && (dev->ifindex != oif || ...))`: the fast path. */
	if (!port->rp_filter) {
		local = local_state.lookup(&zero);
		if (local && now < XDPKIT_LEASE_END(local)) {
			if (!(local->full_check & XDPKIT_FULL_TCLASSID)) {
				/* `if (IN_DEV_ACCEPT_LOCAL(idev)) goto ok;`: Linux checks nothing. */
				if (port->accept_local)
					return 0;
				/* `if (net->ipv4.fib_has_custom_local_routes ||
				 * fib4_has_custom_rules(net)) goto full_check;` (and a non-unicast
				 * route that no /32 entry can stand for: the full check too). */
				if (!local->full_check) {
					/* `if (inet_lookup_ifaddr_rcu(net, src)) return -EINVAL;`: a
					 * source that is one of ours is martian. The table also holds
					 * the /32 non-unicast routes (subnet broadcasts...), which the
					 * fast path accepts and the full check refuses: those go to the
					 * kernel too, so a flag set before the keeper watched costs a
					 * hand-over, never a frame Linux would drop. The filter
					 * answers "not ours" for most sources without the lookup. */
					if (!xdpkit_maybe_local(local, saddr))
						return 0;
					return local_addrs.lookup(&saddr) ? XDPKIT_REASON_LOCAL_SOURCE : 0;
				}
			}
		} else if (port->accept_local) {
			/* `if (IN_DEV_ACCEPT_LOCAL(idev)) goto ok;` without word on realms: as before
			 * the local table, the usual case (realms are rare). */
			return 0;
		}
	}

	/* `full_check: return __fib_validate_source(...)`: a reverse lookup of the source from the
	 * egress port (source and destination swapped), as the kernel's. Also the path when the
	 * local table's lease ran out: slower, never wrong. With realms, rp_filter 0 and
	 * accept_local 1, a local source's NOT_FWDED goes to the kernel (it accepts it). */
	rev.family = AF_INET;
	rev.tos = iph->tos;
	rev.l4_protocol = iph->protocol;
	rev.sport = fwd->dport;
	rev.dport = fwd->sport;
	rev.ipv4_src = iph->daddr;
	rev.ipv4_dst = iph->saddr;
	rev.ifindex = egress;
	rc = bpf_fib_lookup(ctx, &rev, sizeof(rev), XDPKIT_REVERSE_FIB_FLAGS);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		/* `if (res.type != RTN_UNICAST ...) goto e_inval;` passed: a unicast route back.
		 * Strict mode (`if (rpf == 1) goto e_rpf;` unless the route uses the ingress
		 * port) wants it back through the ingress port; loose and off take any. */
		if (port->rp_filter == 1 && rev.ifindex != ctx->ingress_ifindex)
			return XDPKIT_REASON_REVERSE_PATH;
		return 0;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		/* `if (fib_lookup(...)) goto last_resort;`: `if (rpf) goto e_rpf;` else fine. */
		return port->rp_filter ? XDPKIT_REASON_REVERSE_PATH : 0;
	default:
		/* NOT_FWDED: a local or broadcast source (`res.type != RTN_UNICAST`, martian
		 * unless accept_local) or no route back at all; FWD_DISABLED and the rest: let
		 * the kernel judge. Only the count asks which (the table may be stale here: it
		 * names the reason, it decides nothing). */
		return local_addrs.lookup(&saddr) ? XDPKIT_REASON_LOCAL_SOURCE : XDPKIT_REASON_REVERSE_PATH;
	}
}

/* Look up the next hop: XDPKIT_REDIRECTED when the frame may be redirected to fib->ifindex
 * with fib's MACs, else why not. */
static __always_inline int look_up_next_hop(struct xdp_md *ctx, struct bpf_fib_lookup *fib)
{
	int rc;

	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), XDPKIT_FIB_FLAGS);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failure_reason(rc);
	/* Out of the port it came in on: the kernel forwards it and tells the sender about the
	 * better next hop with an ICMP redirect. */
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDPKIT_REASON_HAIRPIN;
	return XDPKIT_REDIRECTED;
}

/* Redirect to the next hop look_up_next_hop() found, when this program may send there, and
 * write both MACs. The caller adjusts TTL / hop limit only when the result is
 * XDPKIT_REDIRECTED. */
static __always_inline int redirect_to_next_hop(struct ethhdr *eth, struct bpf_fib_lookup *fib)
{
	/* Redirect first: a port that is not in tx_ports falls back to the kernel untouched.
	 * The frame is only sent after the program returns, so rewriting after is safe. */
	if (tx_ports.redirect_map(fib->ifindex, XDP_PASS) != XDP_REDIRECT)
		return XDPKIT_REASON_EGRESS_WITHOUT_ROUTER;
	xdpkit_copy_mac(eth->h_dest, fib->dmac);
	xdpkit_copy_mac(eth->h_source, fib->smac);
	return XDPKIT_REDIRECTED;
}

/* ip_forward() and ip6_forward() test the TTL / hop limit after input routing (the route
 * lookup and, for IPv4, the source check: a TTL 1 packet for the router itself is delivered,
 * one without a route gets "unreachable") and before the neighbour, the MTU and the redirect to
 * the sender. So the router tests it where the kernel does, and a lookup that ends in one of
 * those with a TTL <= 1 frame is the TTL's; every one hands the frame to the kernel alike, the
 * count names the rule the kernel applies. */
static __always_inline int ttl_expired_first(int reason, __u8 ttl)
{
	if (ttl > 1)
		return reason;
	switch (reason) {
	case XDPKIT_REASON_NO_NEIGHBOUR:
	case XDPKIT_REASON_FRAGMENTATION_NEEDED:
	case XDPKIT_REASON_HAIRPIN:
		return XDPKIT_REASON_TTL;
	default:
		return reason;
	}
}

static __always_inline int route_ipv4(struct xdp_md *ctx, struct ethhdr *eth, void *data_end,
				      struct xdpkit_port *port, __u64 now)
{
	struct iphdr *iph = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	int reason;

	if ((void *)(iph + 1) > data_end)
		return XDPKIT_REASON_MALFORMED;
	/* A short or lying header is the kernel's to drop. */
	if (iph->version != 4 || iph->ihl < 5)
		return XDPKIT_REASON_MALFORMED;
	if (bpf_ntohs(iph->tot_len) < iph->ihl * 4 ||
	    (void *)iph + bpf_ntohs(iph->tot_len) > data_end)
		return XDPKIT_REASON_MALFORMED;
	/* The kernel drops IPv4 headers with a bad checksum; forwarding them would hide that.
	 * Options other than padding need the kernel's option processing. */
	if (iph->ihl == 5) {
		if (xdpkit_ipv4_header_sum(iph) != 0xFFFF)
			return XDPKIT_REASON_MALFORMED;
	} else {
		if ((void *)iph + IPV4_HEADER_MAX > data_end || !ipv4_options_are_padding(iph))
			return XDPKIT_REASON_OPTIONS;
		if (ipv4_header_sum_with_options(iph) != 0xFFFF)
			return XDPKIT_REASON_MALFORMED;
	}
	/* Such a source is martian to ip_route_input_slow() before any lookup (a loopback one
	 * unless route_localnet, which is the kernel's call). */
	if (ipv4_never_unicast(iph->saddr))
		return XDPKIT_REASON_MARTIAN_SOURCE;
	/* Such a destination is never forwarded as unicast, even when a default route covers it:
	 * this-network and loopback are martian, 255.255.255.255 is local broadcast, and
	 * multicast is forwarded only by a multicast router. */
	if (ipv4_never_unicast(iph->daddr))
		return XDPKIT_REASON_MARTIAN_DESTINATION;
	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	/* A first fragment still shows the ICMP type; only a whole packet has ports. */
	if (!(iph->frag_off & IPV4_FRAGMENT_OFFSET)) {
		void *l4 = (void *)iph + iph->ihl * 4;

		if (iph->protocol == IPPROTO_ICMP && icmp_error(l4, data_end, AF_INET))
			return XDPKIT_REASON_ICMP_ERROR;
		if (!(iph->frag_off & IPV4_MORE_FRAGMENTS))
			read_l4_ports(&fib, iph->protocol, l4, data_end);
	}
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = ctx->ingress_ifindex;

	reason = look_up_next_hop(ctx, &fib);
	if (reason != XDPKIT_REDIRECTED) {
		/* NOT_FWDED is "no route" and "local or broadcast" alike; the local table tells
		 * the frames for the router itself apart (for the count only). */
		if (reason == XDPKIT_REASON_NO_ROUTE && local_addrs.lookup(&fib.ipv4_dst))
			return XDPKIT_REASON_LOCAL_DESTINATION;
		return ttl_expired_first(reason, iph->ttl);
	}
	/* The kernel's source check depends on the egress port: it runs between the lookup and
	 * the redirect. */
	reason = ipv4_source_refused(ctx, iph, port, &fib, fib.ifindex, now);
	if (reason)
		return reason;
	/* TTL <= 1 needs an ICMP time exceeded from the kernel. */
	if (iph->ttl <= 1)
		return XDPKIT_REASON_TTL;
	reason = redirect_to_next_hop(eth, &fib);
	if (reason != XDPKIT_REDIRECTED)
		return reason;
	ipv4_decrease_ttl(iph);
	trim_to_ip_length(ctx, iph, bpf_ntohs(iph->tot_len), data_end);
	return XDPKIT_REDIRECTED;
}

static __always_inline int route_ipv6(struct xdp_md *ctx, struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6h = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	void *l4 = ip6h + 1;
	int l4_protocol;
	int reason;

	if ((void *)(ip6h + 1) > data_end || ip6h->version != 6)
		return XDPKIT_REASON_MALFORMED;
	if ((void *)(ip6h + 1) + bpf_ntohs(ip6h->payload_len) > data_end)
		return XDPKIT_REASON_MALFORMED;
	/* Hop-by-hop options must be read by every router: the kernel's job, unless they are
	 * only padding. */
	l4_protocol = ip6h->nexthdr;
	if (l4_protocol == IPPROTO_HOPOPTS) {
		l4_protocol = ipv6_padding_hop_by_hop(ip6h, data_end);
		if (l4_protocol < 0)
			return XDPKIT_REASON_OPTIONS;
		l4 += 8;
	}
	/* Sources ipv6_rcv() and ip6_forward() refuse (unspecified, loopback, multicast,
	 * IPv4-mapped) and link-local ones, which are never forwarded (the kernel answers them
	 * with ICMP). IPv6 has no rp_filter in the stack. */
	if (ipv6_never_forwarded(&ip6h->saddr))
		return XDPKIT_REASON_MARTIAN_SOURCE;
	/* Multicast goes to the multicast input path (forwarded only by a multicast router);
	 * link-local, loopback and IPv4-mapped destinations are never forwarded. */
	if (ipv6_never_forwarded(&ip6h->daddr))
		return XDPKIT_REASON_MARTIAN_DESTINATION;
	if (ip6h->nexthdr == IPPROTO_ICMPV6 && icmp_error(l4, data_end, AF_INET6))
		return XDPKIT_REASON_ICMP_ERROR;

	fib.family = AF_INET6;
	fib.flowinfo = *(__be32 *)ip6h & IPV6_FLOWINFO_MASK;
	/* The outer next header, as ip6_route_input() looks up and hashes it; the ports behind a
	 * padding hop-by-hop header, as the dissector finds them. */
	fib.l4_protocol = ip6h->nexthdr;
	read_l4_ports(&fib, l4_protocol, l4, data_end);
	fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	__builtin_memcpy(fib.ipv6_src, ip6h->saddr.in6_u.u6_addr32, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, ip6h->daddr.in6_u.u6_addr32, sizeof(fib.ipv6_dst));
	fib.ifindex = ctx->ingress_ifindex;

	reason = look_up_next_hop(ctx, &fib);
	if (reason != XDPKIT_REDIRECTED)
		return ttl_expired_first(reason, ip6h->hop_limit);
	/* Hop limit <= 1: the kernel sends time exceeded. */
	if (ip6h->hop_limit <= 1)
		return XDPKIT_REASON_TTL;
	reason = redirect_to_next_hop(eth, &fib);
	if (reason != XDPKIT_REDIRECTED)
		return reason;
	ip6h->hop_limit--;
	trim_to_ip_length(ctx, ip6h, sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len), data_end);
	return XDPKIT_REDIRECTED;
}

int xdp_router(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct xdpkit_port *port;
	u32 zero = 0;
	/* Read once: both leases (the port's, the local table's) are judged at this time. */
	__u64 now = xdpkit_lease_clock();

	if ((void *)(eth + 1) > data_end)
		return xdpkit_record_reason(ctx, XDPKIT_REASON_MALFORMED);
	/* Without the port's facts the router cannot tell what Linux would refuse. Key 0 of an
	 * array is always there; the verifier wants the test all the same. */
	port = port_entry.lookup(&zero);
	if (!port)
		return xdpkit_record_reason(ctx, XDPKIT_REASON_PORT_UNKNOWN);
	/* A lease of 0 is an entry nobody wrote (or the keeper cleared: its program was attached
	 * nowhere); told apart only here, off the forwarding path. */
	if (!xdpkit_vouched(port, now))
		return xdpkit_record_reason(ctx, port->vouched_until ? XDPKIT_REASON_NOT_VOUCHED
								   : XDPKIT_REASON_PORT_UNKNOWN);
	/* Linux routes only frames addressed to the port itself (PACKET_HOST); veth and
	 * promiscuous NICs hand XDP the others too. */
	if (!xdpkit_mac_equal(eth->h_dest, port->mac))
		return xdpkit_record_reason(ctx, XDPKIT_REASON_NOT_OUR_MAC);

	/* Each family keeps its own path: one header pointer shared by both, tested after
	 * the lookup, is a maybe-NULL pointer to the verifier. VLAN-tagged frames, ARP and
	 * everything else are not IP here and go to the kernel untouched. */
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return xdpkit_record_reason(ctx, route_ipv4(ctx, eth, data_end, port, now));
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return xdpkit_record_reason(ctx, route_ipv6(ctx, eth, data_end));
	return xdpkit_record_reason(ctx, XDPKIT_REASON_NOT_IP);
}
