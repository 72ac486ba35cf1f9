/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The return path towards a VM (TC egress): remote SMTP replies are evidence only on a
 * connection the VM opened, inside TCP's window (window.h); they are counted for the
 * connection's owner and 4xx/5xx lines sampled. The proxy's answers on a steered flow
 * are rewritten back to the server the VM dialled and are never evidence.
 * Contract: docs/internals.md, "Connections".
 */
#ifndef SG_BPF_REPLY_H
#define SG_BPF_REPLY_H

#include <linux/pkt_cls.h>
#include "maps.h"
#include "parsing.h"
#include "conn.h"
#include "nat.h"
#include "window.h"
#include "icmp.h"

/* Where evidence is accounted: a registered VM (stats + bucket) or an existing auto entry. */
struct sg_reply_target {
	struct sg_vm_stats *stats;
	struct sg_bucket *bucket;
	struct sg_auto_vm *autov;
	__u32 slot;
	struct sg_auto_key key;
};

/* The connection's owner; auto entries are never created here. */
static __always_inline int sg_reply_owner(const struct sg_conn *c, struct sg_reply_target *t)
{
	__u32 slot = c->slot;
	struct sg_vm_policy *pol;

	t->slot = slot;
	if (slot == SG_SLOT_NONE) {
		__builtin_memcpy(&t->key, &c->owner_key, sizeof(t->key));
		t->autov = bpf_map_lookup_elem(&sg_auto, &t->key);
		if (!t->autov)
			return -1;
		t->bucket = &t->autov->bucket;
		return 0;
	}
	pol = bpf_map_lookup_elem(&sg_vm_policy, &slot);
	if (!pol || !(pol->flags & SG_VMF_ACTIVE))
		return -1;
	t->stats = bpf_map_lookup_elem(&sg_vm_stats, &slot);
	t->bucket = bpf_map_lookup_elem(&sg_vm_bucket, &slot);
	return t->stats && t->bucket ? 0 : -1;
}

