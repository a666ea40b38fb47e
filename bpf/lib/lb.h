/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load balancing (IPv4): frontend lookup, backend selection, DNAT of
 * the client's packets and reverse NAT of the replies.
 *
 * Per packet cost does not depend on the number of services: an established
 * flow costs one conntrack lookup, one backend lookup (to notice a backend that
 * was removed) and the rewrite; a new flow adds the slot-0 lookup and one slot
 * lookup.
 */
#ifndef EBPF_PROXY_LB_H
#define EBPF_PROXY_LB_H

#include "maps.h"
#include "parse.h"
#include "nat.h"
#include "conntrack.h"
#include "reject.h"

static __always_inline struct lb4_service *lb4_lookup_service(const struct pkt4 *p, __u8 scope)
{
	struct lb4_key key = {
		.address_be = p->daddr,
		.port_be = p->dport,
		.proto = p->proto,
		.scope = scope,
		.slot = 0,
	};

	return bpf_map_lookup_elem(&lb4_services, &key);
}

/*
 * Picks a backend slot at random among the active backends, or, when none is
 * active, among the serving+terminating tail (which then starts at slot 1).
 * Returns the backend id, or 0 when there is none.
 */
static __always_inline __u32 lb4_select_backend(const struct pkt4 *p, const struct lb4_service *svc,
						__u8 scope)
{
	struct lb4_key key = {
		.address_be = p->daddr,
		.port_be = p->dport,
		.proto = p->proto,
		.scope = scope,
	};
	struct lb4_service *slot;
	__u16 n = svc->count ? svc->count : svc->terminating_count;

	if (n == 0)
		return 0;
	key.slot = (bpf_get_prandom_u32() % n) + 1;
	slot = bpf_map_lookup_elem(&lb4_services, &key);
	if (!slot) {
		/* The set shrank between our slot-0 read and this one: slot 1 is
		 * always written before a count that includes it is published. */
		key.slot = 1;
		slot = bpf_map_lookup_elem(&lb4_services, &key);
		if (!slot)
			return 0;
	}
	return slot->backend_id;
}

/*
 * sessionAffinity ClientIP: the backend this client was pinned to, when the pin
 * is younger than the service's timeout (counted from the client's last new
 * connection, as kube-proxy's "recent" match does) and the backend still
 * exists. User space forgets pins of backends removed from the service.
 */
static __always_inline struct lb4_backend *lb4_affinity_backend(const struct pkt4 *p, const struct lb4_service *svc,
								__u64 now, __u32 *backend_id)
{
	struct lb4_affinity_key key = {
		.client_be = p->saddr,
		.rev_nat_id = svc->rev_nat_id,
	};
	struct lb_affinity_value *pin = bpf_map_lookup_elem(&lb4_affinity, &key);

	if (!pin || now - pin->last_used_ns > (__u64)svc->affinity_timeout * NSEC_PER_SEC)
		return NULL;
	*backend_id = pin->backend_id;
	return bpf_map_lookup_elem(&lb4_backends, backend_id);
}

static __always_inline void lb4_affinity_record(const struct pkt4 *p, const struct lb4_service *svc, __u64 now,
						__u32 backend_id)
{
	struct lb4_affinity_key key = {
		.client_be = p->saddr,
		.rev_nat_id = svc->rev_nat_id,
	};
	struct lb_affinity_value pin = {
		.last_used_ns = now,
		.backend_id = backend_id,
	};

	bpf_map_update_elem(&lb4_affinity, &key, &pin, BPF_ANY);
}

/*
 * No frontend matched. Inside the service CIDR (when configured) an address
 * that is a ClusterIP but not on this port/protocol is rejected and any other
 * address is dropped, as kube-proxy's nftables mode does (it stops scans and
 * routing loops). Outside it the packet is not ours. Pod-to-pod traffic pays
 * one array lookup here when the CIDR is configured.
 */
static __always_inline __u32 lb4_no_frontend(const struct pkt4 *p, struct trace_record *tr)
{
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);
	bool cidr = cfg && cfg->service_mask_be;
	struct lb4_key wildcard = {
		.address_be = p->daddr,
		.scope = LB_SCOPE_EXTERNAL,
	};

	if (cidr && (p->daddr & cfg->service_mask_be) != cfg->service_cidr_be)
		return REASON_PASS_NOT_SERVICE;
	if (bpf_map_lookup_elem(&lb4_services, &wildcard)) {
		tr->flags |= TRACE_F_WILDCARD;
		return REASON_REJECT_NO_PORT;
	}
	return cidr ? REASON_DROP_UNALLOCATED_VIP : REASON_PASS_NOT_SERVICE;
}

/* DNAT to a backend; returns ok_reason, or the drop reason when the rewrite fails. */
static __always_inline __u32 lb4_dnat(struct __sk_buff *skb, const struct pkt4 *p, const struct lb4_backend *be,
				      __u32 ok_reason)
{
	int ret = nat4_rewrite(skb, p, true, be->address_be, be->port_be);

	if (ret < 0)
		return ret == -EOPNOTSUPP_SCTP ? REASON_DROP_SCTP_PORT : REASON_DROP_NAT;
	return ok_reason;
}

/*
 * Client -> frontend. Returns a reason: REASON_FWD_* when the packet was
 * translated, REASON_PASS_* when it is not ours, REASON_DROP_* to drop.
 */
