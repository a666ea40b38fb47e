/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NetworkPolicy (IPv4), enforced statefully on the pod hooks after the service
 * path: egress at from_pod on the translated flow (destination = the chosen
 * backend and its port), ingress at to_pod (the peer is the packet's sender).
 *
 * Only the packet that opens a connection is judged. An admitted connection
 * gets an entry in pol_ct4 (its own map, policy_types.h) owned by the local pod and keyed by the
 * tuple as that pod sees it, its own address and port first: what it sends
 * before the service path translates it (from_pod), what it receives after
 * the reverse translation (to_pod). Both directions of the connection
 * therefore find the one entry with one lookup, from either hook, whatever
 * the service path rewrote; replies pass for TCP, UDP and SCTP alike. Two
 * local pods talking each own an entry (the client's egress, the server's
 * ingress), so both checks run on the first packet and each side recognises
 * the replies on its own. (Cilium also tracks per endpoint and direction,
 * bpf/lib/conntrack.h; there a reply costs a lookup of the reversed tuple.)
 *
 * The entry also records the real peer (address and port after the service
 * path's translation: the backend a client's packets went to, or the sender
 * of what a server received). A packet going the way the connection was opened whose
 * real peer differs from the entry's is judged again: a service flow that moved
 * to another backend (its backend went away) is a new flow as far as policy goes.
 *
 * The service entries (CT_DIR_SERVICE / CT_DIR_REPLY) are written by
 * lb4_from_client before policy has judged the flow, so they do not say that
 * policy admitted it and are not used here.
 *
 * A pod with no isolation costs one pol_endpoints lookup. An isolated pod's
 * packet costs one more pol_ct4 lookup; a new flow adds the ipcache lookup and one
 * or two rule lookups. A packet without an entry is judged as a new flow, TCP
 * non-SYN included (after a conntrack loss the connection survives when
 * policy admits it either way; Cilium does the same). Traced packets create
 * and refresh nothing.
 */
#ifndef EBPF_PROXY_POLICY_H
#define EBPF_PROXY_POLICY_H

#include "maps.h"
#include "parse.h"
#include "conntrack.h"

/* As ct_entry_live / ct_entry_touch (conntrack.h), for policy entries. */
static __always_inline bool pol_ct_live(const struct pol_ct_entry *e, const struct pkt4 *p, __u64 now)
{
	__u64 lifetime = (e->flags & POL_CT_F_CLOSING) ? CT_LIFETIME_CLOSING
			 : p->proto == IPPROTO_TCP      ? CT_LIFETIME_TCP
							: CT_LIFETIME_NONTCP;

	if (now - e->last_seen_ns > lifetime)
		return false;
	if (p->proto == IPPROTO_TCP && (e->flags & POL_CT_F_CLOSING) &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return false;
	return true;
}

static __always_inline void pol_ct_touch(struct pol_ct_entry *e, const struct pkt4 *p, __u64 now)
{
	if (now - e->last_seen_ns > CT_REFRESH_INTERVAL)
		e->last_seen_ns = now;
	if ((p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) && !(e->flags & POL_CT_F_CLOSING))
		e->flags |= POL_CT_F_CLOSING;
}

/* The identity of a peer address: its longest ipcache prefix, else world. */
static __always_inline __u32 policy_identity_of(__be32 addr)
{
	struct pol_ipcache_key key = {
		.prefix_len = 32,
		.addr_be = addr,
	};
	struct pol_ipcache_entry *e = bpf_map_lookup_elem(&pol_ipcache, &key);

	return e ? e->identity : POL_ID_WORLD;
}

/*
 * Whether an isolated endpoint admits a new flow: a rule for the remote
 * identity, else one for any peer. The key has the full length; the trie
 * finds the entry for the protocol and port block (or every port, or every
 * protocol) that contains the packet's.
 */
static __always_inline __u8 policy_rule_verdict(__u32 endpoint_id, __u32 identity, __u8 dir, __u8 proto, __be16 port)
{
	struct pol_rule_key key = {
		.prefix_len = POL_PREFIX_FULL,
		.endpoint_id = endpoint_id,
		.identity = identity,
		.dir = dir,
		.proto = proto,
		.port_be = port,
	};

	if (bpf_map_lookup_elem(&pol_rules, &key))
		return POL_VERDICT_ALLOW_IDENTITY;
	key.identity = POL_ID_ANY;
	if (bpf_map_lookup_elem(&pol_rules, &key))
		return POL_VERDICT_ALLOW_ANY;
	return POL_VERDICT_DENY;
}

/*
 * Applies the local pod's policy to a packet the service path handled with
 * `reason` (from_pod: the sender's egress; to_pod: the receiver's ingress).
 * Returns `reason`, or the policy drop reason.
 */
static __always_inline __u32 policy4_enforce(struct __sk_buff *skb, const struct pkt4 *p, __u32 reason, bool from_pod,
					     struct trace_record *tr, bool trace)
{
	struct pkt4 post = *p;
	struct pol_endpoint *ep;
	struct ct4_key key;
	struct pol_ct_entry *ct;
	__be32 local, peer;
	__be16 peer_port;
	__u64 now;
	__u8 verdict;

	if (reason >= REASON_DROP_MIN)
		return reason;
	/* The local pod's address is never rewritten on its own hook (from_pod
	 * translates the destination, to_pod the source): a pod without isolation
	 * costs this one lookup and nothing else. */
	local = from_pod ? p->saddr : p->daddr;
	ep = bpf_map_lookup_elem(&pol_endpoints, &local);
	if (!ep || !(ep->flags & (POL_EP_F_INGRESS_ISOLATED | POL_EP_F_EGRESS_ISOLATED)))
		return reason;
	tr->policy_endpoint = ep->endpoint_id;
	/* The service path rewrote the packet: read the flow as translated. */
	if (reason != REASON_PASS_NOT_SERVICE && parse_ipv4_linear(skb, &post) != PARSE_OK)
		return REASON_DROP_INVALID;

	/* The real peer: where the pod's packet goes after translation, or who sent
	 * what it receives, before the reverse translation. */
	peer = from_pod ? post.daddr : p->saddr;
	peer_port = from_pod ? post.dport : p->sport;
	if (from_pod)
		ct4_key_make(&key, p->saddr, p->daddr, p->sport, p->dport, p->proto, CT_DIR_POLICY);
	else
		ct4_key_make(&key, post.daddr, post.saddr, post.dport, post.sport, post.proto, CT_DIR_POLICY);
	now = bpf_ktime_get_ns();
	ct = bpf_map_lookup_elem(&pol_ct4, &key);
	/* The real peer is compared only for packets going the way the connection
	 * was opened (a client's packets after a backend change are judged again).
	 * A reply needs only the key: its sender may be shown differently on the
	 * way back (a masqueraded reply is restored before the client's to_pod,
	 * a server replies to the node address it was reached from). */
	if (ct && pol_ct_live(ct, p, now) &&
	    (from_pod == !!(ct->flags & POL_CT_F_INBOUND) || (ct->peer_be == peer && ct->peer_port_be == peer_port))) {
		tr->policy_verdict = POL_VERDICT_TRACKED;
		if (!trace)
			pol_ct_touch(ct, p, now);
		return reason;
	}

	if (!(ep->flags & (from_pod ? POL_EP_F_EGRESS_ISOLATED : POL_EP_F_INGRESS_ISOLATED))) {
		/* Open in this direction; tracked so that the other one admits the replies. */
		verdict = POL_VERDICT_NOT_ISOLATED;
	} else {
		__u32 identity = policy_identity_of(peer);

		tr->policy_identity = identity;
		if (!from_pod && identity == POL_ID_HOST)
			verdict = POL_VERDICT_ALLOW_HOST; /* kubelet probes */
		else
			verdict = policy_rule_verdict(ep->endpoint_id, identity, from_pod ? POL_DIR_EGRESS : POL_DIR_INGRESS,
						      post.proto, post.dport);
	}
	tr->policy_verdict = verdict;
	if (verdict == POL_VERDICT_DENY)
		return from_pod ? REASON_DROP_POLICY_EGRESS : REASON_DROP_POLICY_INGRESS;
	if (!trace) {
		struct pol_ct_entry entry = {
			.last_seen_ns = now,
			.created_ns = now,
			.peer_be = peer,
			.peer_port_be = peer_port,
			.flags = from_pod ? 0 : POL_CT_F_INBOUND,
		};

		if (bpf_map_update_elem(&pol_ct4, &key, &entry, BPF_ANY) < 0)
			return REASON_DROP_CT_CREATE;
	}
	return reason;
}

/*
 * IPv4 packets the service path does not parse: ICMP and other protocols
 * (fragments of TCP/UDP/SCTP are judged like their first, lib/frag.h; ICMP
 * errors quoting a TCP/UDP/SCTP packet by the connection they are about,
 * policy4_icmp_error in lib/icmp.h). An isolated pod admits, in the isolated
 * direction, such a packet (ICMP echo, an error about an echo, other
 * protocols) only under a rule that admits every protocol from that peer (a
 * rule without ports), since NetworkPolicy can name no other protocol. Such
 * packets are not tracked: an echo reply to an ingress-isolated pod needs that
 * rule too. from_pod judges the sender's egress, to_pod the receiver's ingress.
 */
static __always_inline __u32 policy4_unparsed(struct __sk_buff *skb, __u32 reason, bool from_pod, struct trace_record *tr)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct pol_endpoint *ep;
	__be32 local, peer;
	__u32 identity;
	__u8 verdict;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return reason;
	local = from_pod ? ip->saddr : ip->daddr;
	peer = from_pod ? ip->daddr : ip->saddr;
	ep = bpf_map_lookup_elem(&pol_endpoints, &local);
	if (!ep || !(ep->flags & (from_pod ? POL_EP_F_EGRESS_ISOLATED : POL_EP_F_INGRESS_ISOLATED)))
		return reason;
	tr->policy_endpoint = ep->endpoint_id;
	identity = policy_identity_of(peer);
	tr->policy_identity = identity;
	if (!from_pod && identity == POL_ID_HOST)
		verdict = POL_VERDICT_ALLOW_HOST;
	else
		verdict = policy_rule_verdict(ep->endpoint_id, identity, from_pod ? POL_DIR_EGRESS : POL_DIR_INGRESS,
					      ip->protocol, 0);
	tr->policy_verdict = verdict;
	if (verdict == POL_VERDICT_DENY)
		return from_pod ? REASON_DROP_POLICY_EGRESS : REASON_DROP_POLICY_INGRESS;
	return reason;
}

#endif