/* A reply code from the first three payload bytes (2xx, 4xx, 5xx), or -1. */
static __always_inline int sg_reply_code(struct __sk_buff *skb, __u32 payload_off, __u32 len,
					 __u16 *code)
{
	__u8 d[3];

	if (len < sizeof(d) || bpf_skb_load_bytes(skb, payload_off, d, sizeof(d)) < 0)
		return -1;
	if (d[0] < '0' || d[0] > '9' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9')
		return -1;
	*code = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	if (d[0] == '2')
		return SG_REPLY_2XX;
	if (d[0] == '4')
		return SG_REPLY_4XX;
	if (d[0] == '5')
		return SG_REPLY_5XX;
	return -1;
}

/* At most one sampled reply line per VM per SG_EVENT_INTERVAL_NS (cmpxchg elects the sender). */
static __always_inline void sg_reply_sample(struct __sk_buff *skb, struct sg_reply_target *t,
					    __u16 code, __u32 payload_off, __u32 payload_len)
{
	__u64 now = bpf_ktime_get_ns(), last = SG_READ_ONCE(t->bucket->last_sample_ns);
	struct sg_event *ev;
	__u32 len, i;

	if (now < last + SG_EVENT_INTERVAL_NS)
		return;
	if (__sync_val_compare_and_swap(&t->bucket->last_sample_ns, last, now) != last)
		return;
	ev = bpf_ringbuf_reserve(&sg_events, sizeof(*ev), 0);
	if (!ev) {
		sg_count(SG_RES_EVENT_LOST);
		return;
	}
	len = payload_len < SG_REPLY_TEXT_MAX ? payload_len : SG_REPLY_TEXT_MAX;
	if (len < 1 || len > SG_REPLY_TEXT_MAX ||
	    bpf_skb_load_bytes(skb, payload_off, ev->text, len) < 0) {
		bpf_ringbuf_discard(ev, 0);
		return;
	}
	/* the reply line ends at CR or LF; the rest of the buffer stays zero */
	for (i = 0; i < SG_REPLY_TEXT_MAX; i++) {
		if (i >= len || ev->text[i] == '\r' || ev->text[i] == '\n')
			break;
	}
	/* volatile: keeps clang from turning the loop into a memset call BPF cannot make */
	for (__u32 k = i; k < SG_REPLY_TEXT_MAX; k++)
		((volatile char *)ev->text)[k] = 0;
	sg_event_init(ev, SG_EV_REPLY, t->slot, t->slot == SG_SLOT_NONE ? &t->key : 0, now);
	ev->reply_code = code;
	ev->text_len = i;
	bpf_ringbuf_submit(ev, 0);
}

/* Count one piece of evidence for the connection's owner t (sampling 4xx/5xx lines). */
static __always_inline void sg_reply_count(struct __sk_buff *skb, struct sg_reply_target *t,
					   int kind, __u16 code, __u32 payload_off, __u32 len)
{
	if (kind < 0 || kind >= SG_REPLY_MAX)
		return;
	if (t->stats)
		t->stats->replies[kind]++;
	else if (t->autov)
		__sync_fetch_and_add(&t->autov->stats.replies[kind], 1);
	else
		return;
	if (kind == SG_REPLY_4XX || kind == SG_REPLY_5XX)
		sg_reply_sample(skb, t, code, payload_off, len);
}

/* SYN_SENT -> ESTABLISHED, once: only the CPU whose cmpxchg wins counts the SYN-ACK. */
static __always_inline int sg_conn_establish(struct sg_conn *c, __u32 remote_nxt)
{
	__u32 *word = (__u32 *)&c->state, old = SG_READ_ONCE(*word), next = old;

	if (((__u8 *)&old)[0] != SG_CONN_SYN_SENT)
		return 0;
	((__u8 *)&next)[0] = SG_CONN_ESTABLISHED;
	c->remote_nxt = remote_nxt;
	return __sync_val_compare_and_swap(word, old, next) == old;
}

/* A segment towards the VM from an SMTP port or the proxy, without packet pointers. */
struct sg_reply_seg {
	struct sg_conn_key key;      /* keyed from the segment: the VM is its destination */
	struct sg_nat_seg nat;       /* where its source lives, for the reverse NAT */
	__u32 seq;                   /* host order */
	__u32 ack;
	__u32 len;                   /* payload bytes */
	__u32 payload_off;
	__u8 flags;                  /* TCP flags */
	__u8 pad[3];
};

/*
 * A segment from the remote on tracked connection s->key (entry c): judged by the
 * window rules; only an acceptable one changes the entry, and is evidence when
 * `evidence`. Returns the sg_win judgement.
 */
static __always_inline int sg_remote_segment(struct __sk_buff *skb, const struct sg_reply_seg *s,
					     struct sg_conn *c, int evidence)
{
	struct sg_win_seg w = { .seq = s->seq, .ack = s->ack, .len = s->len, .flags = s->flags };
	struct sg_reply_target t = {};
	__u32 nxt, old_nxt = c->remote_nxt;
	__u16 code = 0;
	int win, kind = -1;

	win = sg_window(c->state, c->vm_isn, c->vm_nxt, old_nxt, &w, &nxt);
	if (win == SG_WIN_OUTSIDE) {
		sg_count(SG_RES_REPLY_OUTSIDE);
		return win;
	}
	/* the owner is read now: a RST forgets the entry */
	if (evidence && sg_reply_owner(c, &t) < 0)
		evidence = 0;
	c->last_ns = bpf_ktime_get_ns();
	if (win == SG_WIN_SYNACK) {
		if (!sg_conn_establish(c, nxt))
			return win;   /* another CPU counted it */
		kind = SG_REPLY_SYNACK;
	} else if (win == SG_WIN_RESET) {
		sg_conn_forget(&s->key, c);
		kind = SG_REPLY_RST;
	} else {
		if (w.flags & SG_WIN_FIN)
			c->flags |= SG_CONNF_FIN_REMOTE;
		if (win != SG_WIN_NEW)
			return win;
		sg_seq_advance(&c->remote_nxt, nxt);
		/* only data past what was seen carries a reply not yet counted */
		if (sg_seq_after(w.seq + w.len, old_nxt))
			kind = sg_reply_code(skb, s->payload_off, w.len, &code);
	}
	if (evidence)
		sg_reply_count(skb, &t, kind, code, s->payload_off, w.len);
	return win;
}

/* The steered flow whose client (the VM) is this segment's destination, via sg_conn_nat. */
static __always_inline struct sg_conn *sg_nat_lookup(struct sg_conn_key *k)
{
	struct sg_conn_nat_key nk = {};
	struct sg_conn_key *v;
	struct sg_conn *c;
	__u32 ifindex = k->ifindex;

	sg_nat_key(k, &nk);   /* k is keyed from the segment: its VM side is right */
	v = bpf_map_lookup_elem(&sg_conn_nat, &nk);
	if (!v || v->ifindex != ifindex)
		return 0;
	__builtin_memcpy(k, v, sizeof(*k));
	c = bpf_map_lookup_elem(&sg_conn, k);
	return c && (c->flags & SG_CONNF_STEERED) ? c : 0;
}

/*
 * The connection a segment towards the VM answers: its entry (s->key as seen, or for the
 * proxy's segments the steered flow of its client ADDR:PORT), judged by the window
 * rules. A steered flow's segments come back from the proxy: their source becomes the
 * server the VM dialled, and they are never evidence. Returns TC_ACT_OK: never interferes.
 */
__noinline int sg_tc_tracked(struct __sk_buff *skb, struct sg_reply_seg *s)
{
	struct sg_conn *c;

	if (!s)
		return TC_ACT_OK;
	/* not found as seen: a steered flow's, if the source is its proxy (checked below) */
	c = bpf_map_lookup_elem(&sg_conn, &s->key);
	if (!c)
		c = sg_nat_lookup(&s->key);
	if (!c) {
		sg_count(SG_RES_REPLY_UNTRACKED);
		return TC_ACT_OK;
	}
	if (!(c->flags & SG_CONNF_STEERED)) {
		sg_remote_segment(skb, s, c, 1);
		return TC_ACT_OK;
	}
	if (!sg_words_eq(c->proxy_addr, s->nat.saddr, 4) || c->proxy_port != s->nat.sport) {
		sg_count(SG_RES_REPLY_OUTSIDE);   /* the dialled server itself: it never saw a SYN */
		return TC_ACT_OK;
	}
	sg_remote_segment(skb, s, c, 0);
	sg_nat_src_tc(skb, &s->nat, s->key.dst_addr, s->key.dst_port);
	return TC_ACT_OK;
}

/*
 * Is the segment's source the configured proxy of its family? Whether or not it is up
 * (SG_RT_PROXY_*): flows steered before it went down still come back from it. A proxy
 * on an SMTP port needs no such test.
 */
static __always_inline int sg_from_proxy(const struct sg_pkt *p, const __u8 *saddr)
{
	struct sg_runtime *rt = sg_rt();

	if (!rt)
		return 0;
	if (p->family == 4)
		return rt->proxy_v4_port && rt->proxy_v4_port == p->tcp->source &&
		       sg_words_eq(rt->proxy_v4, saddr, 1);
	return rt->proxy_v6_port && rt->proxy_v6_port == p->tcp->source && sg_words_eq(rt->proxy_v6, saddr, 4);
}

static __always_inline int sg_tc_reply(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct sg_reply_seg s = {};
	struct sg_pkt p = {};
	int res;

	res = sg_parse_frame(data, end, skb->len, &p);
	if (res == SG_RES_NON_TCP)
		return sg_icmp_reply(skb, &p, data);
	if (res != SG_RES_NON_SMTP)
		return TC_ACT_OK;
	sg_nat_seg_save(&p, data, &s.nat);
	if (!sg_is_smtp_port(bpf_ntohs(p.tcp->source)) && !sg_from_proxy(&p, s.nat.saddr))
		return TC_ACT_OK;
	sg_conn_key_reply(&p, skb->ifindex, &s.key);
	s.seq = bpf_ntohl(p.tcp->seq);
	s.ack = bpf_ntohl(p.tcp->ack_seq);
	s.len = p.l3_rem;
	s.flags = p.tcp_flags;
	s.payload_off = s.nat.l4_off + p.tcp->doff * 4;
	return sg_tc_tracked(skb, &s);
}

#endif /* SG_BPF_REPLY_H */