static __always_inline __u32 lb4_from_client(struct __sk_buff *skb, const struct pkt4 *p, struct trace_record *tr,
					     bool trace)
{
	struct ct4_key ct_key;
	struct ct_entry *ct;
	struct lb4_service *svc;
	struct lb4_backend *be;
	__u64 now = bpf_ktime_get_ns();
	__u32 backend_id;
	__u32 reason = REASON_FWD_SERVICE_NEW;
	__u8 scope = LB_SCOPE_EXTERNAL;

	ct4_key_of(&ct_key, p, CT_DIR_SERVICE);
	ct = bpf_map_lookup_elem(&ct4, &ct_key);
	if (ct && ct_entry_live(ct, p, now)) {
		be = bpf_map_lookup_elem(&lb4_backends, &ct->backend_id);
		if (be) {
			tr->flags |= TRACE_F_CT_HIT;
			tr->backend_id = ct->backend_id;
			tr->rev_nat_id = ct->rev_nat_id;
			if (!trace && ct_entry_touch(ct, p, now)) {
				struct ct4_key reply_key;

				ct4_key_reply_of(&reply_key, p, be->address_be, be->port_be);
				ct_touch_twin(&reply_key, now);
			}
			return lb4_dnat(skb, p, be, REASON_FWD_SERVICE_ESTABLISHED);
		}
		/* Its backend was removed: choose again below. */
		reason = REASON_FWD_SERVICE_RESELECTED;
	}

	svc = lb4_lookup_service(p, LB_SCOPE_EXTERNAL);
	if (!svc)
		return lb4_no_frontend(p, tr);
	/* Pods reaching an eTP=Local frontend short-circuit to the cluster-wide set. */
	if (svc->flags & LB_SVC_F_TWO_SCOPES) {
		struct lb4_service *internal = lb4_lookup_service(p, LB_SCOPE_INTERNAL);

		if (internal) {
			svc = internal;
			scope = LB_SCOPE_INTERNAL;
		}
	}
	tr->flags |= TRACE_F_FRONTEND;
	tr->rev_nat_id = svc->rev_nat_id;

	be = NULL;
	backend_id = 0;
	if (svc->flags & LB_SVC_F_AFFINITY)
		be = lb4_affinity_backend(p, svc, now, &backend_id);
	if (be) {
		tr->flags |= TRACE_F_AFFINITY;
	} else {
		backend_id = lb4_select_backend(p, svc, scope);
		if (!backend_id)
			return (svc->flags & LB_SVC_F_DROP_NO_LOCAL) ? REASON_DROP_NO_LOCAL_ENDPOINT : REASON_REJECT_NO_ENDPOINT;
		be = bpf_map_lookup_elem(&lb4_backends, &backend_id);
		if (!be)
			return REASON_DROP_BACKEND_MISSING;
	}
	tr->backend_id = backend_id;
	if (trace)
		goto translate;
	if (svc->flags & LB_SVC_F_AFFINITY)
		lb4_affinity_record(p, svc, now, backend_id);

	{
		struct ct_entry entry = {
			.last_seen_ns = now,
			.created_ns = now,
			.backend_id = backend_id,
			.rev_nat_id = svc->rev_nat_id,
		};
		struct ct4_key reply_key;

		ct4_key_reply_of(&reply_key, p, be->address_be, be->port_be);

		/* Reply entry first: once the service entry exists, replies must
		 * find theirs. */
		if (bpf_map_update_elem(&ct4, &reply_key, &entry, BPF_ANY) < 0)
			return REASON_DROP_CT_CREATE;
		if (bpf_map_update_elem(&ct4, &ct_key, &entry, BPF_ANY) < 0)
			return REASON_DROP_CT_CREATE;
	}

translate:
	return lb4_dnat(skb, p, be, reason);
}

/* Backend -> client: rewrite the reply's source back to the frontend. */
static __always_inline __u32 lb4_to_client(struct __sk_buff *skb, const struct pkt4 *p, struct trace_record *tr,
					   bool trace)
{
	struct ct4_key ct_key;
	struct ct_entry *ct;
	struct lb4_reverse_nat *rn;
	__u64 now = bpf_ktime_get_ns();

	ct4_key_of(&ct_key, p, CT_DIR_REPLY);
	ct = bpf_map_lookup_elem(&ct4, &ct_key);
	if (!ct || now - ct->last_seen_ns > ct_lifetime(ct, p->proto))
		return REASON_PASS_NOT_SERVICE;
	rn = bpf_map_lookup_elem(&lb4_reverse_nat, &ct->rev_nat_id);
	if (!rn)
		return REASON_PASS_NOT_SERVICE;
	tr->flags |= TRACE_F_CT_HIT;
	tr->rev_nat_id = ct->rev_nat_id;
	if (!trace && ct_entry_touch(ct, p, now)) {
		struct ct4_key service_key;

		/* The client's entry: client -> frontend. */
		ct4_key_make(&service_key, p->daddr, rn->address_be, p->dport, rn->port_be, p->proto, CT_DIR_SERVICE);
		ct_touch_twin(&service_key, now);
	}
	if (nat4_rewrite(skb, p, false, rn->address_be, rn->port_be) < 0)
		return REASON_DROP_NAT;
	return REASON_FWD_REVNAT;
}

#endif
