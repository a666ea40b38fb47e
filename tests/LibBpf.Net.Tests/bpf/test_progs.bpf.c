// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test object for LibBpf.Net's kernel tests: one map of each kind the binding
 * handles specially, a tc program and an XDP program. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct test_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct test_value {
	__u64 packets;
	__u32 backend;
	__u32 flags;
};

/* Pinned by name under the object's pin root, reused by a second load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct test_key);
	__type(value, struct test_value);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_hash SEC(".maps");

/* Large enough that the per-CPU LRU free lists never evict in the tests. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4096);
} lru_hash SEC(".maps");

/* 12-byte values: exercises the kernel's 8-byte per-CPU stride. */
struct pcpu_value {
	__u32 packets;
	__u32 bytes;
	__u32 last_len;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct pcpu_value);
	__uint(max_entries, 4);
} pcpu_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} pcpu_hash SEC(".maps");

/* Index 0: value the tc program returns (0 = TC_ACT_OK). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 8);
} config SEC(".maps");

struct event {
	__u32 len;
	__u32 ifindex;
	__u8 head[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 zero = 0;
	struct pcpu_value *st;
	struct event *ev;
	__u32 *ret;

	st = bpf_map_lookup_elem(&pcpu_stats, &zero);
	if (st) {
		st->packets++;
		st->bytes += skb->len;
		st->last_len = skb->len;
	}

	if (data + 8 > data_end)
		return TC_ACT_SHOT;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		ev->len = skb->len;
		ev->ifindex = skb->ifindex;
		__builtin_memcpy(ev->head, data, 8);
		bpf_ringbuf_submit(ev, 0);
	}

	/* Rewrite the first byte so a test run can see the modified packet. */
	((__u8 *)data)[0] = 0xAA;

	ret = bpf_map_lookup_elem(&config, &zero);
	return ret ? (int)*ret : TC_ACT_OK;
}

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	__u32 one = 1;
	struct pcpu_value *st = bpf_map_lookup_elem(&pcpu_stats, &one);

	if (st)
		st->packets++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
