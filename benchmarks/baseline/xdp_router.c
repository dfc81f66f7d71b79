/* SPDX-License-Identifier: GPL-2.0 */
/* An IPv4 and IPv6 router on the kernel's own FIB and neighbour tables.
 *
 * bpf_fib_lookup() finds the egress port and next-hop MACs; the program rewrites both MACs,
 * decrements TTL (with an incremental checksum update) or hop limit, and redirects through
 * tx_ports, a DEVMAP_HASH of the egress ports it may use (key and value: the ifindex).
 * Everything the fast path should not decide goes to the kernel with XDP_PASS, where the
 * normal stack does the right thing: resolve a neighbour, send an ICMP error, fragment,
 * process options.
 *
 * Defines:
 *   FIB_LOOKUP_DIRECT=1  skip policy routing rules (BPF_FIB_LOOKUP_DIRECT); default: full
 */
#include "xdpkit.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define IPV6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)

#if defined(FIB_LOOKUP_DIRECT) && FIB_LOOKUP_DIRECT
#define XDPKIT_FIB_FLAGS BPF_FIB_LOOKUP_DIRECT
#else
#define XDPKIT_FIB_FLAGS 0
#endif

XDPKIT_DEVMAP_HASH(tx_ports, 256);

/* RFC 1624 incremental update for a TTL decrement, as the kernel's ip_decrease_ttl(). */
static __always_inline void ipv4_decrease_ttl(struct iphdr *iph)
{
	u32 check = (u32)iph->check;

	check += (u32)bpf_htons(0x0100);
	iph->check = (__sum16)(check + (check >= 0xFFFF));
	iph->ttl--;
}

/* Sources the kernel calls martian and drops (ip_route_input_slow): this-network, loopback,
 * multicast and limited broadcast. The FIB lookup only looks at the destination, so they are
 * handed to the kernel rather than forwarded. */
static __always_inline int ipv4_martian_source(__be32 saddr)
{
	u32 addr = bpf_ntohl(saddr);

	return (addr >> 24) == 0 || (addr >> 24) == 127 || (addr >> 28) == 0xE || addr == 0xFFFFFFFF;
}

/* Addresses ipv6_rcv() and ip6_forward() refuse: unspecified, loopback, multicast (as source),
 * IPv4-mapped (RFC 4291 2.5.5.2) and link-local (never forwarded). */
static __always_inline int ipv6_refused_source(struct in6_addr *addr)
{
	__u32 w0 = bpf_ntohl(addr->in6_u.u6_addr32[0]);
	__u32 w1 = addr->in6_u.u6_addr32[1];
	__u32 w2 = bpf_ntohl(addr->in6_u.u6_addr32[2]);
	__u32 w3 = bpf_ntohl(addr->in6_u.u6_addr32[3]);

	if ((w0 >> 24) == 0xFF || (w0 & 0xFFC00000) == 0xFE800000)
		return 1;
	if (w0 == 0 && w1 == 0 && (w2 == 0 || w2 == 0xFFFF))
		return w2 == 0xFFFF || w3 <= 1;  /* v4-mapped; :: and ::1 */
	return 0;
}

static __always_inline int ipv6_refused_destination(struct in6_addr *addr)
{
	__u32 w0 = bpf_ntohl(addr->in6_u.u6_addr32[0]);
	__u32 w1 = addr->in6_u.u6_addr32[1];
	__u32 w2 = bpf_ntohl(addr->in6_u.u6_addr32[2]);
	__u32 w3 = bpf_ntohl(addr->in6_u.u6_addr32[3]);

	if ((w0 & 0xFFC00000) == 0xFE800000)
		return 1;
	return w0 == 0 && w1 == 0 && (w2 == 0xFFFF || (w2 == 0 && w3 <= 1));
}

/* The kernel trims a frame to its IP length before forwarding (Ethernet padding, trailing
 * bytes); do the same, as the last step, since it invalidates packet pointers. */
static __always_inline void trim_to_ip_length(struct xdp_md *ctx, void *l3, __u32 ip_length, void *data_end)
{
	long excess = data_end - (l3 + ip_length);

	if (excess > 0)
		bpf_xdp_adjust_tail(ctx, (int)-excess);
}

