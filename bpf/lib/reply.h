/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Remote SMTP replies on their way back to a VM: counted per VM, 4xx/5xx lines sampled. */
#ifndef SG_BPF_REPLY_H
#define SG_BPF_REPLY_H

#include <linux/pkt_cls.h>
#include "maps.h"
#include "parsing.h"
#include "verdict.h"

/* Where a reply is accounted: a registered VM (stats + bucket) or an existing auto entry. */
struct sg_reply_target {
	struct sg_vm_stats *stats;
	struct sg_bucket *bucket;
	struct sg_auto_vm *autov;
	__u32 slot;
	struct sg_auto_key key;
};

static __always_inline int sg_reply_slot(__u32 slot, struct sg_reply_target *t)
{
	struct sg_vm_policy *pol = bpf_map_lookup_elem(&sg_vm_policy, &slot);

	if (!pol || !(pol->flags & SG_VMF_ACTIVE))
		return -1;
	t->stats = bpf_map_lookup_elem(&sg_vm_stats, &slot);
	t->bucket = bpf_map_lookup_elem(&sg_vm_bucket, &slot);
	if (!t->stats || !t->bucket)
		return -1;
	t->slot = slot;
	return 0;
}

/* Mirror of sg_attribute keyed on the destination; auto entries are never created here. */
static __always_inline int sg_reply_find(const struct sg_pkt *p, __u32 ifindex,
					 struct sg_reply_target *t)
{
	struct sg_iface *ifc = sg_iface_lookup(ifindex);
	__u32 flags = ifc ? ifc->flags : 0;
	__u32 *slot;

	t->slot = SG_SLOT_NONE;
	t->key.ifindex = ifindex;
	if (ifc && (flags & SG_IFACE_HAS_VM)) {
		if (sg_reply_slot(ifc->vm_slot, t) == 0)
			return 0;
	} else if (flags & SG_IFACE_GATEWAY) {
		slot = sg_lpm_lookup(p, 1);
		if (slot && sg_reply_slot(*slot, t) == 0)
			return 0;
		t->key.family = p->family;
		sg_copy_addr(p, 1, t->key.addr, 8);
	}
	t->autov = bpf_map_lookup_elem(&sg_auto, &t->key);
	if (!t->autov)
		return -1;
	t->bucket = &t->autov->bucket;
	return 0;
}

/* SYN-ACK, RST, or a reply code from the first three payload bytes; -1 if none of these. */
static __always_inline int sg_reply_kind(struct __sk_buff *skb, const struct sg_pkt *p,
					 __u32 payload_off, __u16 *code)
{
	__u8 d[3];

	if ((p->tcp_flags & (SG_TCP_SYN | SG_TCP_ACK)) == (SG_TCP_SYN | SG_TCP_ACK))
		return SG_REPLY_SYNACK;
	if (p->tcp_flags & SG_TCP_RST)
		return SG_REPLY_RST;
	if (p->l3_rem < sizeof(d) || bpf_skb_load_bytes(skb, payload_off, d, sizeof(d)) < 0)
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

static __always_inline int sg_tc_reply(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct sg_reply_target t = {};
	struct sg_pkt p = {};
	__u32 payload_off;
	__u16 code = 0;
	int kind;

	if (sg_parse_frame(data, end, skb->len, &p) != SG_RES_NON_SMTP)
		return TC_ACT_OK;
	if (!sg_is_smtp_port(bpf_ntohs(p.tcp->source)))
		return TC_ACT_OK;
	payload_off = (__u32)((void *)p.tcp - data) + p.tcp->doff * 4;
	kind = sg_reply_kind(skb, &p, payload_off, &code);
	if (kind < 0 || kind >= SG_REPLY_MAX || sg_reply_find(&p, skb->ifindex, &t) < 0)
		return TC_ACT_OK;
	if (t.stats)
		t.stats->replies[kind]++;
	else
		__sync_fetch_and_add(&t.autov->stats.replies[kind], 1);
	if (kind == SG_REPLY_4XX || kind == SG_REPLY_5XX)
		sg_reply_sample(skb, &t, code, payload_off, p.l3_rem);
	return TC_ACT_OK;
}

#endif /* SG_BPF_REPLY_H */
