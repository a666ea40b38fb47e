// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Pod attach role: both programs attach to the host-side end of a pod's veth
 * pair, through a clsact qdisc.
 *
 *   from_pod: tc ingress on the host-side veth = packets the pod sends.
 *             Service DNAT (conntrack first, then frontend lookup).
 *   to_pod:   tc egress on the host-side veth = packets delivered to the pod.
 *             Reverse NAT of replies from backends.
 *
 * Packets that are not ours continue untouched (TC_ACT_OK).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/lb.h"
#include "lib/metrics.h"

static __always_inline void trace_publish(struct trace_record *tr, __u32 reason)
{
	__u32 zero = 0;
	struct trace_record *out = bpf_map_lookup_elem(&trace_out, &zero);

	if (!out)
		return;
	tr->reason = reason;
	tr->seq = out->seq + 1;
	*out = *tr;
}

static __always_inline int verdict(struct __sk_buff *skb, const struct pkt4 *p, __u32 reason, __u32 dir,
				   struct trace_record *tr, bool trace)
{
	int ret = reason >= REASON_DROP_MIN ? TC_ACT_SHOT : TC_ACT_OK;

	if (reason == REASON_REJECT_NO_ENDPOINT || reason == REASON_REJECT_NO_PORT) {
		ret = reject4(skb, p);
		if (ret < 0) {
			reason = REASON_DROP_REJECT_FAILED;
			ret = TC_ACT_SHOT;
		}
	}
	if (trace)
		trace_publish(tr, reason);
	else
		metrics_count(skb, reason, dir);
	return ret;
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct trace_record tr = {};
	bool trace = skb->mark == TRACE_MARK;
	struct pkt4 p;

	switch (parse_ipv4(skb, &p)) {
	case PARSE_OK:
		break;
	case PARSE_INVALID:
		return verdict(skb, &p, REASON_DROP_INVALID, METRICS_DIR_INGRESS, &tr, trace);
	default:
		return verdict(skb, &p, REASON_PASS_UNSUPPORTED, METRICS_DIR_INGRESS, &tr, trace);
	}
	return verdict(skb, &p, lb4_from_client(skb, &p, &tr, trace), METRICS_DIR_INGRESS, &tr, trace);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct trace_record tr = {};
	bool trace = skb->mark == TRACE_MARK;
	struct pkt4 p;

	switch (parse_ipv4(skb, &p)) {
	case PARSE_OK:
		break;
	case PARSE_INVALID:
		return verdict(skb, &p, REASON_DROP_INVALID, METRICS_DIR_EGRESS, &tr, trace);
	default:
		return verdict(skb, &p, REASON_PASS_UNSUPPORTED, METRICS_DIR_EGRESS, &tr, trace);
	}
	return verdict(skb, &p, lb4_to_client(skb, &p, &tr, trace), METRICS_DIR_EGRESS, &tr, trace);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
