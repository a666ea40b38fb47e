/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors (destination unreachable, fragmentation needed included; time
 * exceeded; parameter problem) about translated connections. An error quotes
 * the IP header and at least the first 8 L4 bytes of the packet that caused it
 * (RFC 792), as that packet was on the wire: after our DNAT and masquerade.
 * The client's kernel matches an error to a socket by that quoted tuple only
 * (tcp_v4_err, __udp4_lib_err), so unless the quote is translated back the
 * client never learns of a path MTU, a refused port or a routing loop.
 *
 * As Cilium does (bpf/lib/nat.h, snat_v4_rev_nat: ICMP_DEST_UNREACH and
 * ICMP_TIME_EXCEEDED look up the mapping with the quoted tuple reversed, then
 * rewrite the quoted addresses and ports and the outer header; lb.h's reverse
 * NAT does the same for service flows), the quoted tuple is what the
 * connection's tracking is keyed by:
 *  - to_pod / to_netdev (lb4_to_client's place): the quote is client -> backend;
 *    the reply entry (backend -> client) gives the frontend, which replaces the
 *    quoted destination, and the outer source when the backend itself sent the
 *    error (a router on the path keeps its own address).
 *  - from_pod / from_netdev, addressed to the masquerade address (where
 *    lb4_snat_reply runs): the quote is node:nat_port -> backend; snat4
 *    (CT_DIR_SNAT_IN) gives the client, the reply entry the frontend. Quoted
 *    source and destination, the outer destination (the client) and, when the
 *    backend sent it, the outer source are restored; the packet is then
 *    forwarded like a masqueraded reply (fib.h).
 *
 * Checksums: the outer IP header's incrementally; the quoted IP header's is
 * recomputed; the ICMP checksum, which covers the quote, gets the difference
 * of the quoted bytes (bpf_csum_diff). The quoted L4 checksum is left as it
 * was, as Cilium leaves it: the quote is usually cut short (a TCP checksum is
 * beyond the 8 bytes RFC 792 guarantees) and no receiver verifies it.
 *
 * Only quotes with a plain 20-byte IP header of TCP, UDP or SCTP, not a later
 * fragment, are translated. Nothing here writes a map.
 */
#ifndef EBPF_PROXY_ICMP_H
#define EBPF_PROXY_ICMP_H

#include "common.h"
#include "parse.h"
#include "nat.h"
#include "lb.h"
#include "reject.h"
#include "policy.h"

#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* The quoted headers of an ICMP error, as stored in the packet. */
struct icmp4_quote {
	struct iphdr ip;
	__be16 sport;
	__be16 dport;
};

/* An ICMP error about a TCP/UDP/SCTP packet. */
struct icmp4_err {
	__be32 outer_saddr;
	__be32 outer_daddr;
	__u32 icmp_off; /* offset of the ICMP header in the frame */
	__u32 quote_off; /* offset of the quoted IP header */
	struct icmp4_quote q;
};

static __always_inline bool icmp4_is_error_type(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

enum icmp4_parse_result {
	ICMP4_NOT_ERROR = 0, /* not ICMP, not an error, or a fragment */
	ICMP4_ERROR_OTHER, /* an error whose quote names no TCP/UDP/SCTP tuple we can use */
	ICMP4_ERROR_TUPLE, /* an error quoting a TCP/UDP/SCTP tuple: e->q is filled */
};

/*
 * Reads an IPv4 ICMP error and its quote with bpf_skb_load_bytes (the quote
 * may lie outside the linear area). Fills the outer addresses for every error.
 */
static __always_inline enum icmp4_parse_result icmp4_error_parse(struct __sk_buff *skb, struct icmp4_err *e)
{
	struct ethhdr eth;
	struct iphdr ip;
	__u8 type;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0 || eth.h_proto != bpf_htons(ETH_P_IP))
		return ICMP4_NOT_ERROR;
	if (bpf_skb_load_bytes(skb, sizeof(eth), &ip, sizeof(ip)) < 0)
		return ICMP4_NOT_ERROR;
	if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_ICMP || (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return ICMP4_NOT_ERROR;
	e->outer_saddr = ip.saddr;
	e->outer_daddr = ip.daddr;
	e->icmp_off = sizeof(eth) + ip.ihl * 4;
	if (bpf_skb_load_bytes(skb, e->icmp_off, &type, 1) < 0 || !icmp4_is_error_type(type))
		return ICMP4_NOT_ERROR;
	e->quote_off = e->icmp_off + sizeof(struct icmp4_error);
	if (bpf_skb_load_bytes(skb, e->quote_off, &e->q, sizeof(e->q)) < 0)
		return ICMP4_ERROR_OTHER;
	if (e->q.ip.version != 4 || e->q.ip.ihl != 5 || (e->q.ip.frag_off & bpf_htons(IP_OFFSET)))
		return ICMP4_ERROR_OTHER;
	if (e->q.ip.protocol != IPPROTO_TCP && e->q.ip.protocol != IPPROTO_UDP && e->q.ip.protocol != IPPROTO_SCTP)
		return ICMP4_ERROR_OTHER;
	return ICMP4_ERROR_TUPLE;
}

/* The quoted packet as a pkt4 (for conntrack keys and policy). */
static __always_inline void icmp4_quote_pkt(const struct icmp4_err *e, struct pkt4 *q)
{
	q->saddr = e->q.ip.saddr;
	q->daddr = e->q.ip.daddr;
	q->sport = e->q.sport;
	q->dport = e->q.dport;
	q->proto = e->q.ip.protocol;
	q->tcp_flags = 0;
	q->l4_off = 0;
	q->frag = PKT_FRAG_NONE;
}

/* The reply the quoted packet's connection would get: the quote reversed. */
static __always_inline void icmp4_quote_reply(const struct icmp4_err *e, struct pkt4 *r)
{
	icmp4_quote_pkt(e, r);
	r->saddr = e->q.ip.daddr;
	r->daddr = e->q.ip.saddr;
	r->sport = e->q.dport;
	r->dport = e->q.sport;
}

/* Rewrites one outer address, with the outer IP checksum (ICMP has no pseudo-header). */
static __always_inline int icmp4_outer_rewrite(struct __sk_buff *skb, bool dst, __be32 from, __be32 to)
{
	if (from == to)
		return 0;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, to, sizeof(to)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, dst ? IP_DST_OFF : IP_SRC_OFF, &to, sizeof(to), 0);
}

/*
 * Replaces the quoted source and destination (address and port), recomputes
 * the quoted IP header checksum and moves the ICMP checksum by the difference.
 * e->q then holds the new quote.
 */
static __always_inline int icmp4_quote_rewrite(struct __sk_buff *skb, struct icmp4_err *e, __be32 saddr,
					       __be16 sport, __be32 daddr, __be16 dport)
{
	struct icmp4_quote q = e->q;
	__s64 sum;

	q.ip.saddr = saddr;
	q.ip.daddr = daddr;
	q.sport = sport;
	q.dport = dport;
	q.ip.check = 0;
	sum = bpf_csum_diff(0, 0, (__be32 *)&q.ip, sizeof(q.ip), 0);
	if (sum < 0)
		return -1;
	q.ip.check = csum_fold32(sum);
	sum = bpf_csum_diff((__be32 *)&e->q, sizeof(e->q), (__be32 *)&q, sizeof(q), 0);
	if (sum < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, e->quote_off, &q, sizeof(q), 0) < 0)
		return -1;
	e->q = q;
	/* Size 0: "to" is a checksum difference; no pseudo-header. */
	return bpf_l4_csum_replace(skb, e->icmp_off + offsetof(struct icmp4_error, checksum), 0, sum, 0);
}

