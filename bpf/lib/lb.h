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
#include "metrics.h"
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

/* Whether an address is a ClusterIP (its wildcard entry: port 0, protocol 0). */
static __always_inline bool lb4_is_cluster_ip(__be32 address)
{
	struct lb4_key wildcard = {
		.address_be = address,
		.scope = LB_SCOPE_EXTERNAL,
	};

	return bpf_map_lookup_elem(&lb4_services, &wildcard) != NULL;
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

	if (cidr && (p->daddr & cfg->service_mask_be) != cfg->service_cidr_be)
		return REASON_PASS_NOT_SERVICE;
	if (lb4_is_cluster_ip(p->daddr)) {
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

/* Where a client's packet entered the node. */
enum lb_source {
	LB_FROM_POD = 0, /* a local pod's host-side veth */
	LB_FROM_NETDEV = 1, /* a node network device: another node or outside */
};

/* What the hook must do after the rewrite: masqueraded packets bypass input
 * routing (fib.h). */
struct lb_out {
	bool redirect;
	__be32 saddr;
	__be32 daddr;
};

static __always_inline struct lb_nat_config *lb_nat_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lb_nat_config, &zero);
}

static __always_inline bool in_cluster_cidr(const struct lb_nat_config *nat, __be32 addr)
{
	return nat && nat->cluster_mask_be && (addr & nat->cluster_mask_be) == nat->cluster_cidr_be;
}

/*
 * kube-proxy's masquerade rules, decided per new connection:
 * Decided on the flags of the frontend's external-scope entry (the one the
 * packet addressed), whichever scope's set the backend came from.
 *  - NodePort / ExternalIP / LB frontends with eTP Cluster: always, pods included;
 *  - eTP Local: never (external clients keep their address, pods short-circuit);
 *  - ClusterIP: when the source is outside --cluster-cidr (only when that is
 *    configured), or for every source with --masquerade-all;
 *  - hairpin (a pod balanced to itself): always.
 */
static __always_inline bool lb4_needs_masquerade(const struct lb_nat_config *nat, __u16 frontend_flags,
						 const struct pkt4 *p, const struct lb4_backend *be)
{
	if (!nat || !nat->snat_addr_be)
		return false;
	if (be->address_be == p->saddr)
		return true;
	if (frontend_flags & (LB_SVC_F_NODEPORT | LB_SVC_F_EXTERNAL_IP | LB_SVC_F_LOADBALANCER))
		return !(frontend_flags & LB_SVC_F_ETP_LOCAL);
	if (nat->flags & LB_NAT_F_MASQUERADE_ALL)
		return true;
	return nat->cluster_mask_be && !in_cluster_cidr(nat, p->saddr);
}

/* loadBalancerSourceRanges: whether the client may reach this LB frontend. */
static __always_inline bool lb4_source_allowed(const struct pkt4 *p)
{
	struct lb4_src_range_key key = {
		.prefixlen = LB_SRC_RANGE_FRONTEND_BITS + 32,
		.address_be = p->daddr,
		.port_be = p->dport,
		.proto = p->proto,
		.source_be = p->saddr,
	};

	return bpf_map_lookup_elem(&lb4_src_range, &key) != NULL;
}

#define SNAT_PORT_TRIES 4
#define SNAT_PORT_MIN 32768
#define SNAT_PORT_SPAN 28232 /* up to 60999, Linux's default ephemeral range */

/*
 * Picks the node port a masqueraded connection leaves with: the client's own
 * port when no other client holds it towards this backend (as iptables
 * MASQUERADE prefers), else a few random ones. Writes both snat4 entries.
 * Returns the port, or 0 when every try collided.
 */
static __always_inline __be16 lb4_snat_allocate(const struct pkt4 *p, const struct lb4_backend *be, __be32 snat_addr,
						__u64 now)
{
	struct ct4_key in_key, out_key;
	struct snat4_entry in = {
		.created_ns = now,
		.addr_be = p->saddr,
		.port_be = p->sport,
	};
	struct snat4_entry out = {
		.created_ns = now,
		.addr_be = snat_addr,
	};
	__be16 port = p->sport;

	for (int i = 0; i < SNAT_PORT_TRIES; i++) {
		struct snat4_entry *held;

		if (i > 0)
			port = bpf_htons(SNAT_PORT_MIN + bpf_get_prandom_u32() % SNAT_PORT_SPAN);
		ct4_key_make(&in_key, be->address_be, snat_addr, be->port_be, port, p->proto, CT_DIR_SNAT_IN);
		held = bpf_map_lookup_elem(&snat4, &in_key);
		if (held && (held->addr_be != p->saddr || held->port_be != p->sport)) {
			/* Taken, unless the holder's connection is gone. */
			struct ct4_key holder;

			ct4_key_make(&holder, be->address_be, held->addr_be, be->port_be, held->port_be, p->proto,
				     CT_DIR_REPLY);
			if (bpf_map_lookup_elem(&ct4, &holder))
				continue;
		}
		if (bpf_map_update_elem(&snat4, &in_key, &in, BPF_ANY) < 0)
			return 0;
		out.port_be = port;
		ct4_key_of(&out_key, p, CT_DIR_SNAT_OUT);
		if (bpf_map_update_elem(&snat4, &out_key, &out, BPF_ANY) < 0)
			return 0;
		return port;
	}
	return 0;
}

