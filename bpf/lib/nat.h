/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address and port rewrites with incremental checksum updates. The kernel's
 * csum helpers handle CHECKSUM_PARTIAL skbs (veth traffic from local sockets):
 * with BPF_F_PSEUDO_HDR only the pseudo-header part is adjusted.
 */
#ifndef EBPF_PROXY_NAT_H
#define EBPF_PROXY_NAT_H

#include <stddef.h>
#include "common.h"
#include "parse.h"

#define IP_CSUM_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, check))
/* Returned by nat4_rewrite for an SCTP port change (95 = EOPNOTSUPP). */
#define EOPNOTSUPP_SCTP 95
#define IP_SRC_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, daddr))

static __always_inline __u32 l4_csum_off(const struct pkt4 *p)
{
	return p->l4_off + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
						    : offsetof(struct udphdr, check));
}

/*
 * Rewrites one endpoint of the packet: the destination (DNAT) when dst is
 * true, the source (reverse NAT, SNAT) otherwise. Returns 0 or a negative
 * errno from the helpers. Invalidates packet pointers.
 */
static __always_inline int nat4_rewrite(struct __sk_buff *skb, const struct pkt4 *p, bool dst,
					__be32 new_addr, __be16 new_port)
{
	__be32 old_addr = dst ? p->daddr : p->saddr;
	__be16 old_port = dst ? p->dport : p->sport;
	__u32 addr_off = dst ? IP_DST_OFF : IP_SRC_OFF;
	/* Source and destination ports are the first two 16-bit words of both TCP and UDP. */
	__u32 port_off = p->l4_off + (dst ? 2 : 0);
	__u32 csum_off = l4_csum_off(p);
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	bool sctp = p->proto == IPPROTO_SCTP;
	int ret;

	/* SCTP's CRC32c covers no pseudo-header, so an address rewrite leaves it valid;
	 * a port rewrite would need the whole CRC recomputed, which no helper does. */
	if (sctp && old_port != new_port)
		return -EOPNOTSUPP_SCTP;
	if (old_addr != new_addr) {
		/* A later fragment (l4_off 0) has no L4 header: its checksum is in the first. */
		if (!sctp && p->l4_off) {
			ret = bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
						  l4_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr));
			if (ret < 0)
				return ret;
		}
		ret = bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_addr, new_addr, sizeof(new_addr));
		if (ret < 0)
			return ret;
		ret = bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0);
		if (ret < 0)
			return ret;
	}
	if (old_port != new_port && p->l4_off) {
		ret = bpf_l4_csum_replace(skb, csum_off, old_port, new_port, l4_flags | sizeof(new_port));
		if (ret < 0)
			return ret;
		ret = bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

#endif