/*
 * to_pod / to_netdev: an error about a client's service connection (quote:
 * client -> backend). Returns REASON_FWD_ICMP_REVNAT when translated, 0 when
 * the quote names no tracked service connection.
 */
static __always_inline __u32 icmp4_error_to_client(struct __sk_buff *skb, struct icmp4_err *e,
						   struct trace_record *tr)
{
	struct pkt4 reply;
	struct lb4_reverse_nat *rn;

	icmp4_quote_reply(e, &reply);
	/* Looked up as a reply would be, without refreshing the connection. */
	rn = lb4_reply_lookup(&reply, reply.daddr, reply.dport, tr, true, bpf_ktime_get_ns());
	if (!rn)
		return 0;
	if (e->outer_saddr == e->q.ip.daddr && icmp4_outer_rewrite(skb, false, e->outer_saddr, rn->address_be) < 0)
		return REASON_DROP_NAT;
	if (icmp4_quote_rewrite(skb, e, e->q.ip.saddr, e->q.sport, rn->address_be, rn->port_be) < 0)
		return REASON_DROP_NAT;
	return REASON_FWD_ICMP_REVNAT;
}

/*
 * from_pod / from_netdev: an error addressed to the masquerade address about a
 * masqueraded connection (quote: node:nat_port -> backend). Returns
 * REASON_FWD_ICMP_SNAT_REVERSE when translated (out asks for the redirect), 0
 * when the quote names no masqueraded connection.
 */
static __always_inline __u32 icmp4_error_snat_reply(struct __sk_buff *skb, struct icmp4_err *e,
						    struct trace_record *tr, struct lb_out *out)
{
	struct lb_nat_config *nat = lb_nat_config_get();
	struct pkt4 reply;
	struct lb4_reverse_nat *rn;
	struct snat4_entry *snat;
	struct ct4_key key;
	__be32 client, outer_src;
	__be16 client_port;

