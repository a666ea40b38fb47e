/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding of masqueraded packets. A packet whose source became one of the
 * node's own addresses cannot go through the kernel's input routing again (it
 * would be dropped as a martian, "source is local"), so it is sent straight to
 * the egress device chosen by a FIB lookup, as Cilium's NodePort path does:
 * with the neighbour's MAC when the kernel knows it, or through
 * bpf_redirect_neigh (5.10+) which resolves it.
 */
#ifndef EBPF_PROXY_FIB_H
#define EBPF_PROXY_FIB_H

#include "common.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Returns a TC_ACT_* verdict: TC_ACT_REDIRECT on success, TC_ACT_OK (let the
 * kernel route it) when the FIB has no answer. */
static __always_inline int fib_redirect4(struct __sk_buff *skb, __be32 saddr, __be32 daddr)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.ipv4_src = saddr,
		.ipv4_dst = daddr,
		.ifindex = skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex,
	};
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	return TC_ACT_OK;
}

#endif
