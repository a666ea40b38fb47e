/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `ebpf-proxy trace`: the CLI runs a pinned program with BPF_PROG_TEST_RUN on a
 * synthetic packet whose skb->mark is TRACE_MARK. Such a packet creates no
 * state (conntrack, affinity), is not counted, and leaves its decision in
 * trace_out. Marks do not survive the veth crossing into the host namespace,
 * so pod traffic cannot carry it. ABI rules as in lb_types.h.
 */
#ifndef EBPF_PROXY_TRACE_TYPES_H
#define EBPF_PROXY_TRACE_TYPES_H

#include <linux/types.h>

enum trace_mark { TRACE_MARK = 0x7eb9f00d };

enum trace_flags {
	TRACE_F_FRONTEND = 1u << 0, /* a frontend matched (rev_nat_id names it) */
	TRACE_F_CT_HIT = 1u << 1, /* an established connection's entry decided */
	TRACE_F_AFFINITY = 1u << 2, /* a session-affinity pin decided */
	TRACE_F_WILDCARD = 1u << 3, /* the address is a ClusterIP, the port is not */
	TRACE_F_MASQUERADE = 1u << 4, /* source rewritten to the node (lb_nat_config) */
	TRACE_F_SNAT_REPLY = 1u << 5, /* reply of a masqueraded flow */
};

struct trace_record {
	__u32 reason; /* enum reason */
	__u32 backend_id; /* chosen backend, 0 if none */
	__u16 rev_nat_id; /* matched frontend (or conntrack entry), 0 if none */
	__u16 flags; /* TRACE_F_* */
	__u32 seq; /* bumped by every traced packet */
	/* NetworkPolicy (policy.h); appended, as every later field must be. */
	__u32 policy_endpoint; /* the local pod's endpoint id, 0 if it has no isolation */
	__u32 policy_identity; /* the remote identity a new flow was judged against */
	__u8 policy_verdict; /* POL_VERDICT_* (policy_types.h) */
	__u8 policy_pad[3];
};

#endif
