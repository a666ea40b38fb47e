/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * New-connection events (flow_types.h), rate-limited per CPU: at most
 * flow_config.rate events a second on each CPU, the rest counted as suppressed.
 * Off (one array lookup per new connection) unless `observe` turned them on.
 * Hubble samples its flow events per CPU the same way (monitor aggregation).
 */
#ifndef EBPF_PROXY_FLOW_H
#define EBPF_PROXY_FLOW_H

#include "maps.h"
#include "parse.h"
#include "conntrack.h"

/* Whether this packet opened a connection: a new service connection (its
 * conntrack entries were just written), or a flow a local pod's policy judged
 * and admitted. */
static __always_inline bool flow_is_new(__u32 reason, const struct trace_record *tr)
{
	if (reason >= REASON_DROP_MIN)
		return false;
	return reason == REASON_FWD_SERVICE_NEW ||
	       (tr->policy_verdict >= POL_VERDICT_NOT_ISOLATED && tr->policy_verdict <= POL_VERDICT_ALLOW_ANY);
}

static __always_inline void flow_event_send(struct __sk_buff *skb, const struct pkt4 *p, __u32 reason, __u32 dir,
					    const struct trace_record *tr)
{
	__u32 zero = 0;
	struct flow_config *cfg = bpf_map_lookup_elem(&flow_config, &zero);
	struct flow_rate_state *st;
	struct flow_event *ev;
	__be32 addrs[2];
	__be16 ports[2];
	__u64 now;

	if (!cfg || !cfg->rate)
		return;
	st = bpf_map_lookup_elem(&flow_rate, &zero);
	if (!st)
		return;
	now = bpf_ktime_get_ns();
	if (now - st->window_ns >= NSEC_PER_SEC) {
		st->window_ns = now;
		st->sent = 0;
	}
	if (st->sent >= cfg->rate) {
		st->suppressed++;
		return;
	}
	ev = bpf_ringbuf_reserve(&flow_events, sizeof(*ev), 0);
	if (!ev) {
		st->suppressed++;
		return;
	}
	st->sent++;
	ev->ts_ns = now;
	ev->saddr_be = p->saddr;
	ev->daddr_be = p->daddr;
	ev->sport_be = p->sport;
	ev->dport_be = p->dport;
	/* After translation: the headers as rewritten in the packet. */
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, saddr), addrs, sizeof(addrs)) < 0) {
		addrs[0] = p->saddr;
		addrs[1] = p->daddr;
	}
	if (!p->l4_off || bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0) {
		ports[0] = p->sport;
		ports[1] = p->dport;
	}
	ev->xlat_saddr_be = addrs[0];
	ev->xlat_daddr_be = addrs[1];
	ev->xlat_sport_be = ports[0];
	ev->xlat_dport_be = ports[1];
	ev->ifindex = skb->ifindex;
	ev->policy_endpoint = tr->policy_endpoint;
	ev->policy_identity = tr->policy_identity;
	ev->rev_nat_id = tr->rev_nat_id;
	ev->proto = p->proto;
	ev->dir = dir;
	ev->reason = reason;
	ev->policy_verdict = tr->policy_verdict;
	ev->pad = 0;
	ev->pad2 = 0;
	bpf_ringbuf_submit(ev, 0);
}

#endif
