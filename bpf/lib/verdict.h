/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Attribution of a new SMTP connection to a VM, and its verdict (docs/internals.md).
 * The SYN's source is given as `src` (struct sg_auto_key used as {ifindex, family, whole
 * source address}): no packet pointers, so the callers can be global functions.
 */
#ifndef SG_BPF_VERDICT_H
#define SG_BPF_VERDICT_H

#include "maps.h"
#include "parsing.h"
#include "bucket.h"

/*
 * Who a SYN belongs to and what was decided. The owner (slot, or SG_SLOT_NONE and the
 * auto key charged) is what its connection entry records; its verdict is charged by
 * sg_charge once the connection table had its say (a steered SYN may end up passed).
 */
struct sg_judgement {
	struct sg_vm_stats *stats;   /* per-CPU counters of a registered VM, or */
	struct sg_auto_vm *autov;    /* the auto entry charged with the SYN */
	struct sg_bucket *bucket;    /* the owner's bucket (conn_seq, conn_evicted) */
	__u32 slot;                  /* owner: VM slot, or SG_SLOT_NONE and key */
	struct sg_auto_key key;      /* auto owner; all zero for a slot */
	__u64 now;                   /* sg_clock() of the judgement; 0 when it needed none (blocked) */
	__u8 verdict;                /* enum sg_verdict */
	__u8 action;                 /* enum sg_action: for throttle/block; for steer, block_action */
};

static __always_inline int sg_refused(__u8 verdict)
{
	return verdict == SG_VERDICT_THROTTLE || verdict == SG_VERDICT_BLOCK;
}

/* LPM lookup of a whole address (src->addr in src->family). */
static __always_inline __u32 *sg_lpm_lookup(const struct sg_auto_key *src)
{
	struct sg_lpm_v4 k = { .prefixlen = 32 };
	struct sg_lpm_v6 k6 = { .prefixlen = 128 };

	if (src->family == 6) {
		__builtin_memcpy(k6.addr, src->addr, 16);
		return bpf_map_lookup_elem(&sg_vm_v6, &k6);
	}
	__builtin_memcpy(k.addr, src->addr, 4);
	return bpf_map_lookup_elem(&sg_vm_v4, &k);
}

/* The auto key of an unregistered source behind a gateway: /32, or /64 for IPv6. */
static __always_inline void sg_source_key(const struct sg_auto_key *src, struct sg_auto_key *key)
{
	key->ifindex = src->ifindex;
	key->family = src->family;
	if (src->family == 6)
		__builtin_memcpy(key->addr, src->addr, 8);
	else
		__builtin_memcpy(key->addr, src->addr, 4);
}

#define SG_JUDGE_ACTION_SHIFT 8

/*
 * Tier first, then the bucket; an over-limit SYN also feeds the burst event.
 * Returns verdict | action << SG_JUDGE_ACTION_SHIFT; a steer carries the block action,
 * for a family with no proxy when the fail mode blocks (conn.h).
 */
static __always_inline int sg_decide_inline(const struct sg_vm_policy *pol, struct sg_bucket *b,
					    __u32 slot, const struct sg_auto_key *key, __u64 now)
{
	int over;

	if (!pol || !b)
		return SG_VERDICT_THROTTLE | SG_ACT_DROP << SG_JUDGE_ACTION_SHIFT;
	if (pol->tier == SG_TIER_BLOCKED)
		return SG_VERDICT_BLOCK | (pol->block_action & 1) << SG_JUDGE_ACTION_SHIFT;
	/* steered VMs keep their bucket so steering cannot be used to burst */
	over = sg_gcra_over(b, pol->rate, pol->burst, now);
	if (over)
		sg_over_event(b, slot, key, now);
	if (sg_stop(SG_STOP_BUCKET))
		return SG_VERDICT_PASS;
	if (over)
		return SG_VERDICT_THROTTLE | (pol->over_action & 1) << SG_JUDGE_ACTION_SHIFT;
	if (pol->tier == SG_TIER_STEERED)
		return SG_VERDICT_STEER | (pol->block_action & 1) << SG_JUDGE_ACTION_SHIFT;
	return SG_VERDICT_PASS;
}

