/* SPDX-License-Identifier: GPL-2.0 */
/* The benchmark's sink: count every frame (as XDP_DROP in the stats map) and drop it. */
#include "xdpkit.h"

int xdp_sink(struct xdp_md *ctx)
{
	return xdpkit_record(ctx, XDP_DROP);
}
