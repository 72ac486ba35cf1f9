/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP program past the parser, as global functions that take the context and
 * header offsets: each is verified once with unknown offsets instead of once per
 * parser state (VLAN tags, options and extension headers multiply those), and each
 * has its own stack frame. The main program calls sg_smtp, which calls the steps of a
 * new connection one after the other (never nested deeper than one of them): the
 * stack of a call chain is limited to 512 bytes.
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

/* The headers at l3_off/l4_off, checked again (each pointer itself: the verifier widens
 * the range of the checked one). ip6 is set for IPv6, else ip4. */
struct sg_xdp_hdrs {
	struct iphdr *ip4;
	struct ipv6hdr *ip6;
	struct tcphdr *tcp;
};

static __always_inline int sg_xdp_hdrs(struct xdp_md *ctx, __u32 l3_off, __u32 l4_off,
				       struct sg_xdp_hdrs *h)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6;
	struct tcphdr *th;
	struct iphdr *ip4;

	if (l3_off > SG_XDP_MAX_L3_OFF || l4_off > SG_XDP_MAX_L4_OFF)
		return -1;
	th = data + l4_off;
	if ((void *)(th + 1) > end)
		return -1;
	ip4 = data + l3_off;
	if ((void *)(ip4 + 1) > end)
		return -1;
	h->tcp = th;
	if (ip4->version == 4) {
		h->ip4 = ip4;
		return 4;
	}
	ip6 = data + l3_off;
	if ((void *)(ip6 + 1) > end)
		return -1;
	h->ip6 = ip6;
	return 6;
}

/* Describe the VM's TCP segment at l3_off/l4_off for the connection table. */
static __always_inline int sg_vm_seg_read(struct xdp_md *ctx, __u32 l3_off, __u32 l4_off,
					  struct sg_vm_seg *s)
{
	struct sg_xdp_hdrs h = {};
	int family = sg_xdp_hdrs(ctx, l3_off, l4_off, &h);

	if (family < 0)
		return -1;
	s->key.ifindex = ctx->ingress_ifindex;
	s->key.family = family;
	if (h.ip4) {
		__builtin_memcpy(s->key.vm_addr, &h.ip4->saddr, 4);
		__builtin_memcpy(s->key.dst_addr, &h.ip4->daddr, 4);
	} else if (h.ip6) {
		__builtin_memcpy(s->key.vm_addr, &h.ip6->saddr, 16);
		__builtin_memcpy(s->key.dst_addr, &h.ip6->daddr, 16);
	}
	s->key.vm_port = h.tcp->source;
	s->key.dst_port = h.tcp->dest;
	s->seq = bpf_ntohl(h.tcp->seq);
	s->flags = ((__u8 *)h.tcp)[13];
	s->l2_len = l3_off;
	s->l4_off = l4_off;
	return 0;
}

/* Send the VM's segment to s->to_addr:to_port (the proxy), checksums updated incrementally. */
__noinline int sg_xdp_rewrite(struct xdp_md *ctx, const struct sg_vm_seg *s)
{
	struct sg_xdp_hdrs h = {};
	struct sg_pkt p = {};

	if (!s || sg_xdp_hdrs(ctx, s->l2_len, s->l4_off, &h) != s->key.family)
		return -1;
	p.ip4 = h.ip4;
	p.ip6 = h.ip6;
	p.tcp = h.tcp;
	sg_nat_dst(&p, s->to_addr, s->to_port);
	return 0;
}

/* Attribute and judge a new SMTP connection (tier, bucket): owner, verdict and action into s. */
__noinline int sg_syn_judge(struct sg_vm_seg *s)
{
	struct sg_auto_key src = {};
	struct sg_judgement j = {};

	if (!s)
		return SG_VERDICT_THROTTLE;
	src.ifindex = s->key.ifindex;
	src.family = s->key.family;
	__builtin_memcpy(src.addr, s->key.vm_addr, 16);
	sg_attribute(&src, bpf_ktime_get_ns(), &j);
	s->owner_slot = j.slot;
	__builtin_memcpy(&s->owner, &j.key, sizeof(s->owner));
	s->verdict = j.verdict;
	s->action = j.action;
	return j.verdict;
}

/* Charge the SYN's final verdict (and a RST sent) to its owner. */
__noinline int sg_syn_charge(const struct sg_vm_seg *s, int rst)
{
	struct sg_vm_stats *stats;
	struct sg_auto_vm *e;
	__u32 slot;

	if (!s)
		return 0;
	slot = s->owner_slot;
	if (slot != SG_SLOT_NONE) {
		stats = bpf_map_lookup_elem(&sg_vm_stats, &slot);
		if (!stats)
			return 0;
		stats->syn[s->verdict & 3]++;
		if (rst)
			stats->rst_sent++;
		return 0;
	}
	e = bpf_map_lookup_elem(&sg_auto, &s->owner);
	if (!e)
		return 0;
	__sync_fetch_and_add(&e->stats.syn[s->verdict & 3], 1);
	if (rst)
		__sync_fetch_and_add(&e->stats.rst_sent, 1);
	return 0;
}

/* Refuse a SYN: a RST built in place (XDP_TX) or a drop. */
__noinline int sg_syn_refuse(struct xdp_md *ctx, const struct sg_vm_seg *s)
{
	struct sg_rst_info ri = {};

	if (!s || s->action != SG_ACT_RESET)
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
	return XDP_TX;
}

/*
 * A VM's TCP segment to an SMTP port (l3_off/l4_off: its headers, len: its payload). A new
 * connection is attributed and judged, tracked and steered when passed or steered, its
 * final verdict charged to its owner, refused otherwise; any other segment follows its
 * entry (steer.h).
 */
__noinline int sg_smtp(struct xdp_md *ctx, __u32 l3_off, __u32 l4_off, __u32 len, __u32 syn)
{
	struct sg_vm_seg s = {};
	int act = XDP_PASS;

	if (sg_vm_seg_read(ctx, l3_off, l4_off, &s) < 0)
		return XDP_PASS;
	s.len = len;
	if (!syn) {
		act = sg_conn_segment(&s);
	} else if (!sg_refused(sg_syn_judge(&s))) {
		act = sg_conn_syn(&s);
	}
	if (act == XDP_PASS && s.rewrite && sg_xdp_rewrite(ctx, &s) < 0)
		act = XDP_DROP;   /* a steered segment never goes to the server it was sent to */
	if (!syn)
		return act;
	if (sg_refused(s.verdict))
		act = sg_syn_refuse(ctx, &s);
	sg_syn_charge(&s, act == XDP_TX);
	return act;
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