/*
 * The same decision as a global (separately verified) function for the auto-entry
 * paths: inlining the bucket loop into each of them explodes the verifier's state
 * count. The registered-VM path, the hot one, inlines it and saves a call.
 */
__noinline int sg_decide(const struct sg_vm_policy *pol, struct sg_bucket *b, __u32 slot,
			 const struct sg_auto_key *key, __u64 now)
{
	return sg_decide_inline(pol, b, slot, key, now);
}

static __always_inline void sg_set_judgement(struct sg_judgement *j, int d)
{
	j->verdict = d & 3;
	j->action = (d >> SG_JUDGE_ACTION_SHIFT) & 1;
}

/*
 * Does src belong to the VM in `slot`? Its one IPv4 address is compared inline
 * (SG_VMF_ONE_V4); anything else asks the LPM tries (a helper call).
 */
static __always_inline int sg_source_is(const struct sg_auto_key *src, const struct sg_vm_policy *pol,
					__u32 slot)
{
	__u32 *owner, a, b;

	if (src->family == 4 && (pol->flags & SG_VMF_ONE_V4)) {
		__builtin_memcpy(&a, src->addr, 4);
		__builtin_memcpy(&b, pol->v4_addr, 4);
		return a == b;
	}
	owner = sg_lpm_lookup(src);
	return owner && *owner == slot;
}

/*
 * Registered VM in `slot`; returns -1 when the slot is not active (caller falls back to
 * auto). A blocked VM's SYN reads no clock: nothing of its judgement depends on time.
 */
static __always_inline int sg_judge_slot(const struct sg_auto_key *src, __u32 slot, int check_spoof,
					 struct sg_judgement *j)
{
	struct sg_vm_policy *pol = bpf_map_lookup_elem(&sg_vm_policy, &slot);
	struct sg_vm_stats *stats;
	struct sg_bucket *b;

	if (!pol || !(pol->flags & SG_VMF_ACTIVE))
		return -1;
	b = bpf_map_lookup_elem(&sg_vm_bucket, &slot);
	stats = bpf_map_lookup_elem(&sg_vm_stats, &slot);
	if (!b || !stats)
		return -1;
	if (sg_stop(SG_STOP_VM))
		return 0;
	if (check_spoof && (pol->flags & SG_VMF_HAS_ADDRS)) {
		/* the interface names the VM; a foreign source still counts against it */
		if (!sg_source_is(src, pol, slot)) {
			stats->spoofed++;
			sg_count(SG_RES_SPOOFED);
		}
	}
	if (sg_stop(SG_STOP_SPOOF))
		return 0;
	j->stats = stats;
	j->bucket = b;
	j->slot = slot;
	if (pol->tier == SG_TIER_BLOCKED) {
		sg_set_judgement(j, SG_VERDICT_BLOCK | (pol->block_action & 1) << SG_JUDGE_ACTION_SHIFT);
		return 0;
	}
	j->now = sg_clock();
	if (sg_stop(SG_STOP_CLOCK))
		return 0;
	sg_set_judgement(j, sg_decide_inline(pol, b, slot, 0, j->now));
	return 0;
}

/* A new auto entry starts from this (rodata: a 152-byte value would crowd the stack). */
const volatile struct sg_auto_vm sg_auto_zero = {};

static __always_inline struct sg_auto_vm *sg_auto_get(const struct sg_auto_key *key, __u64 now)
{
	struct sg_auto_vm *e = bpf_map_lookup_elem(&sg_auto, key);

	if (e)
		return e;
	if (bpf_map_update_elem(&sg_auto, key, (const void *)&sg_auto_zero, BPF_NOEXIST) != 0)
		return bpf_map_lookup_elem(&sg_auto, key);   /* another CPU created it */
	sg_count(SG_RES_AUTO_NEW);
	e = bpf_map_lookup_elem(&sg_auto, key);
	if (e)
		e->first_seen_ns = now;
	return e;
}

