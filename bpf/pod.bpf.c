// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The datapath object (the file keeps its first name, pod.bpf.c). Every
 * program attaches through a clsact qdisc.
 *
 * Pod role, on the host-side end of a pod's veth pair:
 *   from_pod:    tc ingress = packets the pod sends. Service DNAT (conntrack
 *                first, then frontend lookup), masquerade where kube-proxy
 *                would, and replies of masqueraded flows to the node; then
 *                the pod's egress policy on the translated flow.
 *   to_pod:      tc egress = packets delivered to the pod. Reverse NAT of
 *                replies from backends, then the pod's ingress policy.
 * Netdev role, on the node's network devices (traffic from other nodes and
 * from outside the cluster):
 *   from_netdev: tc ingress. NodePort / ExternalIP / LB / ClusterIP frontends
 *                for outside clients (eTP Local node-local set, source
 *                ranges), and replies of masqueraded flows.
 *   to_netdev:   tc egress. Reverse NAT of replies that leave the node
 *                without masquerade (eTP Local, client address preserved).
 *
 * Host role, cgroup sock_addr hooks for the node's own processes (sock.h):
 *   sock4_connect, sock4_sendmsg: frontend -> backend where the application
 *                names its peer; sock4_recvmsg, sock4_getpeername: back.
 *
 * Packets that are not ours continue untouched (TC_ACT_OK). Masqueraded
 * packets are redirected to their egress device (fib.h).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/lb.h"
#include "lib/policy.h"
#include "lib/frag.h"
#include "lib/icmp.h"
#include "lib/metrics.h"
#include "lib/flow.h"
#include "lib/fib.h"
#include "lib/sock.h"
#include "lib/constants.h"

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
				   struct trace_record *tr, bool trace, const struct lb_out *out)
{
	int ret = reason >= REASON_DROP_MIN ? TC_ACT_SHOT : TC_ACT_OK;

	if (ret == TC_ACT_OK && out->redirect && !trace)
		ret = fib_redirect4(skb, out->saddr, out->daddr);

	/* No ICMP error about a later fragment (RFC 1122 3.2.2): dropped only. */
	if ((reason == REASON_REJECT_NO_ENDPOINT || reason == REASON_REJECT_NO_PORT) && p->frag != PKT_FRAG_LATER) {
		ret = reject4(skb, p);
		if (ret < 0) {
			reason = REASON_DROP_REJECT_FAILED;
			ret = TC_ACT_SHOT;
		}
	}
	if (trace) {
		trace_publish(tr, reason);
	} else {
		metrics_count(skb, reason, dir);
		/* A REJECT is a drop too, though its ICMP error is redirected. */
		if (ret == TC_ACT_SHOT || reason >= REASON_DROP_MIN)
			drop_event_send(skb, p, reason, dir, tr);
		else if (flow_is_new(reason, tr))
			flow_event_send(skb, p, reason, dir, tr);
	}
	return ret;
}

/* Parses, hands the packet to the direction's logic, and applies the verdict. */
static __always_inline int hook(struct __sk_buff *skb, __u32 dir, enum lb_source source)
{
	struct trace_record tr = {};
	struct lb_out out = {};
	bool trace = skb->mark == TRACE_MARK;
	struct pkt4 p = {};
	bool towards_node = dir == METRICS_DIR_INGRESS;
	enum parse_result parsed = parse_ipv4(skb, &p);
	int frag_policy = 0;
	__u32 reason;

	if (parsed == PARSE_FRAGMENT) {
		frag_policy = frag4_later(&p, towards_node);
		if (frag_policy >= 0)
			parsed = PARSE_OK;
	} else if (parsed == PARSE_OK && p.frag == PKT_FRAG_FIRST && !trace) {
		frag4_first(&p);
	}

	switch (parsed) {
	case PARSE_OK:
		reason = towards_node ? lb4_from_client(skb, &p, &tr, trace, source, &out) : lb4_to_client(skb, &p, &tr, trace);
		/* NetworkPolicy belongs to pods: a local pod's ingress is judged at its
		 * to_pod whichever way the packet came in. A later fragment follows
		 * its first. */
		if (source != LB_FROM_POD)
			break;
		if (p.frag == PKT_FRAG_LATER) {
			if (frag_policy > 0 && reason < REASON_DROP_MIN)
				reason = frag_policy;
			break;
		}
		reason = policy4_enforce(skb, &p, reason, towards_node, &tr, trace);
		if (p.frag == PKT_FRAG_FIRST && !trace)
			frag4_note_policy(&p, reason, towards_node);
		break;
	case PARSE_FRAGMENT:
		reason = frag4_unknown(&p, source, towards_node, &tr);
		break;
	case PARSE_INVALID:
		reason = REASON_DROP_INVALID;
		break;
	default: {
		struct icmp4_err icmp = {};

		/* ICMP errors about translated connections (lib/icmp.h). */
		if (icmp4_error_parse(skb, &icmp) == ICMP4_ERROR_TUPLE) {
			reason = icmp4_error_handle(skb, &icmp, &p, towards_node, source, &tr, &out);
			break;
		}
		reason = REASON_PASS_UNSUPPORTED;
		if (source == LB_FROM_POD)
			reason = policy4_unparsed(skb, reason, towards_node, &tr);
		break;
	}
	}
	return verdict(skb, &p, reason, dir, &tr, trace, &out);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return hook(skb, METRICS_DIR_INGRESS, LB_FROM_POD);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	return hook(skb, METRICS_DIR_EGRESS, LB_FROM_POD);
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	return hook(skb, METRICS_DIR_INGRESS, LB_FROM_NETDEV);
}

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	return hook(skb, METRICS_DIR_EGRESS, LB_FROM_NETDEV);
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx);
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx);
}

SEC("cgroup/recvmsg4")
int sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock4_reverse(ctx);
}

SEC("cgroup/getpeername4")
int sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock4_reverse(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
