/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing: bounds-checked before every access. */
#ifndef EBPF_PROXY_PARSE_H
#define EBPF_PROXY_PARSE_H

#include "common.h"

/* What the datapath needs to know of an IPv4 TCP/UDP packet. */
struct pkt4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* TCP: FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10 */
	__u16 l4_off; /* offset of the TCP/UDP header from the start of the frame; 0 = none (a later fragment) */
	__be16 ip_id; /* fragments: the IP identification */
	__u8 frag; /* PKT_FRAG_* */
	__u8 pad;
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* pkt4.frag */
#define PKT_FRAG_NONE 0
#define PKT_FRAG_FIRST 1 /* offset 0, more fragments: carries the L4 header */
#define PKT_FRAG_LATER 2 /* offset > 0: no L4 header; ports come from frag4 (lib/frag.h) */

enum parse_result {
	PARSE_OK = 0,
	PARSE_SKIP, /* not IPv4, or not TCP/UDP/SCTP: not ours to touch */
	PARSE_INVALID, /* claims to be IPv4 TCP/UDP but the headers are cut short */
	PARSE_FRAGMENT, /* a later fragment: addresses, protocol and IP id only */
	PARSE_SHORT, /* a header is outside the linear area (parse_ipv4 pulls it in) */
};

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* How much parse_ipv4 pulls into the linear area when a header is not there:
 * Ethernet, the largest IPv4 header, and a TCP header without options (the
 * UDP and SCTP headers are shorter). */
#define PULL_LEN (sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr))

/* Parses the headers in the linear area; PARSE_SHORT when one is beyond it. */
static __always_inline enum parse_result parse_ipv4_linear(struct __sk_buff *skb, struct pkt4 *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 ihl_len;

	if ((void *)(eth + 1) > data_end)
		return skb->len >= sizeof(*eth) ? PARSE_SHORT : PARSE_SKIP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_SKIP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PARSE_SHORT;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_INVALID;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_SCTP)
		return PARSE_SKIP;

	ihl_len = ip->ihl * 4;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->l4_off = sizeof(struct ethhdr) + ihl_len;
	p->tcp_flags = 0;
	p->frag = PKT_FRAG_NONE;
	/* Fragments (bpf/README.md, "Fragments"): the first carries the ports, the
	 * others get them from frag4. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
		p->ip_id = ip->id;
		if (ip->frag_off & bpf_htons(IP_OFFSET)) {
			p->frag = PKT_FRAG_LATER;
			p->l4_off = 0;
			p->sport = 0;
			p->dport = 0;
			return PARSE_FRAGMENT;
		}
		p->frag = PKT_FRAG_FIRST;
	}

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)ip + ihl_len;

		if ((void *)(tcp + 1) > data_end)
			return PARSE_SHORT;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
	} else {
		/* UDP and SCTP both start with the source and destination ports; an SCTP
		 * common header is 12 bytes, a UDP header 8. */
		struct udphdr *udp = (void *)ip + ihl_len;
		__u32 need = ip->protocol == IPPROTO_SCTP ? 12 : sizeof(*udp);

		if ((void *)udp + need > data_end)
			return PARSE_SHORT;
		p->sport = udp->source;
		p->dport = udp->dest;
	}
	return PARSE_OK;
}

/*
 * Parses an IPv4 TCP/UDP/SCTP packet. A header outside the linear area (a
 * GRO'd or otherwise non-linear skb) is pulled in with bpf_skb_pull_data, as
 * Cilium's revalidate_data_pull does, and parsed again; a packet too short for
 * its headers is invalid. The pull costs nothing when the headers are linear.
 * Invalidates packet pointers.
 */
static __always_inline enum parse_result parse_ipv4(struct __sk_buff *skb, struct pkt4 *p)
{
	enum parse_result r = parse_ipv4_linear(skb, p);

	if (r == PARSE_SHORT) {
		__u32 want = skb->len < PULL_LEN ? skb->len : PULL_LEN;

		if (skb->data_end - skb->data >= want || bpf_skb_pull_data(skb, want) < 0)
			return PARSE_INVALID;
		r = parse_ipv4_linear(skb, p);
		if (r == PARSE_SHORT)
			r = PARSE_INVALID;
	}
	return r;
}

#endif
