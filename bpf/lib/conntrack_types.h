/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection-tracking map layout. ABI rules as in lb_types.h. */
#ifndef EBPF_PROXY_CONNTRACK_TYPES_H
#define EBPF_PROXY_CONNTRACK_TYPES_H

#include <linux/types.h>

/* Which kind of entry a tuple names. */
enum ct_dir {
	CT_DIR_SERVICE = 1, /* client -> VIP:port, as sent by the client */
	CT_DIR_REPLY = 2, /* backend -> client, as the reply is sent */
	CT_DIR_SNAT_OUT = 3, /* snat4: client -> VIP:port; holds the masquerade source */
	CT_DIR_SNAT_IN = 4, /* snat4: backend -> node:nat_port; holds the client */
	CT_DIR_POLICY = 5, /* pol_ct4: a connection a local pod's policy admitted, as that pod sees it (policy.h) */
};

struct ct4_key {
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;
	__be16 dport_be;
	__u8 proto;
	__u8 dir; /* CT_DIR_* */
	__u16 pad;
};

/* Entry flags. */
enum ct_flags {
	CT_F_SEEN_REPLY = 1u << 0,
	CT_F_CLOSING = 1u << 1, /* FIN or RST seen */
	CT_F_SNAT = 1u << 2, /* masqueraded: the snat4 entries hold the source rewrite */
	CT_F_POLICY_INBOUND = 1u << 3, /* retired: policy entries in ct4 before pol_ct4 (the peer opened it) */
};

struct ct_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() of the last refresh */
	__u64 created_ns;
	__u32 backend_id; /* CT_DIR_SERVICE: the chosen backend; CT_DIR_POLICY: the peer's address (__be32) */
	__u16 rev_nat_id; /* service entries: the service's rev-NAT id; CT_DIR_POLICY: the peer's port (__be16) */
	__u16 flags; /* CT_F_* */
	__u64 packets;
};

/* Key of frag4: one fragmented datagram as a hook sees it (lib/frag.h). */
struct frag4_key {
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 id_be; /* IP identification */
	__u8 proto;
	__u8 pad;
};

/* Value of frag4: the ports its first fragment carried, and the policy drop
 * reason (enum reason, 0 = none) that fragment got at from_pod / to_pod. */
struct frag4_entry {
	__be16 sport_be;
	__be16 dport_be;
	__u8 from_pod_reason;
	__u8 to_pod_reason;
	__u16 pad;
};

/*
 * Value of snat4, the masquerade table beside ct4 (both keyed by ct4_key).
 * A masqueraded connection keeps its two ct4 entries keyed as if it were not
 * masqueraded, plus two snat4 entries:
 *   CT_DIR_SNAT_OUT client:port -> VIP:port      => addr:port = node:nat_port
 *   CT_DIR_SNAT_IN  backend:port -> node:nat_port => addr:port = client:port
 */
struct snat4_entry {
	__u64 created_ns;
	__be32 addr_be;
	__be16 port_be;
	__u16 pad;
};

#endif
