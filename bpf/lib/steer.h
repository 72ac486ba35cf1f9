/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking and steering of a VM's segments (docs/internals.md, "Connections"):
 * a passed or steered SYN gets an entry, a steered one is rewritten to the proxy; the
 * VM's later segments to an SMTP port update their entry and follow a steered flow to
 * the proxy, whatever the VM's tier is now. What cannot be steered is refused:
 * fragments of a steered VM's TCP, and segments of a steered VM to a proxy port whose
 * entry is gone (never sent to the server the VM dialled). The rewrite itself, and the
 * global functions that run these, are xdp.h's.
 */
#ifndef SG_BPF_STEER_H
#define SG_BPF_STEER_H

#include "conn.h"
#include "verdict.h"
#include "nat.h"

/* Tier of an auto entry: its own policy, or the defaults `def`. */
static __always_inline int sg_auto_tier(const struct sg_auto_key *key, __u32 def)
{
	struct sg_vm_policy *pol = bpf_map_lookup_elem(&sg_auto_policy, key);

	if (!pol)
		pol = bpf_map_lookup_elem(&sg_defaults, &def);
	return pol ? pol->tier : SG_TIER_OK;
}

static __always_inline int sg_slot_tier(__u32 slot)
{
	struct sg_vm_policy *pol = bpf_map_lookup_elem(&sg_vm_policy, &slot);

	return pol && (pol->flags & SG_VMF_ACTIVE) ? pol->tier : -1;
}

/*
 * The tier of the VM a frame from src->ifindex with source src->addr (whole, family 4
 * or 6) belongs to, in sg_attribute's order, judging and creating nothing (for frames
 * that are not SYNs: fragments, lost steered flows).
 */
__noinline int sg_src_tier(const struct sg_auto_key *src)
{
	struct sg_auto_key key = {};
	struct sg_iface *ifc;
	__u32 flags, *slot;
	int tier;

	if (!src)
		return SG_TIER_OK;
	key.ifindex = src->ifindex;
	ifc = sg_iface_lookup(src->ifindex);
	flags = ifc ? ifc->flags : 0;
	if (ifc && (flags & SG_IFACE_HAS_VM)) {
		tier = sg_slot_tier(ifc->vm_slot);
		if (tier >= 0)
			return tier;
	} else if (flags & SG_IFACE_GATEWAY) {
		slot = sg_lpm_lookup(src);
		tier = slot ? sg_slot_tier(*slot) : -1;
		if (tier >= 0)
			return tier;
		sg_source_key(src, &key);
		tier = sg_auto_tier(&key, SG_DEFAULTS_SOURCE);
		if (tier == SG_TIER_STEERED)
			return tier;
		__builtin_memset(&key, 0, sizeof(key));
		key.ifindex = src->ifindex;   /* the aggregate may steer a source it lets pass */
		return sg_auto_tier(&key, SG_DEFAULTS_AGGREGATE) == SG_TIER_STEERED ? SG_TIER_STEERED : tier;
	}
	return sg_auto_tier(&key, SG_DEFAULTS_SOURCE);
}

/*
 * A VM's segment to an SMTP port as the connection table needs it. It holds no packet
 * pointers, so the functions that take it can be global ones, verified once; the caller
 * applies the rewrite they ask for.
 */
struct sg_vm_seg {
	struct sg_conn_key key;
	struct sg_auto_key owner;    /* a SYN's judged owner: owner_slot, or SG_SLOT_NONE and this */
	__u32 owner_slot;
	__u32 seq;                   /* host order */
	__u32 len;                   /* payload bytes */
	__u8 flags;                  /* TCP flags */
	__u8 verdict;                /* a SYN's: pass or steer in; what was done out */
	__u8 rewrite;                /* out: send it to to_addr:to_port */
	__u8 action;                 /* a refused SYN's enum sg_action */
	__be16 to_port;
	__u16 l2_len;                /* where the IP header starts */
	__u8 to_addr[16];
	__u32 l4_off;                /* where the TCP header starts */
	__u64 now;                   /* a SYN's judgement clock (sg_clock), for its entry */
};

/* The segment is to follow steered entry c: to its proxy. */
static __always_inline void sg_vm_seg_steer(struct sg_vm_seg *s, const struct sg_conn *c)
{
	s->rewrite = 1;
	s->to_port = c->proxy_port;
	__builtin_memcpy(s->to_addr, c->proxy_addr, 16);
}

