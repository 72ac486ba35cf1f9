/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* GCRA token bucket and the rate-limited over-limit event (struct sg_bucket). */
#ifndef SG_BPF_BUCKET_H
#define SG_BPF_BUCKET_H

#include "maps.h"

#define SG_NSEC_PER_SEC 1000000000ULL
#define SG_GCRA_RETRIES 8

/*
 * Returns 1 when the SYN is over the limit, 0 when it conforms (and tat advanced).
 *
 * Race bound: tat only moves through a compare-and-swap from the value this CPU
 * read, so every passed SYN advances tat by exactly one interval and concurrent
 * CPUs can never pass more than burst + rate * t between them. A CPU that loses
 * SG_GCRA_RETRIES races in a row (each loss means another SYN passed) reports
 * over-limit: contention can only refuse a conforming SYN, never let one through.
 * A CPU whose `now` is older than another's sees a later tat and is stricter.
 */
static __always_inline int sg_gcra_over(struct sg_bucket *b, __u32 rate, __u32 burst, __u64 now)
{
	__u64 interval, tolerance, tat, next;
	int i;

	if (rate == 0)
		return 1;
	interval = SG_NSEC_PER_SEC / rate;
	if (interval == 0)
		interval = 1;
	tolerance = (__u64)burst * interval;
	for (i = 0; i < SG_GCRA_RETRIES; i++) {
		tat = SG_READ_ONCE(b->tat_ns);
		next = (tat > now ? tat : now) + interval;
		if (next - now > tolerance)
			return 1;
		if (__sync_val_compare_and_swap(&b->tat_ns, tat, next) == tat)
			return 0;
	}
	return 1;
}

/* Ring buffer memory is not zeroed: every field is written (clang will not inline a 152-byte memset). */
static __always_inline void sg_event_init(struct sg_event *ev, __u32 type, __u32 slot,
					  const struct sg_auto_key *key, __u64 now)
{
	ev->type = type;
	ev->slot = slot;
	ev->ts_ns = now;
	ev->count = 0;
	if (key)
		__builtin_memcpy(&ev->key, key, sizeof(ev->key));
	else
		__builtin_memset(&ev->key, 0, sizeof(ev->key));
	ev->reply_code = 0;
	ev->text_len = 0;
	ev->pad = 0;
}

/*
 * An over-limit event carries the owner's refused-by-a-limit SYNs so far, cumulative
 * (sg_vm_stats.syn[SG_VERDICT_THROTTLE], which the judgement charges for every
 * over-limit SYN); the controller takes differences between events. So the hot path of
 * a VM over its limit writes nothing shared: it bumps its per-CPU counter, and only the
 * elected sender (at most every SG_EVENT_INTERVAL_NS per VM) sums the CPUs.
 */
#define SG_MAX_CPUS 8192   /* bpf_loop bound; the walk stops at the first CPU past nr_cpu_ids */

struct sg_sum_ctx {
	__u32 slot;
	__u64 sum;
};

static long sg_sum_cpu(__u64 cpu, void *arg)
{
	struct sg_sum_ctx *c = arg;
	struct sg_vm_stats *s = bpf_map_lookup_percpu_elem(&sg_vm_stats, &c->slot, (__u32)cpu);

	if (!s)
		return 1;
	c->sum += SG_READ_ONCE(s->syn[SG_VERDICT_THROTTLE]);
	return 0;
}

/*
 * The owner's throttled SYNs so far: a registered VM's per-CPU counters summed (each
 * only grows, and events are >= SG_EVENT_INTERVAL_NS apart, so the totals events carry
 * never go backwards); an auto entry's shared counter.
 */
static __always_inline __u64 sg_throttled_total(__u32 slot, const struct sg_auto_key *key)
{
	struct sg_sum_ctx c = { .slot = slot };
	struct sg_auto_vm *e;

	if (slot != SG_SLOT_NONE) {
		bpf_loop(SG_MAX_CPUS, sg_sum_cpu, &c, 0);
		return c.sum;
	}
	e = key ? bpf_map_lookup_elem(&sg_auto, key) : 0;
	return e ? SG_READ_ONCE(e->stats.syn[SG_VERDICT_THROTTLE]) : 0;
}

/*
 * Elected sender of an over-limit event. The SYN that elected it is charged as throttled
 * right after its judgement, on this CPU: its count includes it. A lost event loses no
 * SYN: the next one's total covers it.
 */
__noinline int sg_send_over_event(__u32 slot, const struct sg_auto_key *key, __u64 now)
{
	struct sg_event *ev = bpf_ringbuf_reserve(&sg_events, sizeof(*ev), 0);

	if (!ev) {
		sg_count(SG_RES_EVENT_LOST);
		return -1;
	}
	sg_event_init(ev, SG_EV_OVER_LIMIT, slot, key, now);
	__builtin_memset(ev->text, 0, sizeof(ev->text));
	ev->count = sg_throttled_total(slot, key) + 1;
	bpf_ringbuf_submit(ev, 0);
	return 1;
}

/*
 * An over-limit SYN: at most once per SG_EVENT_INTERVAL_NS per bucket, the CPU whose
 * cmpxchg on last_event_ns wins sends an event (out of line: the rare path). Every other
 * over-limit SYN only reads the bucket: no atomic, no write to a line other CPUs read.
 */
static __always_inline void sg_over_event(struct sg_bucket *b, __u32 slot,
					  const struct sg_auto_key *key, __u64 now)
{
	__u64 last = SG_READ_ONCE(b->last_event_ns);

	if (now < last + SG_EVENT_INTERVAL_NS)
		return;
	if (__sync_val_compare_and_swap(&b->last_event_ns, last, now) != last)
		return;
	sg_send_over_event(slot, key, now);
}

#endif /* SG_BPF_BUCKET_H */