/* Source rewrite of a masqueraded packet, after its DNAT. */
static __always_inline __u32 lb4_snat(struct __sk_buff *skb, const struct pkt4 *p, __be32 addr, __be16 port,
				      const struct lb4_backend *be, struct lb_out *out, __u32 ok_reason)
{
	int ret = nat4_rewrite(skb, p, false, addr, port);

	if (ret < 0)
		return ret == -EOPNOTSUPP_SCTP ? REASON_DROP_SCTP_PORT : REASON_DROP_NAT;
	out->redirect = true;
	out->saddr = addr;
	out->daddr = be->address_be;
	return ok_reason;
}

/*
 * The reply entry of a translated connection (backend:port -> client:port),
 * when live, with the frontend its source is restored to; refreshes it and
 * the client's entry (client -> frontend). NULL when the packet is no reply.
 */
static __always_inline struct lb4_reverse_nat *lb4_reply_lookup(const struct pkt4 *p, __be32 client, __be16 client_port,
								 struct trace_record *tr, bool trace, __u64 now)
{
	struct ct4_key key;
	struct ct_entry *ct;
	struct lb4_reverse_nat *rn;

	ct4_key_make(&key, p->saddr, client, p->sport, client_port, p->proto, CT_DIR_REPLY);
	ct = bpf_map_lookup_elem(&ct4, &key);
	if (!ct || now - ct->last_seen_ns > ct_lifetime(ct, p->proto))
		return NULL;
	rn = bpf_map_lookup_elem(&lb4_reverse_nat, &ct->rev_nat_id);
	if (!rn)
		return NULL;
	tr->flags |= TRACE_F_CT_HIT;
	tr->rev_nat_id = ct->rev_nat_id;
	if (!trace && ct_entry_touch(ct, p, now)) {
		/* The client's entry: client -> frontend. */
		ct4_key_make(&key, client, rn->address_be, client_port, rn->port_be, p->proto, CT_DIR_SERVICE);
		ct_touch_twin(&key, now);
	}
	return rn;
}

/*
 * Reply of a masqueraded connection (backend -> node:nat_port): restore both
 * ends, client as destination and the frontend as source. Returns 0 when the
 * packet is not such a reply.
 */
static __always_inline __u32 lb4_snat_reply(struct __sk_buff *skb, const struct pkt4 *p, struct trace_record *tr,
					    bool trace, struct lb_out *out)
{
	struct ct4_key key;
	struct snat4_entry *snat;
	struct lb4_reverse_nat *rn;
	__be32 client;
	__be16 client_port;
	int ret;

	ct4_key_of(&key, p, CT_DIR_SNAT_IN);
	snat = bpf_map_lookup_elem(&snat4, &key);
	if (!snat)
		return 0;
	client = snat->addr_be;
	client_port = snat->port_be;
	rn = lb4_reply_lookup(p, client, client_port, tr, trace, bpf_ktime_get_ns());
	if (!rn)
		return 0;
	tr->flags |= TRACE_F_SNAT_REPLY;
	ret = nat4_rewrite(skb, p, true, client, client_port);
	if (ret >= 0)
		ret = nat4_rewrite(skb, p, false, rn->address_be, rn->port_be);
	if (ret < 0)
		return REASON_DROP_NAT;
	out->redirect = true;
	out->saddr = rn->address_be;
	out->daddr = client;
	return REASON_FWD_SNAT_REVERSE;
}

/*
 * Client -> frontend. Returns a reason: REASON_FWD_* when the packet was
 * translated, REASON_PASS_* when it is not ours, REASON_DROP_* to drop.
 */
