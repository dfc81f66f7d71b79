/* SPDX-License-Identifier: GPL-2.0 */
/* Map-driven forwarding, filled from user space by the xdp_map module:
 *   mac_table  source MAC -> destination MAC to write
 *   tx_ports   ingress ifindex -> egress ifindex (DEVMAP_HASH)
 * One program per port, all sharing both maps, forwards in every direction the maps name.
 * Frames from an unknown source, or arriving on a port with no egress, go to the kernel. */
#include "xdpkit_reasons.h"

struct mac_addr {
	unsigned char addr[ETH_ALEN];
};

BPF_TABLE_PINNED("hash", struct mac_addr, struct mac_addr, mac_table, 1024, XDPKIT_MAPS_DIR "/mac_table");
XDPKIT_DEVMAP_HASH(tx_ports, 256);

int xdp_redirect_map(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct mac_addr src;
	struct mac_addr *dest;

	if ((void *)(eth + 1) > data_end)
		return xdpkit_record_reason(ctx, XDPKIT_REASON_MALFORMED);

	xdpkit_copy_mac(src.addr, eth->h_source);
	dest = mac_table.lookup(&src);
	if (!dest)
		return xdpkit_record_reason(ctx, XDPKIT_REASON_UNKNOWN_SOURCE_MAC);

	/* With XDP_PASS as flags a missing port falls back to the kernel instead of
	 * XDP_ABORTED; the frame is only rewritten once the redirect is certain. */
	if (tx_ports.redirect_map(ctx->ingress_ifindex, XDP_PASS) != XDP_REDIRECT)
		return xdpkit_record_reason(ctx, XDPKIT_REASON_NO_EGRESS_PORT);
	xdpkit_copy_mac(eth->h_dest, dest->addr);
	return xdpkit_record_reason(ctx, XDPKIT_REDIRECTED);
}
