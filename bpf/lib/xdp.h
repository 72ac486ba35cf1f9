/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP program past the parser, as global functions that take the context and a
 * description of the segment with header offsets (no packet pointers): each is verified
 * once with unknown offsets instead of once per parser state (VLAN tags, options and
 * extension headers multiply those), and each has its own stack frame.
 */
#ifndef SG_BPF_XDP_H
#define SG_BPF_XDP_H

#include "maps.h"
#include "parsing.h"
#include "verdict.h"
#include "reset.h"
#include "steer.h"

/* Bounds header offsets so the verifier can range-check pointers built from them (the
 * linear data of an XDP frame is at most a page). */
#define SG_XDP_MAX_L3_OFF (sizeof(struct ethhdr) + SG_MAX_VLANS * 4)
#define SG_XDP_MAX_L4_OFF 0x1fff

/* Describe a VM's TCP segment for the connection table. */
static __always_inline void sg_vm_seg_init(const struct sg_pkt *p, __u32 ifindex, void *data,
					   struct sg_vm_seg *s)
{
	sg_conn_key_vm(p, ifindex, &s->key);
	s->seq = bpf_ntohl(p->tcp->seq);
	s->len = p->l3_rem;
	s->flags = p->tcp_flags;
	s->l2_len = p->l2_len;
	s->l4_off = (__u32)((void *)p->tcp - data);
}

/*
 * Send the VM's segment to s->to_addr:to_port (the proxy), checksums updated
 * incrementally. Its headers are found again at s->l2_len/l4_off, each pointer checked
 * itself (the verifier widens the range of the checked one).
 */
static __always_inline int sg_xdp_rewrite(struct xdp_md *ctx, const struct sg_vm_seg *s)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l3 = s->l2_len, l4 = s->l4_off;
	struct ipv6hdr *ip6;
	struct tcphdr *th;
	struct iphdr *ip4;

	if (l3 > SG_XDP_MAX_L3_OFF || l4 > SG_XDP_MAX_L4_OFF)
		return -1;
	th = data + l4;
	if ((void *)(th + 1) > end)
		return -1;
	if (s->key.family == 4) {
		ip4 = data + l3;
		if ((void *)(ip4 + 1) > end)
			return -1;
		sg_nat_dst(ip4, 0, th, s->to_addr, s->to_port);
		return 0;
	}
	ip6 = data + l3;
	if ((void *)(ip6 + 1) > end)
		return -1;
	sg_nat_dst(0, ip6, th, s->to_addr, s->to_port);
	return 0;
}

/* The rewrite a segment asked for; a steered segment never goes to the server it was sent to. */
static __always_inline int sg_xdp_follow(struct xdp_md *ctx, const struct sg_vm_seg *s, int act)
{
	if (act == XDP_PASS && s->rewrite && sg_xdp_rewrite(ctx, s) < 0)
		return XDP_DROP;
	return act;
}

/*
 * Attribute and judge a new SMTP connection (tier, bucket): owner, verdict and action
 * into s. A refusal is final and charged here; a pass or steer by sg_syn_track.
 */
__noinline int sg_syn_judge(struct sg_vm_seg *s)
{
	struct sg_auto_key src = {};
	struct sg_judgement j = {};

	if (!s)
		return SG_VERDICT_THROTTLE;
	src.ifindex = s->key.ifindex;
	src.family = s->key.family;
	__builtin_memcpy(src.addr, s->key.vm_addr, 16);
	sg_attribute(&src, &j);
	if (sg_refused(j.verdict))
		sg_charge(&j);
	s->now = j.now;
	s->owner_slot = j.slot;
	__builtin_memcpy(&s->owner, &j.key, sizeof(s->owner));
	s->verdict = j.verdict;
	s->action = j.action;
	return j.verdict;
}

