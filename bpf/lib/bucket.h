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

/* Elected sender of an over-limit event: hand over the count and restart it at zero. */
__noinline int sg_send_over_event(struct sg_bucket *b, __u32 slot, const struct sg_auto_key *key,
				  __u64 now)
{
	struct sg_event *ev;
	__u64 count;

	if (!b)
		return 0;
	count = __sync_lock_test_and_set(&b->over_since_event, 0);
	ev = bpf_ringbuf_reserve(&sg_events, sizeof(*ev), 0);
	if (!ev) {
		/* keep the count so the next event still adds up */
		__sync_fetch_and_add(&b->over_since_event, count);
		sg_count(SG_RES_EVENT_LOST);
		return -1;
	}
	sg_event_init(ev, SG_EV_OVER_LIMIT, slot, key, now);
	__builtin_memset(ev->text, 0, sizeof(ev->text));
	ev->count = count;
	bpf_ringbuf_submit(ev, 0);
	return 1;
}

/*
 * Count an over-limit SYN and, at most once per SG_EVENT_INTERVAL_NS per bucket,
 * report how many there were since the last report: the CPU whose cmpxchg on
 * last_event_ns wins sends (out of line: it is the rare path).
 */
static __always_inline void sg_over_event(struct sg_bucket *b, __u32 slot,
					  const struct sg_auto_key *key, __u64 now)
{
	__u64 last;

	__sync_fetch_and_add(&b->over_since_event, 1);
	last = SG_READ_ONCE(b->last_event_ns);
	if (now < last + SG_EVENT_INTERVAL_NS)
		return;
	if (__sync_val_compare_and_swap(&b->last_event_ns, last, now) != last)
		return;
	sg_send_over_event(b, slot, key, now);
}

#endif /* SG_BPF_BUCKET_H */