/* Judge (without charging) an auto entry under its own policy or the defaults `def`. */
static __always_inline struct sg_auto_vm *sg_decide_auto(const struct sg_auto_key *key, __u32 def,
							 __u64 now, struct sg_judgement *j)
{
	struct sg_auto_vm *e = sg_auto_get(key, now);
	struct sg_vm_policy *pol = bpf_map_lookup_elem(&sg_auto_policy, key);

	if (!pol)
		pol = bpf_map_lookup_elem(&sg_defaults, &def);
	if (!e || !pol) {
		/* evicted between insert and lookup under LRU churn: fail closed */
		j->verdict = SG_VERDICT_THROTTLE;
		j->action = SG_ACT_DROP;
		return 0;
	}
	e->last_seen_ns = now;
	sg_set_judgement(j, sg_decide(pol, &e->bucket, SG_SLOT_NONE, key, now));
	return e;
}

static __always_inline void sg_charge_auto(struct sg_auto_vm *e, __u8 verdict)
{
	if (e)
		__sync_fetch_and_add(&e->stats.syn[verdict & 3], 1);
}

/* The SYN's final verdict, charged to its owner. */
static __always_inline void sg_charge(const struct sg_judgement *j)
{
	if (j->stats)
		j->stats->syn[j->verdict & 3]++;
	else
		sg_charge_auto(j->autov, j->verdict);
}

/* An auto entry owns the SYN: the connection table records its key. */
static __always_inline void sg_auto_owner(struct sg_judgement *j, const struct sg_auto_key *key)
{
	j->slot = SG_SLOT_NONE;
	__builtin_memcpy(&j->key, key, sizeof(j->key));
	j->bucket = j->autov ? &j->autov->bucket : 0;
}

/* Unclaimed interface: one entry for the whole interface; the source is not trusted. */
static __always_inline void sg_judge_iface(__u32 ifindex, __u64 now, struct sg_judgement *j)
{
	struct sg_auto_key key = { .ifindex = ifindex };

	j->autov = sg_decide_auto(&key, SG_DEFAULTS_SOURCE, now, j);
	sg_auto_owner(j, &key);
}

/*
 * Unregistered source behind a gateway: its own /32 or /64 bucket, then the
 * interface aggregate, so random sources cannot multiply the burst. The source
 * entry owns the SYN (and is charged with the final verdict); the aggregate is
 * charged here with what it decided.
 */
static __always_inline void sg_judge_source(const struct sg_auto_key *src, __u64 now,
					    struct sg_judgement *j)
{
	struct sg_auto_key key = {};
	struct sg_judgement agg = {};
	struct sg_auto_vm *ae;

	sg_source_key(src, &key);   /* IPv6 sources are grouped per /64 */
	j->autov = sg_decide_auto(&key, SG_DEFAULTS_SOURCE, now, j);
	sg_auto_owner(j, &key);
	if (!sg_refused(j->verdict)) {
		__builtin_memset(&key, 0, sizeof(key));
		key.ifindex = src->ifindex;
		ae = sg_decide_auto(&key, SG_DEFAULTS_AGGREGATE, now, &agg);
		sg_charge_auto(ae, agg.verdict);
		if (sg_refused(agg.verdict)) {
			j->verdict = agg.verdict;
			j->action = agg.action;
		} else if (agg.verdict == SG_VERDICT_STEER && j->verdict != SG_VERDICT_STEER) {
			j->verdict = SG_VERDICT_STEER;
			j->action = agg.action;
		}
	}
}

/* First match wins: VM interface, gateway LPM, then an auto entry (docs/internals.md). */
static __always_inline void sg_attribute(const struct sg_auto_key *src, struct sg_judgement *j)
{
	struct sg_iface *ifc = sg_iface_lookup(src->ifindex);
	__u32 flags = ifc ? ifc->flags : 0;
	__u32 *slot;

	if (sg_stop(SG_STOP_IFACE))
		return;
	if (ifc && (flags & SG_IFACE_HAS_VM)) {
		if (sg_judge_slot(src, ifc->vm_slot, 1, j) == 0)
			return;
	} else if (flags & SG_IFACE_GATEWAY) {
		slot = sg_lpm_lookup(src);
		if (slot && sg_judge_slot(src, *slot, 0, j) == 0)
			return;
		j->now = sg_clock();
		sg_judge_source(src, j->now, j);
		return;
	}
	j->now = sg_clock();
	sg_judge_iface(src->ifindex, j->now, j);
}

#endif /* SG_BPF_VERDICT_H */
