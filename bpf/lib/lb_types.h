/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Load-balancer map layouts. These structs are an ABI shared with user space
 * (src/EbpfProxy.Datapath/Maps/LbTypes.cs) and with maps pinned by earlier
 * versions: never reorder or resize a field. Add a versioned map instead.
 * tests/EbpfProxy.Datapath.Tests checks the C# mirrors against this file's BTF.
 *
 * Fields named *_be are in network byte order (the C# side uses distinct
 * NetworkOrder types for them); everything else is host order.
 */
#ifndef EBPF_PROXY_LB_TYPES_H
#define EBPF_PROXY_LB_TYPES_H

#include <linux/types.h>

/* Frontend scope: which traffic a frontend entry applies to (issue 4 adds
 * node-local entries for traffic policies). */
enum lb_scope {
	LB_SCOPE_EXTERNAL = 0,
	LB_SCOPE_INTERNAL = 1,
};

/* Key of lb4_services: one service port frontend and one of its slots.
 * Slot 0 holds the service entry, slots 1..count+terminating name backends. */
struct lb4_key {
	__be32 address_be; /* VIP */
	__be16 port_be; /* frontend port */
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 scope; /* LB_SCOPE_* */
	__u16 slot; /* 0 = service entry, 1.. = backend slot */
	__u16 pad;
};

/* Service entry flags (slot 0). */
enum lb_svc_flags {
	LB_SVC_F_AFFINITY = 1u << 0, /* sessionAffinity ClientIP */
	LB_SVC_F_ETP_LOCAL = 1u << 1, /* externalTrafficPolicy Local */
	LB_SVC_F_ITP_LOCAL = 1u << 2, /* internalTrafficPolicy Local */
	LB_SVC_F_NODEPORT = 1u << 3,
	LB_SVC_F_EXTERNAL_IP = 1u << 4,
	LB_SVC_F_LOADBALANCER = 1u << 5,
	/* A frontend key with port 0 and proto 0 marks an address as a ClusterIP:
	 * traffic to it on a port or protocol no service defines is rejected
	 * (kube-proxy nftables behaviour). Its value carries LB_SVC_F_WILDCARD. */
	LB_SVC_F_WILDCARD = 1u << 6,
	/* eTP Local: this external-scope entry holds the node-local set; pods use the
	 * internal-scope entry of the same frontend (the cluster-wide set). */
	LB_SVC_F_TWO_SCOPES = 1u << 7,
	/* The set is empty only because the applicable traffic policy is Local:
	 * DROP (the load balancer's health check steers traffic), not REJECT. */
	LB_SVC_F_DROP_NO_LOCAL = 1u << 8,
	/* LoadBalancer ingress frontend with loadBalancerSourceRanges: a client must
	 * match an lb4_src_range entry of this frontend, or it is dropped. */
	LB_SVC_F_SOURCE_RANGES = 1u << 9,
};

/* Value of lb4_services. Slot 0: count, terminating_count, rev_nat_id,
 * flags, affinity_timeout; backend_id is 0. Slot n > 0: backend_id only. */
struct lb4_service {
	__u32 backend_id;
	__u16 count; /* active backends, slots 1..count */
	__u16 terminating_count; /* serving+terminating tail, used only when count == 0 */
	__u16 rev_nat_id;
	__u16 flags; /* LB_SVC_F_* */
	__u32 affinity_timeout; /* seconds, when LB_SVC_F_AFFINITY */
};

/* Backend flags. */
enum lb_be_flags {
	LB_BE_F_LOCAL = 1u << 0, /* endpoint runs on this node */
	LB_BE_F_TERMINATING = 1u << 1,
};

/* Value of lb4_backends, keyed by a __u32 backend id (0 is never used). */
struct lb4_backend {
	__be32 address_be;
	__be16 port_be;
	__u8 proto;
	__u8 flags; /* LB_BE_F_* */
	__u8 zone; /* zone index, for topology-aware routing; 0 = unknown */
	__u8 pad[3];
};

/* Value of lb4_reverse_nat, keyed by a __u16 rev-NAT id (0 is never used):
 * what a reply's source is rewritten to. */
struct lb4_reverse_nat {
	__be32 address_be;
	__be16 port_be;
	__u16 pad;
};

/* Value of lb_config (array, one entry): node-wide settings written by the
 * daemon at start-up. */
struct lb_config {
	__be32 service_cidr_be; /* --service-cidr network; 0/0 = not configured */
	__be32 service_mask_be;
	__u32 flags; /* reserved */
	__u32 pad;
};

/* Value of lb_nat_config (array, one entry): masquerade settings, written by
 * the daemon at start-up. A separate map rather than new lb_config fields, so
 * maps pinned by earlier versions keep their layout. */
enum lb_nat_flags {
	LB_NAT_F_MASQUERADE_ALL = 1u << 0, /* --masquerade-all: pod sources too */
};
struct lb_nat_config {
	__be32 snat_addr_be; /* node address masqueraded flows leave with; 0 = none known, no masquerade */
	__be32 cluster_cidr_be; /* --cluster-cidr network; mask 0 = not configured */
	__be32 cluster_mask_be;
	__u32 flags; /* LB_NAT_F_* */
};

/* Key of lb4_src_range (LPM trie): one frontend and a client prefix. prefixlen
 * counts the bits compared from address_be on: always the 64 bits of the
 * frontend, then the leading bits of the source. */
enum lb_src_range_bits { LB_SRC_RANGE_FRONTEND_BITS = 64 };
struct lb4_src_range_key {
	__u32 prefixlen;
	__be32 address_be; /* frontend (LB ingress IP) */
	__be16 port_be;
	__u8 proto;
	__u8 pad;
	__be32 source_be; /* allowed client prefix */
};

/* Value of lb_host_config (array, one entry): the node's own network
 * namespace, whose processes (host network) the socket hooks translate. */
struct lb_host_config {
	__u64 netns_cookie; /* 0 = socket hooks off */
	__u32 flags; /* reserved */
	__u32 pad;
};

/* Key of lb4_sock_revnat: a host socket's translated peer (socket cookie,
 * backend address, port, protocol). */
struct lb4_sock_key {
	__u64 cookie;
	__be32 address_be;
	__be16 port_be;
	__u8 proto;
	__u8 pad;
};

/* Value of lb4_sock_revnat: the frontend the application asked for. */
struct lb4_sock_value {
	__be32 address_be;
	__be16 port_be;
	__u16 rev_nat_id;
};

/* Key of lb4_affinity: a client address pinned to a backend of one service
 * port (sessionAffinity: ClientIP). */
struct lb4_affinity_key {
	__be32 client_be;
	__u16 rev_nat_id;
	__u16 pad;
};

/* Value of lb4_affinity. */
struct lb_affinity_value {
	__u64 last_used_ns; /* bpf_ktime_get_ns() of the last new connection */
	__u32 backend_id;
	__u32 pad;
};

/* Value of lb_names: the service port a rev-NAT id belongs to, for operators
 * ("namespace/name:port"). The datapath never reads it. */
enum lb_name_len { LB_NAME_LEN = 128 };
struct lb_name {
	char name[LB_NAME_LEN];
};

#endif
