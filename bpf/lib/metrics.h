/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPF_PROXY_METRICS_H
#define EBPF_PROXY_METRICS_H

#include "maps.h"
#include "parse.h"

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

/* Counts a new connection to a frontend (by its rev-NAT id; per-CPU, no atomics). */
static __always_inline void svc_conn_count(__u16 rev_nat_id)
{
	__u32 key = rev_nat_id;
	__u64 *n = bpf_map_lookup_elem(&lb_svc_conns, &key);

	if (n)
		(*n)++;
}

/* Sends a drop to user space (best effort: a full buffer loses the event, never the count). */
static __always_inline void drop_event_send(struct __sk_buff *skb, const struct pkt4 *p, __u32 reason, __u32 dir,
					    const struct trace_record *tr)
{
	__u32 zero = 0;
	struct drop_event *ev = bpf_map_lookup_elem(&drop_scratch, &zero);

	if (!ev)
		return;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->saddr_be = p->saddr;
	ev->daddr_be = p->daddr;
	ev->sport_be = p->sport;
	ev->dport_be = p->dport;
	ev->proto = p->proto;
	ev->dir = dir;
	ev->reason = reason;
	ev->pad = 0;
	ev->ifindex = skb->ifindex;
	ev->policy_endpoint = tr->policy_endpoint;
	ev->policy_identity = tr->policy_identity;
	bpf_ringbuf_output(&drop_events, ev, sizeof(*ev), 0);
}

#endif