static __always_inline __u32 lb4_from_client(struct __sk_buff *skb, const struct pkt4 *p, struct trace_record *tr,
					     bool trace, enum lb_source source, struct lb_out *out)
{
	struct lb_nat_config *nat = lb_nat_config_get();
	struct ct4_key ct_key;
	struct ct_entry *ct;
	struct lb4_service *svc;
	struct lb4_backend *be;
	__u64 now = bpf_ktime_get_ns();
	__u32 backend_id;
	__u32 reason = REASON_FWD_SERVICE_NEW;
	__u8 scope = LB_SCOPE_EXTERNAL;
	bool masquerade;
	__be16 snat_port;
	__u16 frontend_flags;

	if (nat && nat->snat_addr_be && p->daddr == nat->snat_addr_be) {
		reason = lb4_snat_reply(skb, p, tr, trace, out);
		if (reason)
			return reason;
		reason = REASON_FWD_SERVICE_NEW;
	}

	ct4_key_of(&ct_key, p, CT_DIR_SERVICE);
	ct = bpf_map_lookup_elem(&ct4, &ct_key);
	if (ct && ct_entry_live(ct, p, now)) {
		struct snat4_entry *snat = NULL;

		if (ct->flags & CT_F_SNAT) {
			struct ct4_key out_key;

			ct4_key_of(&out_key, p, CT_DIR_SNAT_OUT);
			snat = bpf_map_lookup_elem(&snat4, &out_key);
		}
		be = bpf_map_lookup_elem(&lb4_backends, &ct->backend_id);
		if (be && (snat || !(ct->flags & CT_F_SNAT))) {
			__be32 snat_addr = snat ? snat->addr_be : 0;
			__be16 snat_port = snat ? snat->port_be : 0;

			tr->flags |= TRACE_F_CT_HIT;
			tr->backend_id = ct->backend_id;
			tr->rev_nat_id = ct->rev_nat_id;
			if (!trace && ct_entry_touch(ct, p, now)) {
				struct ct4_key reply_key;

				ct4_key_reply_of(&reply_key, p, be->address_be, be->port_be);
				ct_touch_twin(&reply_key, now);
			}
			reason = lb4_dnat(skb, p, be, REASON_FWD_SERVICE_ESTABLISHED);
			if (!snat || reason != REASON_FWD_SERVICE_ESTABLISHED)
				return reason;
			tr->flags |= TRACE_F_MASQUERADE;
			return lb4_snat(skb, p, snat_addr, snat_port, be, out, reason);
		}
		/* Its backend was removed (or its masquerade entry evicted): choose again below. */
		reason = REASON_FWD_SERVICE_RESELECTED;
	}

	svc = lb4_lookup_service(p, LB_SCOPE_EXTERNAL);
	if (!svc)
		return lb4_no_frontend(p, tr);
	tr->flags |= TRACE_F_FRONTEND;
	tr->rev_nat_id = svc->rev_nat_id;
	frontend_flags = svc->flags;
	if ((svc->flags & LB_SVC_F_SOURCE_RANGES) && !lb4_source_allowed(p))
		return REASON_DROP_SOURCE_RANGE;
	/* eTP=Local: pods, and pods of other nodes (--cluster-cidr), short-circuit
	 * to the cluster-wide set; the node-local set is for outside clients. */
	if ((svc->flags & LB_SVC_F_TWO_SCOPES) && (source == LB_FROM_POD || in_cluster_cidr(nat, p->saddr))) {
		struct lb4_service *internal = lb4_lookup_service(p, LB_SCOPE_INTERNAL);

		if (internal) {
			svc = internal;
			scope = LB_SCOPE_INTERNAL;
		}
	}

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
	masquerade = lb4_needs_masquerade(nat, frontend_flags, p, be);
	/* A traced packet leaves no state: it reports the port it would try first. */
	snat_port = p->sport;
	if (masquerade)
		tr->flags |= TRACE_F_MASQUERADE;
	if (trace)
		goto translate;
	if (masquerade) {
		snat_port = lb4_snat_allocate(p, be, nat->snat_addr_be, now);
		if (!snat_port)
			return REASON_DROP_SNAT_PORT;
	}
	if (svc->flags & LB_SVC_F_AFFINITY)
		lb4_affinity_record(p, svc, now, backend_id);

	{
		struct ct_entry entry = {
			.last_seen_ns = now,
			.created_ns = now,
			.backend_id = backend_id,
			.rev_nat_id = svc->rev_nat_id,
			.flags = masquerade ? CT_F_SNAT : 0,
		};
		struct ct4_key reply_key;

		ct4_key_reply_of(&reply_key, p, be->address_be, be->port_be);

		/* Reply entry first: once the service entry exists, replies must
		 * find theirs. */
		if (bpf_map_update_elem(&ct4, &reply_key, &entry, BPF_ANY) < 0)
			return REASON_DROP_CT_CREATE;
		if (bpf_map_update_elem(&ct4, &ct_key, &entry, BPF_ANY) < 0)
			return REASON_DROP_CT_CREATE;
		svc_conn_count(svc->rev_nat_id);
	}

translate:
	reason = lb4_dnat(skb, p, be, reason);
	if (!masquerade || reason >= REASON_DROP_MIN)
		return reason;
	return lb4_snat(skb, p, nat->snat_addr_be, snat_port, be, out, reason);
}

/* Backend -> client: rewrite the reply's source back to the frontend. */
static __always_inline __u32 lb4_to_client(struct __sk_buff *skb, const struct pkt4 *p, struct trace_record *tr,
					   bool trace)
{
	struct lb4_reverse_nat *rn = lb4_reply_lookup(p, p->daddr, p->dport, tr, trace, bpf_ktime_get_ns());

	if (!rn)
		return REASON_PASS_NOT_SERVICE;
	if (nat4_rewrite(skb, p, false, rn->address_be, rn->port_be) < 0)
		return REASON_DROP_NAT;
	return REASON_FWD_REVNAT;
}

#endif
