/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NetworkPolicy map layouts (docs/policy.md). ABI rules as in lb_types.h;
 * the C# mirrors are src/EbpfProxy.Datapath/Maps/PolicyTypes.cs.
 *
 * A remote peer is judged by a numeric identity looked up in pol_ipcache; a
 * local pod by its entry in pol_endpoints; what an isolated pod admits is the
 * set of pol_rules entries under its endpoint id.
 */
#ifndef EBPF_PROXY_POLICY_TYPES_H
#define EBPF_PROXY_POLICY_TYPES_H

#include <linux/types.h>

/* Identities. 3..255 are reserved, 256.. are allocated by the daemon. */
enum pol_id {
	POL_ID_ANY = 0, /* wildcard, in rule keys only */
	POL_ID_HOST = 1, /* this node's own addresses */
	POL_ID_WORLD = 2, /* no ipcache entry matched */
	POL_ID_FIRST_ALLOCATED = 256,
};

/* pol_rules dir, and which side of a connection a check judges. */
enum pol_dir {
	POL_DIR_INGRESS = 1,
	POL_DIR_EGRESS = 2,
};

/* Key of pol_ipcache (LPM trie): a prefix of the address. */
struct pol_ipcache_key {
	__u32 prefix_len; /* 0..32 */
	__be32 addr_be;
};

/* Value of pol_ipcache. */
struct pol_ipcache_entry {
	__u32 identity; /* never POL_ID_ANY */
	__u32 flags; /* reserved */
};

/* Endpoint flags: the directions in which some policy isolates the pod. */
enum pol_ep_flags {
	POL_EP_F_INGRESS_ISOLATED = 1u << 0,
	POL_EP_F_EGRESS_ISOLATED = 1u << 1,
};

/* Value of pol_endpoints, keyed by a local pod's address (__be32). */
struct pol_endpoint {
	__u32 endpoint_id; /* names its rules in pol_rules; never 0 */
	__u32 identity; /* the pod's own identity (for operators) */
	__u32 flags; /* POL_EP_F_* */
};

/*
 * Key of pol_rules (LPM trie). The prefix always covers endpoint_id, identity
 * and dir (POL_PREFIX_ALL), then proto (POL_PREFIX_PROTO) and the leading bits
 * of the port in network order (up to POL_PREFIX_FULL): every port and
 * protocol, every port of one protocol, or an aligned block of ports. As in
 * Cilium's policy map (bpf/lib/policy.h), identity cannot be wildcarded by the
 * prefix: a second lookup with identity POL_ID_ANY does that. Lookups always
 * use the full length.
 */
struct pol_rule_key {
	__u32 prefix_len;
	__u32 endpoint_id;
	__u32 identity; /* remote identity, or POL_ID_ANY */
	__u8 dir; /* POL_DIR_* */
	__u8 proto; /* IPPROTO_TCP / UDP / SCTP */
	__be16 port_be; /* destination port: the local pod's (ingress) or the peer's (egress) */
};

enum pol_prefix {
	POL_PREFIX_ALL = 72,
	POL_PREFIX_PROTO = 80,
	POL_PREFIX_FULL = 96,
};

/* Value of pol_rules: presence admits. */
struct pol_rule {
	__u32 flags; /* reserved */
};

/*
 * Values of the operator-only maps pol_ep_names and pol_id_names: what
 * `ebpf-proxy policy get` and `ebpf-proxy ipcache list` print, since the maps
 * above hold numbers only. The datapath never reads them. Text is UTF-8,
 * NUL-padded, always NUL-terminated; a text too long for its field is cut at a
 * character boundary and ends in "...".
 */
enum pol_ep_name_len { POL_EP_NAME_LEN = 320 }; /* "namespace/name": 63 + 1 + 253 fit */

/* Value of pol_ep_names, keyed by a local pod's address (__be32) like
 * pol_endpoints, but for every local pod, isolated or not. */
struct pol_ep_name {
	__u32 endpoint_id; /* the pod's endpoint id (pol_rules), never 0 */
	char name[POL_EP_NAME_LEN]; /* "namespace/name" */
};

enum pol_id_name_len { POL_ID_NAME_LEN = 512 };

/* Value of pol_id_names, keyed by an allocated identity (__u32): what it
 * stands for, e.g. "pod ns=x labels=[pod=a] ns-labels=[...]" or
 * "cidr [10.0.0.0/8,10.1.0.0/16]" (Core's IdentityKey text). */
struct pol_id_name {
	char text[POL_ID_NAME_LEN];
};

/*
 * Value of pol_ct4, the policy conntrack map: one connection a local pod's
 * policy admitted. Its key is a struct ct4_key (conntrack_types.h) with dir
 * CT_DIR_POLICY, the pod's own address and port first. A map of its own, so a
 * flood of service flows in ct4 never evicts an admitted connection (whose
 * replies would then be judged as new flows). Versions before pol_ct4 kept
 * these entries in ct4 (peer in backend_id / rev_nat_id, CT_F_POLICY_INBOUND);
 * the loader moves them over on upgrade.
 */
enum pol_ct_flags {
	POL_CT_F_INBOUND = 1u << 0, /* the peer opened the connection (else the pod did) */
	POL_CT_F_CLOSING = 1u << 1, /* FIN or RST seen */
};

struct pol_ct_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() of the last refresh */
	__u64 created_ns;
	__be32 peer_be; /* the real peer: the backend the pod's packets went to, or the sender */
	__be16 peer_port_be;
	__u16 flags; /* POL_CT_F_* */
};

/* trace_record.policy_verdict: how policy treated a traced packet. */
enum pol_verdict {
	POL_VERDICT_NONE = 0, /* the local pod has no isolation: not looked at */
	POL_VERDICT_TRACKED = 1, /* a connection the pod's policy admitted earlier */
	POL_VERDICT_NOT_ISOLATED = 2, /* new flow, this direction is open (tracked for the other one) */
	POL_VERDICT_ALLOW_IDENTITY = 3, /* a rule for the remote identity admits it */
	POL_VERDICT_ALLOW_ANY = 4, /* a rule for any peer (identity 0) admits it */
	POL_VERDICT_ALLOW_HOST = 5, /* ingress from this node, always admitted */
	POL_VERDICT_DENY = 6, /* isolated, no rule admits it */
};

#endif
