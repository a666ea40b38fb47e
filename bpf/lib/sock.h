/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Services for the node's own processes (host network). Their packets never
 * cross a pod veth and, to a ClusterIP, may leave on no device we see, so the
 * frontend is translated where the application names it: at connect() and
 * sendmsg() (cgroup sock_addr hooks), the way Cilium's socket load balancer
 * works. No per-packet NAT follows; recvmsg() and getpeername() show the
 * application the frontend again.
 *
 * kube-proxy's rules for a node source: the cluster-wide set (eTP Local does
 * not apply), iTP Local still applies to ClusterIPs; the connection leaves
 * with the node's address, which is what masquerading gives it. Only sockets
 * of the namespace named in lb_host_config are touched: pods have their own
 * namespaces and keep the tc path.
 *
 * The rules of the tc path apply, with the same reasons, counted in the
 * metrics map (direction ingress, no bytes): an address inside --service-cidr
 * that is no ClusterIP fails with EHOSTUNREACH (unallocated_service_ip), a
 * ClusterIP on a port it does not define with ECONNREFUSED
 * (reject_undefined_port), and a LoadBalancer frontend whose
 * loadBalancerSourceRanges exclude the node with EPERM (lb_source_range). The
 * node's source is the socket's bound address, else the masquerade address
 * (the node's primary address, which the connection leaves with).
 */
#ifndef EBPF_PROXY_SOCK_H
#define EBPF_PROXY_SOCK_H

#include "lb.h"

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif
#ifndef EHOSTUNREACH
#define EHOSTUNREACH 113
#endif
#ifndef EPERM
#define EPERM 1
#endif

/* Counts a socket hook's decision under the tc path's reason (no packet, no bytes). */
static __always_inline void sock4_count(__u32 reason)
{
	__u32 idx = (reason & (REASON_MAX - 1)) * METRICS_DIR_MAX + METRICS_DIR_INGRESS;
	struct metrics_value *v = bpf_map_lookup_elem(&metrics, &idx);

	if (v)
		v->packets++;
}

/* Fails the call with -err, counting the reason. */
static __always_inline int sock4_fail(__u32 reason, int err)
{
	sock4_count(reason);
	bpf_set_retval(-err);
	return 0;
}

/* The address a node socket's packets leave with (see above). */
static __always_inline __be32 sock4_source(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct lb_nat_config *nat;

	if (sk && sk->src_ip4)
		return sk->src_ip4;
	nat = lb_nat_config_get();
	return nat ? nat->snat_addr_be : 0;
}

static __always_inline bool sock4_ours(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct lb_host_config *cfg = bpf_map_lookup_elem(&lb_host_config, &zero);

	return cfg && cfg->netns_cookie && bpf_get_netns_cookie(ctx) == cfg->netns_cookie;
}

/* connect() / sendmsg(): a frontend becomes one of its backends. Returns the
 * sock_addr verdict (1 = go on, 0 = fail the call with the retval set). */
static __always_inline int sock4_translate(struct bpf_sock_addr *ctx)
{
	struct pkt4 p = {};
	struct lb4_service *svc;
	struct lb4_backend *be;
	__u32 backend_id;
	__u8 scope = LB_SCOPE_EXTERNAL;

	if (!sock4_ours(ctx))
		return 1;
	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	p.daddr = ctx->user_ip4;
	p.dport = (__be16)ctx->user_port;
	p.proto = ctx->protocol;
	svc = lb4_lookup_service(&p, LB_SCOPE_EXTERNAL);
	if (!svc) {
		struct trace_record tr = {};
		__u32 reason = lb4_no_frontend(&p, &tr);

		/* A known ClusterIP on a port it does not define: refused, as the tc path
		 * rejects; an unallocated address of the service CIDR: unreachable, as
		 * the tc path drops. */
		if (reason == REASON_REJECT_NO_PORT)
			return sock4_fail(reason, ECONNREFUSED);
		if (reason == REASON_DROP_UNALLOCATED_VIP)
			return sock4_fail(reason, EHOSTUNREACH);
		return 1;
	}
	if (svc->flags & LB_SVC_F_SOURCE_RANGES) {
		p.saddr = sock4_source(ctx);
		if (!lb4_source_allowed(&p))
			return sock4_fail(REASON_DROP_SOURCE_RANGE, EPERM);
	}
	/* The node is no external client: eTP Local's cluster-wide set. */
	if (svc->flags & LB_SVC_F_TWO_SCOPES) {
		struct lb4_service *internal = lb4_lookup_service(&p, LB_SCOPE_INTERNAL);

		if (internal) {
			svc = internal;
			scope = LB_SCOPE_INTERNAL;
		}
	}
	backend_id = lb4_select_backend(&p, svc, scope);
	if (!backend_id) {
		/* REJECT, or DROP for a Local policy without local endpoint: a socket
		 * cannot wait for a timeout, so it fails at once either way. */
		if (svc->flags & LB_SVC_F_DROP_NO_LOCAL)
			return sock4_fail(REASON_DROP_NO_LOCAL_ENDPOINT, EHOSTUNREACH);
		return sock4_fail(REASON_REJECT_NO_ENDPOINT, ECONNREFUSED);
	}
	be = bpf_map_lookup_elem(&lb4_backends, &backend_id);
	if (!be)
		return 1;
	{
		struct lb4_sock_key key = {
			.cookie = bpf_get_socket_cookie(ctx),
			.address_be = be->address_be,
			.port_be = be->port_be,
			.proto = p.proto,
		};
		struct lb4_sock_value frontend = {
			.address_be = p.daddr,
			.port_be = p.dport,
			.rev_nat_id = svc->rev_nat_id,
		};

		/* A connection is counted once per socket and backend: an unconnected
		 * UDP socket's later datagrams (sendmsg) find their entry. */
		if (bpf_map_update_elem(&lb4_sock_revnat, &key, &frontend, BPF_NOEXIST) == 0)
			svc_conn_count(svc->rev_nat_id);
		else
			bpf_map_update_elem(&lb4_sock_revnat, &key, &frontend, BPF_ANY);
	}
	ctx->user_ip4 = be->address_be;
	ctx->user_port = (__u32)be->port_be;
	return 1;
}

/* recvmsg() / getpeername(): a translated peer is shown as its frontend. */
static __always_inline int sock4_reverse(struct bpf_sock_addr *ctx)
{
	struct lb4_sock_key key = {};
	struct lb4_sock_value *frontend;

	if (!sock4_ours(ctx))
		return 1;
	key.cookie = bpf_get_socket_cookie(ctx);
	key.address_be = ctx->user_ip4;
	key.port_be = (__be16)ctx->user_port;
	key.proto = ctx->protocol;
	frontend = bpf_map_lookup_elem(&lb4_sock_revnat, &key);
	if (frontend) {
		ctx->user_ip4 = frontend->address_be;
		ctx->user_port = (__u32)frontend->port_be;
	}
	return 1;
}

#endif
