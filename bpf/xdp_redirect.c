/* SPDX-License-Identifier: GPL-2.0 */
/* Hardcoded forwarding: every Ethernet frame goes out of one interface with one destination
 * MAC, both fixed at compile time.
 *   DEST_IFINDEX  egress ifindex (as seen from the namespace the program runs in)
 *   DEST_MAC      destination MAC as a 48-bit integer
 *   SRC_MAC       optional source MAC to write as well
 */
#include "xdpkit_reasons.h"

#ifndef DEST_IFINDEX
#error "DEST_IFINDEX is not defined"
#endif
#ifndef DEST_MAC
#error "DEST_MAC is not defined"
#endif

int xdp_redirect(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return xdpkit_record_reason(ctx, XDPKIT_REASON_MALFORMED);

	/* bpf_redirect() answers XDP_ABORTED only for flags it does not know: counted under its
	 * action and a reason, as any frame not redirected. */
	if (bpf_redirect(DEST_IFINDEX, 0) != XDP_REDIRECT) {
		xdpkit_count_reason(ctx, XDPKIT_REASON_REDIRECT_REFUSED);
		return xdpkit_record(ctx, XDP_ABORTED);
	}
	xdpkit_mac_from_u64(eth->h_dest, DEST_MAC);
#ifdef SRC_MAC
	xdpkit_mac_from_u64(eth->h_source, SRC_MAC);
#endif
	return xdpkit_record_reason(ctx, XDPKIT_REDIRECTED);
}
