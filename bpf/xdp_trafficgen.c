/* SPDX-License-Identifier: GPL-2.0 */
/* The benchmark's traffic generator, run by BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: it
 * writes a whole Ethernet + IP + UDP header into every frame and transmits it with XDP_TX out
 * of the interface given as ingress in the run's context. Live frames are recycled as the
 * forwarder left them (MACs swapped, TTL decremented), so nothing of the last run's headers is
 * trusted. The payload is the zeros the run was given: nothing on the path writes to it.
 *
 * Defines (numbers only, as every xdpkit define):
 *   GEN_SRC_MAC, GEN_DST_MAC        48-bit MACs
 *   GEN_IPV6                        0: IPv4, 1: IPv6
 *   GEN_SRC_IP4, GEN_DST_IP4        IPv4 addresses as host-order 32-bit integers
 *   GEN_SRC_IP6_0..3, GEN_DST_IP6_0..3   IPv6 addresses as four host-order 32-bit words
 */
#include "xdpkit.h"

#ifndef GEN_IPV6
#define GEN_IPV6 0
#endif
#define GEN_TTL 64
#define GEN_SPORT 9
#define GEN_DPORT 9
#define IPV4_DONT_FRAGMENT 0x4000

struct gen_udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

/* The sum of a host-order 32-bit value's two 16-bit words (the defines' addresses). */
static __always_inline __u32 gen_word_sum(__u32 value)
{
	return (value >> 16) + (value & 0xFFFF);
}

/* The UDP checksum (RFC 768; for IPv6 mandatory, RFC 8200 8.1): the one's complement sum of
 * the pseudo-header (addresses, protocol, UDP length), the UDP header and the payload. The
 * payload is all zeros and adds nothing, so the sum is the defines' constants and the length. */
static __always_inline __sum16 gen_udp_checksum(__u32 address_sum, __u16 udp_len)
{
	__u32 sum = address_sum + IPPROTO_UDP + udp_len + GEN_SPORT + GEN_DPORT + udp_len;

	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = ~sum & 0xFFFF;
	/* A checksum of 0 is sent as 0xFFFF: 0 means "none", which IPv6 receivers drop. */
	return bpf_htons(sum ? sum : 0xFFFF);
}

int xdp_trafficgen(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct gen_udphdr *udp;
	__u32 address_sum;
	__u16 udp_len;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	xdpkit_mac_from_u64(eth->h_dest, GEN_DST_MAC);
	xdpkit_mac_from_u64(eth->h_source, GEN_SRC_MAC);

#if GEN_IPV6
	struct ipv6hdr *ip6h = (void *)(eth + 1);

	if ((void *)(ip6h + 1) > data_end)
		return XDP_ABORTED;
	udp = (void *)(ip6h + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	/* Version 6, traffic class and flow label 0. */
	*(__be32 *)ip6h = bpf_htonl(6 << 28);
	ip6h->payload_len = bpf_htons((__u16)(data_end - (void *)udp));
	ip6h->nexthdr = IPPROTO_UDP;
	ip6h->hop_limit = GEN_TTL;
	ip6h->saddr.in6_u.u6_addr32[0] = bpf_htonl(GEN_SRC_IP6_0);
	ip6h->saddr.in6_u.u6_addr32[1] = bpf_htonl(GEN_SRC_IP6_1);
	ip6h->saddr.in6_u.u6_addr32[2] = bpf_htonl(GEN_SRC_IP6_2);
	ip6h->saddr.in6_u.u6_addr32[3] = bpf_htonl(GEN_SRC_IP6_3);
	ip6h->daddr.in6_u.u6_addr32[0] = bpf_htonl(GEN_DST_IP6_0);
	ip6h->daddr.in6_u.u6_addr32[1] = bpf_htonl(GEN_DST_IP6_1);
	ip6h->daddr.in6_u.u6_addr32[2] = bpf_htonl(GEN_DST_IP6_2);
	ip6h->daddr.in6_u.u6_addr32[3] = bpf_htonl(GEN_DST_IP6_3);
	address_sum = gen_word_sum(GEN_SRC_IP6_0) + gen_word_sum(GEN_SRC_IP6_1) + gen_word_sum(GEN_SRC_IP6_2) +
		      gen_word_sum(GEN_SRC_IP6_3) + gen_word_sum(GEN_DST_IP6_0) + gen_word_sum(GEN_DST_IP6_1) +
		      gen_word_sum(GEN_DST_IP6_2) + gen_word_sum(GEN_DST_IP6_3);
#else
	struct iphdr *iph = (void *)(eth + 1);

	if ((void *)(iph + 1) > data_end)
		return XDP_ABORTED;
	udp = (void *)(iph + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	eth->h_proto = bpf_htons(ETH_P_IP);
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = bpf_htons((__u16)(data_end - (void *)iph));
	iph->id = 0;
	iph->frag_off = bpf_htons(IPV4_DONT_FRAGMENT);
	iph->ttl = GEN_TTL;
	iph->protocol = IPPROTO_UDP;
	iph->saddr = bpf_htonl(GEN_SRC_IP4);
	iph->daddr = bpf_htonl(GEN_DST_IP4);
	iph->check = 0;
	iph->check = (__u16)~xdpkit_ipv4_header_sum(iph);
	address_sum = gen_word_sum(GEN_SRC_IP4) + gen_word_sum(GEN_DST_IP4);
#endif
	udp_len = data_end - (void *)udp;
	udp->source = bpf_htons(GEN_SPORT);
	udp->dest = bpf_htons(GEN_DPORT);
	udp->len = bpf_htons(udp_len);
	udp->check = gen_udp_checksum(address_sum, udp_len);
	return XDP_TX;
}
