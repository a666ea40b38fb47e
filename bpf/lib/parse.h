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
	__u16 l4_off; /* offset of the TCP/UDP header from the start of the frame */
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

enum parse_result {
	PARSE_OK = 0,
	PARSE_SKIP, /* not IPv4, not TCP/UDP, or a fragment: not ours to touch */
	PARSE_INVALID, /* claims to be IPv4 TCP/UDP but the headers are cut short */
};

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

static __always_inline enum parse_result parse_ipv4(struct __sk_buff *skb, struct pkt4 *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 ihl_len;

	if ((void *)(eth + 1) > data_end)
		return PARSE_SKIP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_SKIP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PARSE_INVALID;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_INVALID;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_SCTP)
		return PARSE_SKIP;
	/* Fragments are not translated (see bpf/README.md, "Limits"). */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return PARSE_SKIP;

	ihl_len = ip->ihl * 4;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->l4_off = sizeof(struct ethhdr) + ihl_len;
	p->tcp_flags = 0;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)ip + ihl_len;

		if ((void *)(tcp + 1) > data_end)
			return PARSE_INVALID;
		p->sport = tcp->source;
		p->dport = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
	} else {
		/* UDP and SCTP both start with the source and destination ports; an SCTP
		 * common header is 12 bytes, a UDP header 8. */
		struct udphdr *udp = (void *)ip + ihl_len;
		__u32 need = ip->protocol == IPPROTO_SCTP ? 12 : sizeof(*udp);

		if ((void *)udp + need > data_end)
			return PARSE_INVALID;
		p->sport = udp->source;
		p->dport = udp->dest;
	}
	return PARSE_OK;
}

#endif