/* A SYN judged pass or steer: tracked, steered, its final verdict charged (steer.h). */
__noinline int sg_syn_track(struct xdp_md *ctx, struct sg_vm_seg *s)
{
	struct sg_runtime *rt = sg_rt();
	int act;

	if (!s || !rt)
		return XDP_PASS;
	act = sg_conn_syn(s, rt);
	sg_charge_owner(s, 0);
	return sg_xdp_follow(ctx, s, act);
}

/* Refuse a SYN with a RST built in place (XDP_TX), or drop it when that fails. */
__noinline int sg_syn_reset(struct xdp_md *ctx, const struct sg_vm_seg *s)
{
	struct sg_rst_info ri = {};

	if (!s)
		return XDP_DROP;
	ri.family = s->key.family;
	ri.l2_len = s->l2_len;
	__builtin_memcpy(ri.saddr, s->key.vm_addr, 16);
	__builtin_memcpy(ri.daddr, s->key.dst_addr, 16);
	ri.sport = s->key.vm_port;
	ri.dport = s->key.dst_port;
	ri.ack = s->seq + 1 + s->len;   /* SYN takes one sequence number, any payload (TFO) the rest */
	if (sg_send_rst(ctx, &ri) < 0)
		return XDP_DROP;
	sg_count(SG_RES_RST_SENT);
	sg_charge_owner(s, 1);
	return XDP_TX;
}

/*
 * A new SMTP connection: attributed and judged, tracked and steered when passed or
 * steered, refused otherwise. The steps are calls one after the other, never nested
 * (the stack of a call chain is limited to 512 bytes): a flood over the limit pays for
 * one call.
 */
static __always_inline int sg_new_smtp(struct xdp_md *ctx, struct sg_vm_seg *s)
{
	int act = XDP_DROP;

	if (sg_stop(SG_STOP_PARSE))
		return XDP_PASS;
	sg_syn_judge(s);
	/* a benchmark's stop inside the judgement, or after the charge (no entry) */
	if (sg_cfg.bench_stop > SG_STOP_PARSE && sg_cfg.bench_stop < SG_STOP_CHARGE)
		return XDP_PASS;
	if (sg_stop(SG_STOP_CHARGE)) {
		if (sg_refused(s->verdict))
			return XDP_DROP;   /* charged by the judgement */
		sg_charge_owner(s, 0);
		return XDP_PASS;
	}
	if (!sg_refused(s->verdict))
		act = sg_syn_track(ctx, s);
	if (sg_refused(s->verdict) && s->action == SG_ACT_RESET)
		return sg_syn_reset(ctx, s);
	return act;
}

/* Any other segment of a VM to an SMTP port: its entry follows it (steer.h). */
__noinline int sg_vm_segment(struct xdp_md *ctx, struct sg_vm_seg *s)
{
	if (!s)
		return XDP_PASS;
	return sg_xdp_follow(ctx, s, sg_conn_segment(s));
}

/* A TCP fragment (first or later, l3_off: its IP header): refused when its VM is steered. */
__noinline int sg_fragment(struct xdp_md *ctx, __u32 l3_off)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct sg_auto_key src = { .ifindex = ctx->ingress_ifindex };
	struct ipv6hdr *ip6;
	struct iphdr *ip4;

	if (l3_off > SG_XDP_MAX_L3_OFF)
		return XDP_PASS;
	ip4 = data + l3_off;
	if ((void *)(ip4 + 1) > end)
		return XDP_PASS;
	if (ip4->version == 4) {
		src.family = 4;
		__builtin_memcpy(src.addr, &ip4->saddr, 4);
	} else {
		ip6 = data + l3_off;
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		src.family = 6;
		__builtin_memcpy(src.addr, &ip6->saddr, 16);
	}
	if (sg_src_tier(&src) != SG_TIER_STEERED)
		return XDP_PASS;
	sg_count(SG_RES_STEER_FRAG);
	return XDP_DROP;
}

#endif /* SG_BPF_XDP_H */
