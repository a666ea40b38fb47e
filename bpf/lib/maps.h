/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the datapath. All are pinned by name under the loader's pin
 * root (/sys/fs/bpf/ebpf-proxy by default), so a restarted daemon and the CLI
 * find the same maps and conntrack survives restarts and upgrades.
 * Sizes are defaults: the loader overrides max_entries before load.
 */
#ifndef EBPF_PROXY_MAPS_H
#define EBPF_PROXY_MAPS_H

#include "common.h"
#include "lb_types.h"
#include "conntrack_types.h"
#include "metrics_types.h"
#include "trace_types.h"
#include "policy_types.h"
#include "flow_types.h"

/* Frontends and their backend slots: (VIP, port, proto, scope, slot) -> entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, LB4_SERVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_services SEC(".maps");

/* Backend id -> backend address, port and flags. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, LB4_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_backends SEC(".maps");

/* Rev-NAT id -> the frontend a reply's source is rewritten to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, LB_REVNAT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_reverse_nat SEC(".maps");

/* Rev-NAT id -> "namespace/name:port", for the CLI; never read per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb_name);
	__uint(max_entries, LB_REVNAT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_names SEC(".maps");

/* New connections per rev-NAT id (one per frontend), per CPU: the service
 * connection counter of `/metrics` (ebpfproxy_service_connections_total). A
 * per-CPU array needs no atomics on the connection path (as the metrics map
 * above); user space sums the CPUs and names the id through lb_names. Sized
 * like lb4_reverse_nat: 8 bytes per id and CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LB_REVNAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_svc_conns SEC(".maps");

/* Session affinity: (client, rev-NAT id) -> backend, LRU. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb_affinity_value);
	__uint(max_entries, LB4_AFFINITY_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_affinity SEC(".maps");

/* The decision of the last traced packet (see trace_types.h), one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct trace_record);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trace_out SEC(".maps");

/* Node-wide settings (service CIDR), one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_config SEC(".maps");

/* Masquerade settings (node address, cluster CIDR), one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_nat_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_nat_config SEC(".maps");

/* loadBalancerSourceRanges: (LB frontend, client prefix) -> present. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb4_src_range_key);
	__type(value, __u32);
	__uint(max_entries, LB4_SRC_RANGE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_src_range SEC(".maps");

/* The node's network namespace, for the socket hooks, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_host_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_host_config SEC(".maps");

/* Host sockets translated at connect/sendmsg: (cookie, backend) -> frontend,
 * so recvmsg/getpeername show the application the address it asked for. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_sock_key);
	__type(value, struct lb4_sock_value);
	__uint(max_entries, LB4_SOCK_REVNAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb4_sock_revnat SEC(".maps");

/* Masqueraded connections: the source rewrite each way (see snat4_entry). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_key);
	__type(value, struct snat4_entry);
	__uint(max_entries, SNAT4_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} snat4 SEC(".maps");

/* Service connections and their replies (LRU: the oldest flows make room). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_key);
	__type(value, struct ct_entry);
	__uint(max_entries, CT4_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ct4 SEC(".maps");

/* Fragmented datagrams: the first fragment's ports for the later ones (frag.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag4_key);
	__type(value, struct frag4_entry);
	__uint(max_entries, FRAG4_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} frag4 SEC(".maps");

/* Dropped packets for `ebpf-proxy observe` (struct drop_event records). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DROP_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} drop_events SEC(".maps");

/* Per-CPU staging slot a drop_event is built in before it is copied into
 * drop_events (keeps it off the program's 512-byte stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct drop_event);
	__uint(max_entries, 1);
} drop_scratch SEC(".maps");

/* New connections for `ebpf-proxy observe` (struct flow_event records, flow.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FLOW_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_events SEC(".maps");

/* Flow events' rate per CPU (0 = off), one entry; written by `observe` while it runs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct flow_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_config SEC(".maps");

/* Flow events' rate limiter per CPU, and what it suppressed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flow_rate_state);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_rate SEC(".maps");

/* Per-CPU packet and byte counters by reason and direction. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_value);
	__uint(max_entries, REASON_MAX * METRICS_DIR_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} metrics SEC(".maps");

/* NetworkPolicy: address prefix -> identity of the peer (LPM; no match = world). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct pol_ipcache_key);
	__type(value, struct pol_ipcache_entry);
	__uint(max_entries, POL_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pol_ipcache SEC(".maps");

/* NetworkPolicy: local pod address -> endpoint id and isolation; absent = not isolated. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct pol_endpoint);
	__uint(max_entries, POL_ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pol_endpoints SEC(".maps");

/* NetworkPolicy: what isolated pods admit, (endpoint, identity, dir, proto, port prefix) (LPM). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct pol_rule_key);
	__type(value, struct pol_rule);
	__uint(max_entries, POL_RULES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pol_rules SEC(".maps");

/* NetworkPolicy: connections a local pod's policy admitted (policy.h), LRU, apart
 * from the service conntrack so service flows never evict them. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_key);
	__type(value, struct pol_ct_entry);
	__uint(max_entries, POL_CT4_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pol_ct4 SEC(".maps");

/* NetworkPolicy, for the CLI only (never read per packet): local pod address ->
 * endpoint id and "namespace/name", for every local pod. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct pol_ep_name);
	__uint(max_entries, POL_ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pol_ep_names SEC(".maps");

/* NetworkPolicy, for the CLI only: identity -> what it stands for (labels or
 * CIDR signature). Every identity holds an ipcache prefix: sized like it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct pol_id_name);
	__uint(max_entries, POL_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pol_id_names SEC(".maps");

#endif
