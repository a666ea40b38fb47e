/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions for every ebpf-proxy BPF object. */
#ifndef EBPF_PROXY_COMMON_H
#define EBPF_PROXY_COMMON_H

#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Map sizes are overridable at build time; the loader can also change
 * max_entries before load (bpf_map__set_max_entries). */
#ifndef LB4_SERVICES_MAX
#define LB4_SERVICES_MAX 262144
#endif
#ifndef LB4_BACKENDS_MAX
#define LB4_BACKENDS_MAX 262144
#endif
#ifndef LB_REVNAT_MAX
#define LB_REVNAT_MAX 65536
#endif
#ifndef LB4_AFFINITY_MAX
#define LB4_AFFINITY_MAX 65536
#endif
#ifndef CT4_MAX
#define CT4_MAX 524288
#endif
#ifndef SNAT4_MAX
#define SNAT4_MAX 262144
#endif
#ifndef LB4_SOCK_REVNAT_MAX
#define LB4_SOCK_REVNAT_MAX 65536
#endif
#ifndef LB4_SRC_RANGE_MAX
#define LB4_SRC_RANGE_MAX 65536
#endif
#ifndef DROP_EVENTS_BYTES
#define DROP_EVENTS_BYTES (256 * 1024)
#endif
#ifndef FLOW_EVENTS_BYTES
#define FLOW_EVENTS_BYTES (256 * 1024)
#endif
#ifndef POL_IPCACHE_MAX
#define POL_IPCACHE_MAX 262144
#endif
#ifndef POL_ENDPOINTS_MAX
#define POL_ENDPOINTS_MAX 16384
#endif
#ifndef FRAG4_MAX
#define FRAG4_MAX 8192
#endif
#ifndef POL_CT4_MAX
#define POL_CT4_MAX 262144
#endif
#ifndef POL_RULES_MAX
#define POL_RULES_MAX 262144
#endif

#endif