/*
 * Where a steered SYN goes: 1 with s->to_addr/to_port (a proxy port, and the family has
 * a proxy), 0 passed under the bucket already applied (another SMTP port; or no proxy
 * for the family and the fail mode is not blocked), -1 blocked (no proxy, fail mode blocked).
 */
static __always_inline int sg_steer_target(const struct sg_runtime *rt, struct sg_vm_seg *s)
{
	if (!sg_proxy_port(bpf_ntohs(s->key.dst_port)))
		return 0;
	if (sg_proxy_of(rt, s->key.family, s->to_addr, &s->to_port))
		return 1;
	return rt->nofamily_tier == SG_TIER_BLOCKED ? -1 : 0;
}

/*
 * The entry of SYN s in ring slot ring_idx of its owner (steered: to s->to_addr:to_port),
 * inserted with its ring slot. Returns 0, 1 when the key exists already (the same SYN on
 * another CPU), -1 when the table is full. The entry is built here, in this function's
 * own stack frame.
 */
__noinline int sg_conn_insert(const struct sg_vm_seg *s, __u32 ring_idx, __u32 steer)
{
	struct sg_conn_ring_key rk = {};
	struct sg_conn c = {};
	int err;

	if (!s)
		return -1;
	c.created_ns = s->now;
	c.last_ns = s->now;
	c.slot = s->owner_slot;
	c.ring_idx = ring_idx;
	__builtin_memcpy(&c.owner_key, &s->owner, sizeof(c.owner_key));
	c.vm_isn = s->seq;
	c.vm_nxt = s->seq + 1 + s->len;   /* SYN payload (TFO) is sent too */
	c.state = SG_CONN_SYN_SENT;
	if (steer) {
		c.flags = SG_CONNF_STEERED;
		c.proxy_port = s->to_port;
		__builtin_memcpy(c.proxy_addr, s->to_addr, 16);
	}
	err = bpf_map_update_elem(&sg_conn, &s->key, &c, BPF_NOEXIST);
	if (err == -17)   /* EEXIST */
		return 1;
	if (err)
		return -1;
	sg_ring_key(c.slot, &c.owner_key, ring_idx, &rk);
	if (bpf_map_update_elem(&sg_conn_ring, &rk, &s->key, BPF_ANY)) {
		/* an entry without a ring slot could never be evicted: no entry at all */
		bpf_map_delete_elem(&sg_conn, &s->key);
		return -1;
	}
	return 0;
}

/*
 * Create the entry of SYN s in its owner's next ring slot (conn_seq % conn_per_vm on
 * bucket b): the entry that held the slot, the owner's oldest, is evicted. Returns 0,
 * or -1 when the table is full (SG_RES_CONN_FULL).
 */
static __always_inline int sg_conn_new(const struct sg_vm_seg *s, struct sg_bucket *b, __u32 per_vm,
				       int steer)
{
	__u32 idx;
	int err;

	if (!b) {
		sg_count(SG_RES_CONN_FULL);
		return -1;
	}
	idx = __sync_fetch_and_add(&b->conn_seq, 1) % per_vm;
	if (sg_ring_evict(s->owner_slot, &s->owner, idx))
		__sync_fetch_and_add(&b->conn_evicted, 1);
	err = sg_conn_insert(s, idx, steer);
	if (err < 0)
		sg_count(SG_RES_CONN_FULL);
	else if (err == 0)
		sg_count(SG_RES_CONN_NEW);
	return err < 0 ? -1 : 0;
}

/* The bucket of a SYN's owner: conn_seq and conn_evicted live there. */
static __always_inline struct sg_bucket *sg_owner_bucket(const struct sg_vm_seg *s)
{
	struct sg_auto_vm *e;
	__u32 slot = s->owner_slot;

	if (slot != SG_SLOT_NONE)
		return bpf_map_lookup_elem(&sg_vm_bucket, &slot);
	e = bpf_map_lookup_elem(&sg_auto, &s->owner);
	return e ? &e->bucket : 0;
}

/* Charge a SYN's final verdict (and a RST sent for it) to its owner. */
static __always_inline void sg_charge_owner(const struct sg_vm_seg *s, int rst)
{
	struct sg_vm_stats *stats;
	struct sg_auto_vm *e;
	__u32 slot = s->owner_slot;

	if (slot != SG_SLOT_NONE) {
		stats = bpf_map_lookup_elem(&sg_vm_stats, &slot);
		if (!stats)
			return;
		if (rst)
			stats->rst_sent++;
		else
			stats->syn[s->verdict & 3]++;
		return;
	}
	e = bpf_map_lookup_elem(&sg_auto, &s->owner);
	if (!e)
		return;
	if (rst)
		__sync_fetch_and_add(&e->stats.rst_sent, 1);
	else
		__sync_fetch_and_add(&e->stats.syn[s->verdict & 3], 1);
}

