/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Outcome reasons counted by the datapath. This numbering is an ABI shared
 * with user space (src/EbpfProxy.Datapath/Maps/MetricsTypes.cs): never renumber or
 * reuse a value. 1..127 are outcomes that let the packet go on, 128..255 are
 * drops.
 */
#ifndef EBPF_PROXY_METRICS_TYPES_H
#define EBPF_PROXY_METRICS_TYPES_H

#include <linux/types.h>

enum reason {
	REASON_UNSPEC = 0,
	REASON_FWD_SERVICE_NEW = 1, /* new flow to a frontend, DNAT applied */
	REASON_FWD_SERVICE_ESTABLISHED = 2, /* tracked flow, DNAT applied */
	REASON_FWD_REVNAT = 3, /* reply, source rewritten to the frontend */
	REASON_PASS_NOT_SERVICE = 4, /* not addressed to a frontend, untouched */
	REASON_PASS_UNSUPPORTED = 5, /* not IPv4 TCP/UDP/SCTP, or a later fragment of an unknown datagram nothing here concerns */
	REASON_FWD_SERVICE_RESELECTED = 6, /* tracked flow whose backend vanished */
	REASON_FWD_SNAT_REVERSE = 7, /* reply of a masqueraded flow, both rewrites undone */
	REASON_FWD_ICMP_REVNAT = 8, /* ICMP error about a service connection, quote and sender restored to the frontend (icmp.h) */
	REASON_FWD_ICMP_SNAT_REVERSE = 9, /* ICMP error about a masqueraded connection, sent on to the client (icmp.h) */

	REASON_DROP_MIN = 128,
	REASON_DROP_INVALID = 128, /* truncated or malformed headers */
	REASON_DROP_NO_BACKEND = 129, /* retired: a service without endpoint is now rejected (133) */
	REASON_DROP_BACKEND_MISSING = 130, /* a slot names a backend that is gone */
	REASON_DROP_CT_CREATE = 131, /* conntrack entry could not be written */
	REASON_DROP_NAT = 132, /* rewrite or checksum update failed */
	REASON_REJECT_NO_ENDPOINT = 133, /* service without usable endpoint: ICMP port unreachable */
	REASON_REJECT_NO_PORT = 134, /* known ClusterIP, undefined port/protocol: ICMP port unreachable */
	REASON_DROP_UNALLOCATED_VIP = 135, /* inside the service CIDR, no such ClusterIP */
	REASON_DROP_REJECT_FAILED = 136, /* could not build the ICMP error */
	REASON_DROP_NO_LOCAL_ENDPOINT = 137, /* traffic policy Local, endpoints only on other nodes */
	REASON_DROP_SCTP_PORT = 138, /* SCTP needs its port changed: unsupported (CRC32c) */
	REASON_DROP_POLICY_INGRESS = 139, /* NetworkPolicy: the destination pod's ingress admits no such flow */
	REASON_DROP_POLICY_EGRESS = 140, /* NetworkPolicy: the source pod's egress admits no such flow */
	REASON_DROP_SOURCE_RANGE = 141, /* LB ingress IP, client outside loadBalancerSourceRanges */
	REASON_DROP_SNAT_PORT = 142, /* masquerade: no free node port for this flow */
	REASON_DROP_FRAG_NOT_FOUND = 143, /* a later fragment whose first was not seen, where a translation or an isolated pod is involved */
	REASON_DROP_POLICY_ICMP_UNRELATED = 144, /* NetworkPolicy: an ICMP error about no connection the isolated pod's policy admitted */
	REASON_MAX = 256,
};

enum metrics_dir {
	METRICS_DIR_INGRESS = 0, /* from the pod / netdev into the node */
	METRICS_DIR_EGRESS = 1, /* from the node to the pod / netdev */
	METRICS_DIR_MAX = 2,
};

/* metrics is a per-CPU array indexed by reason * METRICS_DIR_MAX + dir. */
struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/*
 * A dropped packet, as sent to user space through the drop_events ring buffer
 * (`ebpf-proxy observe`). Best effort: when the buffer is full the event is
 * lost (the counters above still count the drop).
 */
struct drop_event {
	__u64 ts_ns; /* bpf_ktime_get_ns() */
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;
	__be16 dport_be;
	__u8 proto;
	__u8 dir; /* METRICS_DIR_* */
	__u8 reason; /* enum reason */
	__u8 pad;
	__u32 ifindex; /* the interface the hook runs on */
	__u32 policy_endpoint; /* NetworkPolicy drops: the local pod's endpoint id */
	__u32 policy_identity; /* NetworkPolicy drops: the peer's identity */
};

#endif