/* What to do with a lookup result other than success. */
static __always_inline int fib_failure_action(int rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		/* The route says drop. The kernel would also send ICMP for unreachable and
		 * prohibit; dropping here is the fast path's documented choice. */
		return XDP_DROP;
	default:
		/* NO_NEIGH: the kernel resolves the neighbour, later frames go fast.
		 * FRAG_NEEDED: the kernel fragments or sends ICMP "fragmentation needed".
		 * FWD_DISABLED, NOT_FWDED (local, broadcast, multicast), UNSUPP_LWT: its job. */
		return XDP_PASS;
	}
}

/* Look up the next hop and, when this program may send there, redirect and write both MACs.
 * The caller adjusts TTL / hop limit only when the result is XDP_REDIRECT. */
static __always_inline int redirect_to_next_hop(struct xdp_md *ctx, struct ethhdr *eth,
						 struct bpf_fib_lookup *fib)
{
	int action;
	int rc;

	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), XDPKIT_FIB_FLAGS);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failure_action(rc);

	/* Redirect first: a port that is not in tx_ports falls back to the kernel untouched.
	 * The frame is only sent after the program returns, so rewriting after is safe. */
	action = tx_ports.redirect_map(fib->ifindex, XDP_PASS);
	if (action == XDP_REDIRECT) {
		xdpkit_copy_mac(eth->h_dest, fib->dmac);
		xdpkit_copy_mac(eth->h_source, fib->smac);
	}
	return action;
}

static __always_inline int route_ipv4(struct xdp_md *ctx, struct ethhdr *eth, void *data_end)
{
	struct iphdr *iph = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	int action;

	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	/* Options (ihl > 5) need the kernel's option processing; so does a short or lying
	 * header. TTL <= 1 needs an ICMP time exceeded from the kernel. */
	if (iph->version != 4 || iph->ihl != 5 || iph->ttl <= 1)
		return XDP_PASS;
	if (bpf_ntohs(iph->tot_len) < sizeof(*iph) ||
	    (void *)iph + bpf_ntohs(iph->tot_len) > data_end)
		return XDP_PASS;
	/* The kernel drops IPv4 headers with a bad checksum; forwarding them would hide that. */
	if (xdpkit_ipv4_header_sum(iph) != 0xFFFF || ipv4_martian_source(iph->saddr))
		return XDP_PASS;

	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = ctx->ingress_ifindex;

	action = redirect_to_next_hop(ctx, eth, &fib);
	if (action != XDP_REDIRECT)
		return action;
	ipv4_decrease_ttl(iph);
	trim_to_ip_length(ctx, iph, bpf_ntohs(iph->tot_len), data_end);
	return XDP_REDIRECT;
}

static __always_inline int route_ipv6(struct xdp_md *ctx, struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6h = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	int action;

	if ((void *)(ip6h + 1) > data_end)
		return XDP_PASS;
	/* Hop-by-hop options (next header 0) must be read by every router: the kernel's job. */
	if (ip6h->version != 6 || ip6h->hop_limit <= 1 || ip6h->nexthdr == 0)
		return XDP_PASS;
	if ((void *)(ip6h + 1) + bpf_ntohs(ip6h->payload_len) > data_end)
		return XDP_PASS;
	/* Link-local traffic is never forwarded (the kernel answers it with ICMP); the other
	 * refused addresses the kernel drops. */
	if (ipv6_refused_source(&ip6h->saddr) || ipv6_refused_destination(&ip6h->daddr))
		return XDP_PASS;

	fib.family = AF_INET6;
	fib.flowinfo = *(__be32 *)ip6h & IPV6_FLOWINFO_MASK;
	fib.l4_protocol = ip6h->nexthdr;
	fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	__builtin_memcpy(fib.ipv6_src, ip6h->saddr.in6_u.u6_addr32, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, ip6h->daddr.in6_u.u6_addr32, sizeof(fib.ipv6_dst));
	fib.ifindex = ctx->ingress_ifindex;

	action = redirect_to_next_hop(ctx, eth, &fib);
	if (action != XDP_REDIRECT)
		return action;
	ip6h->hop_limit--;
	trim_to_ip_length(ctx, ip6h, sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len), data_end);
	return XDP_REDIRECT;
}

int xdp_router(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return xdpkit_record(ctx, XDP_PASS);

	/* Each family keeps its own path: one header pointer shared by both, tested after
	 * the lookup, is a maybe-NULL pointer to the verifier. VLAN-tagged frames, ARP and
	 * everything else are not IP here and go to the kernel untouched. */
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return xdpkit_record(ctx, route_ipv4(ctx, eth, data_end));
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return xdpkit_record(ctx, route_ipv6(ctx, eth, data_end));
	return xdpkit_record(ctx, XDP_PASS);
}