/*
 * A SYN judged pass or steer: track it, and steer it (s->rewrite) when it goes to the
 * proxy. Returns the XDP action; s->verdict becomes what was done (pass, steer, or block
 * when a family without a proxy fails closed: the caller then refuses it like any
 * blocked SYN). A SYN again with the same ISN reuses its entry (no second ring slot; a
 * steered one stays steered, an unsteered one stays unsteered); another ISN is a new
 * connection.
 */
static __always_inline int sg_conn_syn(struct sg_vm_seg *s, const struct sg_runtime *rt)
{
	__u64 now = s->now;   /* read once per SYN, by its judgement */
	struct sg_conn *c;
	int steer = 0;

	if (s->verdict == SG_VERDICT_STEER) {
		steer = sg_steer_target(rt, s);
		if (steer < 0) {
			s->verdict = SG_VERDICT_BLOCK;
			return XDP_DROP;
		}
		if (!steer)
			s->verdict = SG_VERDICT_PASS;
	}
	c = bpf_map_lookup_elem(&sg_conn, &s->key);
	if (c && c->vm_isn == s->seq) {
		c->last_ns = now;
		s->verdict = (c->flags & SG_CONNF_STEERED) ? SG_VERDICT_STEER : SG_VERDICT_PASS;
		if (c->flags & SG_CONNF_STEERED)
			sg_vm_seg_steer(s, c);
		return XDP_PASS;
	}
	if (c)
		sg_conn_forget(&s->key, c);
	if (steer && sg_nat_conflict(&s->key)) {
		sg_count(SG_RES_NAT_CONFLICT);
		return XDP_DROP;
	}
	if (sg_conn_new(s, sg_owner_bucket(s), sg_conn_per_vm(rt), steer) < 0)
		return steer ? XDP_DROP : XDP_PASS;   /* a passed SYN still passes, untracked */
	if (!steer)
		return XDP_PASS;
	if (sg_nat_index(&s->key) < 0) {
		c = bpf_map_lookup_elem(&sg_conn, &s->key);
		if (c)
			sg_conn_forget(&s->key, c);
		sg_count(SG_RES_CONN_FULL);
		return XDP_DROP;
	}
	s->rewrite = 1;
	return XDP_PASS;
}

/* An untracked segment to an SMTP port: a steered VM's to a proxy port is a lost steered flow. */
static __always_inline int sg_untracked_segment(const struct sg_vm_seg *s)
{
	struct sg_auto_key src = { .ifindex = s->key.ifindex, .family = s->key.family };
	struct sg_runtime *rt = sg_rt();
	__u8 addr[16] SG_ALIGNED;
	__be16 port;

	if (!rt || !sg_proxy_port(bpf_ntohs(s->key.dst_port)) ||
	    !sg_proxy_of(rt, s->key.family, addr, &port))
		return XDP_PASS;
	__builtin_memcpy(src.addr, s->key.vm_addr, 16);
	if (sg_src_tier(&src) != SG_TIER_STEERED)
		return XDP_PASS;
	sg_count(SG_RES_STEER_LOST);
	return XDP_DROP;
}

/* A VM's segment (not a new connection) to an SMTP port: its entry follows it (s->rewrite). */
static __always_inline int sg_conn_segment(struct sg_vm_seg *s)
{
	struct sg_conn *c;

	c = bpf_map_lookup_elem(&sg_conn, &s->key);
	if (!c)
		return sg_untracked_segment(s);
	c->last_ns = sg_clock();
	/* a steered flow follows its entry, whatever the VM's tier is now */
	if (c->flags & SG_CONNF_STEERED)
		sg_vm_seg_steer(s, c);
	if (s->flags & SG_TCP_RST) {   /* the VM ends it; the RST still goes where the flow went */
		sg_conn_forget(&s->key, c);
		return XDP_PASS;
	}
	sg_seq_advance(&c->vm_nxt, s->seq + s->len + (s->flags & SG_TCP_FIN ? 1 : 0));
	if (s->flags & SG_TCP_FIN)
		c->flags |= SG_CONNF_FIN_VM;
	return XDP_PASS;
}

#endif /* SG_BPF_STEER_H */
