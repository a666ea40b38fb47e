/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking for translated flows. Two entries per connection, as
 * Cilium does: the service entry keyed by the tuple the client sends
 * (client -> VIP), holding the chosen backend, and the reply entry keyed by the
 * tuple the backend sends (backend -> client), holding the rev-NAT id. Each
 * direction therefore costs exactly one lookup.
 */
#ifndef EBPF_PROXY_CONNTRACK_H
#define EBPF_PROXY_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL
/* Lifetimes since the last packet, as Cilium's defaults (TCP 6 h, others 60 s, closing 10 s). */
#define CT_LIFETIME_TCP (21600ULL * NSEC_PER_SEC)
#define CT_LIFETIME_NONTCP (60ULL * NSEC_PER_SEC)
#define CT_LIFETIME_CLOSING (10ULL * NSEC_PER_SEC)
/* last_seen is refreshed at most this often, to keep the cache line clean. */
#define CT_REFRESH_INTERVAL NSEC_PER_SEC

static __always_inline void ct4_key_make(struct ct4_key *k, __be32 saddr, __be32 daddr, __be16 sport, __be16 dport,
					 __u8 proto, __u8 dir)
{
	k->saddr_be = saddr;
	k->daddr_be = daddr;
	k->sport_be = sport;
	k->dport_be = dport;
	k->proto = proto;
	k->dir = dir;
	k->pad = 0;
}

/* The entry a packet's own tuple names, in the given direction. */
static __always_inline void ct4_key_of(struct ct4_key *k, const struct pkt4 *p, __u8 dir)
{
	ct4_key_make(k, p->saddr, p->daddr, p->sport, p->dport, p->proto, dir);
}

/* The reply entry of a client's connection to a backend: backend -> client. */
static __always_inline void ct4_key_reply_of(struct ct4_key *k, const struct pkt4 *p, __be32 backend, __be16 backend_port)
{
	ct4_key_make(k, backend, p->saddr, backend_port, p->sport, p->proto, CT_DIR_REPLY);
}

static __always_inline __u64 ct_lifetime(const struct ct_entry *e, __u8 proto)
{
	if (e->flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSING;
	return proto == IPPROTO_TCP ? CT_LIFETIME_TCP : CT_LIFETIME_NONTCP;
}

/* Whether a found entry still describes the connection this packet belongs to. */
static __always_inline bool ct_entry_live(const struct ct_entry *e, const struct pkt4 *p, __u64 now)
{
	if (now - e->last_seen_ns > ct_lifetime(e, p->proto))
		return false;
	/* A fresh SYN on a closed connection's tuple opens a new connection. */
	if (p->proto == IPPROTO_TCP && (e->flags & CT_F_CLOSING) &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return false;
	return true;
}

/*
 * Refreshes an entry. Returns true when last_seen was advanced (at most once per
 * CT_REFRESH_INTERVAL): the caller then refreshes the connection's other entry
 * too, so a flow whose packets go one way only (a UDP stream from a backend)
 * keeps both entries alive.
 */
static __always_inline bool ct_entry_touch(struct ct_entry *e, const struct pkt4 *p, __u64 now)
{
	bool refreshed = false;

	if (now - e->last_seen_ns > CT_REFRESH_INTERVAL) {
		e->last_seen_ns = now;
		refreshed = true;
	}
	if ((p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) && !(e->flags & CT_F_CLOSING))
		e->flags |= CT_F_CLOSING;
	return refreshed;
}

/* Advances the twin entry's last_seen, if it exists. */
static __always_inline void ct_touch_twin(const struct ct4_key *key, __u64 now)
{
	struct ct_entry *twin = bpf_map_lookup_elem(&ct4, key);

	if (twin && now > twin->last_seen_ns)
		twin->last_seen_ns = now;
}

#endif
