/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every constant shared with user space is an enumerator of a named enum in a
 * *_types.h header, and every such enum is a member type of the struct below,
 * so the object's BTF records each name and value. The C# mirrors are checked
 * against that BTF (tests/EbpfProxy.Datapath.Tests/ConstantTests.cs), as the
 * struct layouts are (LayoutTests.cs). Cilium does the same for its constants
 * (bpf/bpf_alignchecker.c compiles the types it checks into an object).
 *
 * The variable lives in a section libbpf skips ("skipping unrecognized data
 * section"): it is never loaded, it only carries the types. A new shared enum
 * must be added here and to ConstantTests.
 */
#ifndef EBPF_PROXY_CONSTANTS_H
#define EBPF_PROXY_CONSTANTS_H

#include "lb_types.h"
#include "conntrack_types.h"
#include "metrics_types.h"
#include "trace_types.h"
#include "policy_types.h"
#include "flow_types.h"

struct btf_constants {
	enum reason reason;
	enum metrics_dir metrics_dir;
	enum lb_scope lb_scope;
	enum lb_svc_flags lb_svc_flags;
	enum lb_be_flags lb_be_flags;
	enum lb_nat_flags lb_nat_flags;
	enum lb_src_range_bits lb_src_range_bits;
	enum lb_name_len lb_name_len;
	enum ct_dir ct_dir;
	enum ct_flags ct_flags;
	enum trace_mark trace_mark;
	enum trace_flags trace_flags;
	enum pol_id pol_id;
	enum pol_dir pol_dir;
	enum pol_ep_flags pol_ep_flags;
	enum pol_prefix pol_prefix;
	enum pol_ep_name_len pol_ep_name_len;
	enum pol_id_name_len pol_id_name_len;
	enum pol_verdict pol_verdict;
	enum pol_ct_flags pol_ct_flags;
};

struct btf_constants btf_constants __attribute__((used)) SEC(".constants");

/* Shared structs no map names as its key or value (ring buffer records are
 * untyped), carried the same way so LayoutTests find them in the BTF. */
struct btf_records {
	struct flow_event flow_event;
};

struct btf_records btf_records __attribute__((used)) SEC(".constants");

#endif
