/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPF_PROXY_METRICS_H
#define EBPF_PROXY_METRICS_H

#include "maps.h"

/* Counts one packet under a reason; per-CPU, so no atomics needed. */
static __always_inline void metrics_count(struct __sk_buff *skb, __u32 reason, __u32 dir)
{
	__u32 idx = (reason & (REASON_MAX - 1)) * METRICS_DIR_MAX + (dir & 1);
	struct metrics_value *v = bpf_map_lookup_elem(&metrics, &idx);

	if (v) {
		v->packets++;
		v->bytes += skb->len;
	}
}

#endif
