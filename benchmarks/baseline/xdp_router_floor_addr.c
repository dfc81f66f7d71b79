/* SPDX-License-Identifier: GPL-2.0 */
/* xdp_router_floor.c plus the address check Linux makes with rp_filter 0 (fib_validate_source()'s
 * fast path, as bpf/xdp_router.c makes it): the local table's state (an array lookup and its
 * lease), then the source in local_addrs (a hash lookup). The benchmark's fib4_floor_addr mode:
 * the least a router that checks sources as cheaply as Linux can cost. It shares the router's
 * pinned tables (maps_dir), which the keeper fills. Not shipped with the collection. */
#include "xdpkit.h"

#ifndef AF_INET
#define AF_INET 2
#endif

struct floor_local_state {
	__u64 vouched_until;
	__u32 full_check;
	__u32 addresses;
	__u64 vouched_until_jiffies;
	__u64 filter[64];	/* the router's filter in front of local_addrs; not used here */
};

XDPKIT_DEVMAP_HASH(tx_ports, 256);
BPF_TABLE_PINNED("hash", __be32, u32, local_addrs, 4096, XDPKIT_MAPS_DIR "/local_addrs");
BPF_TABLE_PINNED("array", u32, struct floor_local_state, local_state, 1, XDPKIT_MAPS_DIR "/local_state");

int xdp_router_floor_addr(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *iph = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	struct floor_local_state *local;
	__be32 saddr;
	u32 zero = 0;
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
	/* The address check, both lookups whatever the lease says. */
	local = local_state.lookup(&zero);
	if (!local)
		return XDP_PASS;
	saddr = iph->saddr;
	if (local_addrs.lookup(&saddr) && bpf_ktime_get_ns() < local->vouched_until)
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
