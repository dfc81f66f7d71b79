/* SPDX-License-Identifier: GPL-2.0 */
/* The least an IPv4 router on bpf_fib_lookup() can do, for the benchmark only: one lookup,
 * both MACs, TTL with its checksum, a redirect through tx_ports. No input rules, no source
 * validation, no ICMP or option handling, no counters: it forwards frames Linux would drop and
 * is never to be attached to anything but the benchmark's own test bed. Its path cost is the
 * floor under any router that asks the kernel's FIB per packet, so the kernel / floor ratio is
 * the most such a router can reach on this machine. Not shipped with the collection. */
#include "xdpkit.h"

#ifndef AF_INET
#define AF_INET 2
#endif

XDPKIT_DEVMAP_HASH(tx_ports, 256);

int xdp_router_floor(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *iph = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	u32 check;
	int action;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ttl <= 1)
		return XDP_PASS;
	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	action = tx_ports.redirect_map(fib.ifindex, XDP_PASS);
	if (action == XDP_REDIRECT) {
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		check = (u32)iph->check + (u32)bpf_htons(0x0100);
		iph->check = (__sum16)(check + (check >= 0xFFFF));
		iph->ttl--;
	}
	return action;
}
