/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow events: new connections reported to user space (`ebpf-proxy observe`)
 * through the flow_events ring buffer, apart from drop_events so that a burst
 * of connections never crowds out the drops. ABI rules as in lb_types.h.
 */
#ifndef EBPF_PROXY_FLOW_TYPES_H
#define EBPF_PROXY_FLOW_TYPES_H

#include <linux/types.h>

/* flow_config (array, one entry): written by `ebpf-proxy observe` while it
 * runs, so flows cost nothing when nobody reads them. */
struct flow_config {
	__u32 rate; /* events per second and CPU; 0 = no flow events */
	__u32 pad;
};

/* flow_rate (per-CPU array, one entry): the rate limiter's window. */
struct flow_rate_state {
	__u64 window_ns; /* start of the current one-second window */
	__u32 sent; /* events sent in it */
	__u32 suppressed; /* events over the rate or lost to a full buffer, ever */
};

/*
 * A new connection: the tuple as the hook received it and as it sends it on
 * (after DNAT, masquerade or reverse NAT), the frontend's rev-NAT id, the
 * outcome and, when a local pod's policy judged it, the endpoint and the peer.
 */
struct flow_event {
	__u64 ts_ns; /* bpf_ktime_get_ns() */
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;
	__be16 dport_be;
	__be32 xlat_saddr_be;
	__be32 xlat_daddr_be;
	__be16 xlat_sport_be;
	__be16 xlat_dport_be;
	__u32 ifindex; /* the interface the hook runs on */
	__u32 policy_endpoint;
	__u32 policy_identity;
	__u16 rev_nat_id; /* the frontend, 0 when no service is involved */
	__u8 proto;
	__u8 dir; /* METRICS_DIR_* */
	__u8 reason; /* enum reason */
	__u8 policy_verdict; /* POL_VERDICT_* */
	__u16 pad;
	__u32 pad2;
};

#endif
