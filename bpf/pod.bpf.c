// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Pod attach role: both programs attach to the host-side end of a pod's veth
 * pair, through a clsact qdisc.
 *
 *   from_pod: tc ingress on the host-side veth = packets the pod sends.
 *             Service DNAT (conntrack first, then frontend lookup), then the
 *             pod's egress policy on the translated flow.
 *   to_pod:   tc egress on the host-side veth = packets delivered to the pod.
 *             Reverse NAT of replies from backends, then the pod's ingress
 *             policy.
 *
 * Packets that are not ours continue untouched (TC_ACT_OK).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/lb.h"
#include "lib/policy.h"
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

/* Parses, hands the packet to the direction's logic, and applies the verdict. */
static __always_inline int pod_hook(struct __sk_buff *skb, __u32 dir)
{
	struct trace_record tr = {};
	bool trace = skb->mark == TRACE_MARK;
	struct pkt4 p = {};
	__u32 reason;

	switch (parse_ipv4(skb, &p)) {
	case PARSE_OK:
		reason = dir == METRICS_DIR_INGRESS ? lb4_from_client(skb, &p, &tr, trace)
						    : lb4_to_client(skb, &p, &tr, trace);
		reason = policy4_enforce(skb, &p, reason, dir == METRICS_DIR_INGRESS, &tr, trace);
		break;
	case PARSE_INVALID:
		reason = REASON_DROP_INVALID;
		break;
	default:
		reason = REASON_PASS_UNSUPPORTED;
		break;
	}
	return verdict(skb, &p, reason, dir, &tr, trace);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return pod_hook(skb, METRICS_DIR_INGRESS);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	return pod_hook(skb, METRICS_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
