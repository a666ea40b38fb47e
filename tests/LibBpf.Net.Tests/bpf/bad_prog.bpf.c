// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Programs the verifier accepts (good_prog, big_prog: a long straight-line
 * program whose verbose verifier log is far larger than 64 KiB) and one it
 * must reject (bad_prog: packet read without a bounds check). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int good_prog(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("tc")
int bad_prog(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;

	/* No check against data_end: "invalid access to packet". */
	return *(__u8 *)data;
}

SEC("tc")
int big_prog(struct __sk_buff *skb)
{
	__u32 acc = skb->len;

#pragma clang loop unroll(full)
	for (int i = 0; i < 1000; i++)
		acc = (acc ^ (acc >> 7)) * 0x9e3779b1 + i;
	return acc & 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
