/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 fragments. Only the first fragment of a datagram carries the L4 header:
 * it records the ports in frag4, keyed by (source, destination, IP id,
 * protocol) as the hook sees it, and is then handled like any packet. Later
 * fragments take the ports from that entry and get the same translation
 * (conntrack finds the first fragment's connection; only the addresses are
 * rewritten, the L4 checksum travels in the first fragment) and the same
 * NetworkPolicy verdict (the first fragment's policy drop, if any, is noted in
 * the entry per hook). This is Cilium's ipv4_handle_fragmentation
 * (bpf/lib/ipv4.h): an LRU map from the datagram's id to its ports.
 *
 * A later fragment without an entry (lost first fragment, or fragments out of
 * order) is dropped with REASON_DROP_FRAG_NOT_FOUND where the service path
 * could translate it (its destination is inside the service CIDR, a known
 * ClusterIP, or the node's masquerade address) or where the local pod on the
 * hook is isolated in that direction; anywhere else it passes untouched.
 */
#ifndef EBPF_PROXY_FRAG_H
#define EBPF_PROXY_FRAG_H

#include "maps.h"
#include "parse.h"
#include "lb.h"

static __always_inline void frag4_key_of(struct frag4_key *k, const struct pkt4 *p)
{
	k->saddr_be = p->saddr;
	k->daddr_be = p->daddr;
	k->id_be = p->ip_id;
	k->proto = p->proto;
	k->pad = 0;
}

/* First fragment: records (or renews, for a reused IP id) its datagram's ports. */
static __always_inline void frag4_first(const struct pkt4 *p)
{
	struct frag4_key key;
	struct frag4_entry entry = {
		.sport_be = p->sport,
		.dport_be = p->dport,
	};

	frag4_key_of(&key, p);
	bpf_map_update_elem(&frag4, &key, &entry, BPF_ANY);
}

/*
 * Later fragment: fills in the first fragment's ports. Returns the policy drop
 * reason the first fragment got on this hook (0 when it was admitted or not
 * judged), or -1 when the datagram is unknown.
 */
static __always_inline int frag4_later(struct pkt4 *p, bool from_pod)
{
	struct frag4_key key;
	struct frag4_entry *e;

	frag4_key_of(&key, p);
	e = bpf_map_lookup_elem(&frag4, &key);
	if (!e)
		return -1;
	p->sport = e->sport_be;
	p->dport = e->dport_be;
	return from_pod ? e->from_pod_reason : e->to_pod_reason;
}

/* First fragment dropped by policy: its later fragments follow it. */
static __always_inline void frag4_note_policy(const struct pkt4 *p, __u32 reason, bool from_pod)
{
	struct frag4_key key;
	struct frag4_entry *e;

	if (reason != REASON_DROP_POLICY_INGRESS && reason != REASON_DROP_POLICY_EGRESS)
		return;
	frag4_key_of(&key, p);
	e = bpf_map_lookup_elem(&frag4, &key);
	if (!e)
		return;
	if (from_pod)
		e->from_pod_reason = reason;
	else
		e->to_pod_reason = reason;
}

/* A later fragment whose first was never seen: see the top of this file. */
static __always_inline __u32 frag4_unknown(const struct pkt4 *p, enum lb_source source, bool towards_node,
					   struct trace_record *tr)
{
	if (towards_node) {
		__u32 zero = 0;
		struct lb_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);
		struct lb_nat_config *nat = lb_nat_config_get();

		if (cfg && cfg->service_mask_be && (p->daddr & cfg->service_mask_be) == cfg->service_cidr_be)
			return REASON_DROP_FRAG_NOT_FOUND;
		if (nat && nat->snat_addr_be && p->daddr == nat->snat_addr_be)
			return REASON_DROP_FRAG_NOT_FOUND;
		if (lb4_is_cluster_ip(p->daddr))
			return REASON_DROP_FRAG_NOT_FOUND;
	}
	if (source == LB_FROM_POD) {
		__be32 local = towards_node ? p->saddr : p->daddr;
		struct pol_endpoint *ep = bpf_map_lookup_elem(&pol_endpoints, &local);

		if (ep && (ep->flags & (towards_node ? POL_EP_F_EGRESS_ISOLATED : POL_EP_F_INGRESS_ISOLATED))) {
			tr->policy_endpoint = ep->endpoint_id;
			return REASON_DROP_FRAG_NOT_FOUND;
		}
	}
	return REASON_PASS_UNSUPPORTED;
}

#endif