	if (!nat || !nat->snat_addr_be || e->outer_daddr != nat->snat_addr_be || e->q.ip.saddr != nat->snat_addr_be)
		return 0;
	/* backend -> node:nat_port, as the connection's replies arrive. */
	icmp4_quote_reply(e, &reply);
	ct4_key_of(&key, &reply, CT_DIR_SNAT_IN);
	snat = bpf_map_lookup_elem(&snat4, &key);
	if (!snat)
		return 0;
	client = snat->addr_be;
	client_port = snat->port_be;
	rn = lb4_reply_lookup(&reply, client, client_port, tr, true, bpf_ktime_get_ns());
	if (!rn)
		return 0;
	tr->flags |= TRACE_F_SNAT_REPLY;
	outer_src = e->outer_saddr == e->q.ip.daddr ? rn->address_be : e->outer_saddr;
	if (icmp4_quote_rewrite(skb, e, client, client_port, rn->address_be, rn->port_be) < 0 ||
	    icmp4_outer_rewrite(skb, true, e->outer_daddr, client) < 0 ||
	    icmp4_outer_rewrite(skb, false, e->outer_saddr, outer_src) < 0)
		return REASON_DROP_NAT;
	out->redirect = true;
	out->saddr = outer_src;
	out->daddr = client;
	return REASON_FWD_ICMP_SNAT_REVERSE;
}

/*
 * NetworkPolicy for an ICMP error on a pod hook: it belongs to the connection
 * it quotes. `conn` is that connection as the local pod sees it, the pod
 * first (to_pod: the translated-back quote, which the pod sent; from_pod: the
 * quote reversed, the pod having received the quoted packet), so the pol_ct4
 * key is the one the connection's own packets use. An error about a
 * connection the pod's policy admitted (or tracked for the open direction)
 * passes; any other error reaching or leaving a pod isolated in that
 * direction is dropped (REASON_DROP_POLICY_ICMP_UNRELATED), so a forged or
 * stray error cannot reach an isolated pod. Refreshes nothing.
 */
static __always_inline __u32 policy4_icmp_error(__be32 local, const struct pkt4 *conn, __u32 reason, bool from_pod,
						struct trace_record *tr)
{
	struct pol_endpoint *ep;
	struct pol_ct_entry *ct;
	struct ct4_key key;

	if (reason >= REASON_DROP_MIN)
		return reason;
	ep = bpf_map_lookup_elem(&pol_endpoints, &local);
	if (!ep || !(ep->flags & (from_pod ? POL_EP_F_EGRESS_ISOLATED : POL_EP_F_INGRESS_ISOLATED)))
		return reason;
	tr->policy_endpoint = ep->endpoint_id;
	if (conn->saddr == local) {
		ct4_key_make(&key, conn->saddr, conn->daddr, conn->sport, conn->dport, conn->proto, CT_DIR_POLICY);
		ct = bpf_map_lookup_elem(&pol_ct4, &key);
		if (ct && pol_ct_live(ct, conn, bpf_ktime_get_ns())) {
			tr->policy_verdict = POL_VERDICT_TRACKED;
			return reason;
		}
	}
	tr->policy_identity = policy_identity_of(conn->daddr);
	tr->policy_verdict = POL_VERDICT_DENY;
	return REASON_DROP_POLICY_ICMP_UNRELATED;
}

/*
 * The hooks' entry point for ICMP errors quoting a TCP/UDP/SCTP packet:
 * translation back (towards_node: masquerade reverse; otherwise reverse DNAT),
 * then, on pod hooks, policy by the quoted connection. `p` gets the outer
 * addresses for drop events.
 */
static __always_inline __u32 icmp4_error_handle(struct __sk_buff *skb, struct icmp4_err *e, struct pkt4 *p,
						bool towards_node, enum lb_source source, struct trace_record *tr,
						struct lb_out *out)
{
	struct icmp4_quote before = e->q;
	__be32 sender = e->outer_saddr;
	struct pkt4 conn = {};
	__u32 reason;

	p->saddr = e->outer_saddr;
	p->daddr = e->outer_daddr;
	p->proto = IPPROTO_ICMP;
	reason = towards_node ? icmp4_error_snat_reply(skb, e, tr, out) : icmp4_error_to_client(skb, e, tr);
	if (!reason)
		reason = REASON_PASS_UNSUPPORTED;
	if (source != LB_FROM_POD)
		return reason;
	if (towards_node) {
		/* The pod sends an error about a packet it received: reversed, pre-translation. */
		conn.saddr = before.ip.daddr;
		conn.daddr = before.ip.saddr;
		conn.sport = before.dport;
		conn.dport = before.sport;
		conn.proto = before.ip.protocol;
		return policy4_icmp_error(sender, &conn, reason, true, tr);
	}
	/* The pod receives an error about a packet it sent: the quote, translated back. */
	icmp4_quote_pkt(e, &conn);
	return policy4_icmp_error(e->outer_daddr, &conn, reason, false, tr);
}

#endif
