/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * REJECT: turns the offending packet into an ICMP "port unreachable" from the
 * address it was sent to, and sends it back out of the interface it came in
 * on. A client sees an immediate refusal (ECONNREFUSED for a TCP connect, an
 * error on the next recv for UDP) instead of a timeout, as with kube-proxy's
 * reject rules. The ICMP payload quotes the original IP header and the first
 * 8 bytes of its L4 header, as RFC 792 asks.
 */
#ifndef EBPF_PROXY_REJECT_H
#define EBPF_PROXY_REJECT_H

#include "common.h"
#include "parse.h"

/* linux/icmp.h drags in libc headers; the few definitions needed are here. */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
struct icmp4_error {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u32 unused;
};

#define REJECT_QUOTE_LEN (sizeof(struct iphdr) + 8)
#define REJECT_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct icmp4_error) + REJECT_QUOTE_LEN)

static __always_inline __u16 csum_fold32(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Returns TC_ACT_REDIRECT on success, or a negative value when the packet
 * could not be rewritten (the caller drops it). */
static __always_inline int reject4(struct __sk_buff *skb, const struct pkt4 *p)
{
	struct ethhdr eth;
	struct iphdr ip = {};
	struct {
		struct icmp4_error icmp;
		__u8 quote[REJECT_QUOTE_LEN];
	} err = {};
	__u8 mac[ETH_ALEN];
	__s64 sum;

	/* Only plain 20-byte headers are quoted; packets with IP options are dropped instead. */
	if (p->l4_off != sizeof(struct ethhdr) + sizeof(struct iphdr))
		return -1;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), err.quote, REJECT_QUOTE_LEN) < 0)
		return -1;

	__builtin_memcpy(mac, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, mac, ETH_ALEN);
	eth.h_proto = bpf_htons(ETH_P_IP);

	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(err));
	ip.ttl = 64;
	ip.protocol = IPPROTO_ICMP;
	ip.saddr = p->daddr;
	ip.daddr = p->saddr;
	sum = bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0);
	if (sum < 0)
		return -1;
	ip.check = csum_fold32(sum);

	err.icmp.type = ICMP_DEST_UNREACH;
	err.icmp.code = ICMP_PORT_UNREACH;
	sum = bpf_csum_diff(0, 0, (__be32 *)&err, sizeof(err), 0);
	if (sum < 0)
		return -1;
	err.icmp.checksum = csum_fold32(sum);

	if (bpf_skb_change_tail(skb, REJECT_LEN, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 ||
	    bpf_skb_store_bytes(skb, sizeof(eth), &ip, sizeof(ip), 0) < 0 ||
	    bpf_skb_store_bytes(skb, sizeof(eth) + sizeof(ip), &err, sizeof(err), 0) < 0)
		return -1;
	return bpf_redirect(skb->ifindex, 0);
}

#endif
