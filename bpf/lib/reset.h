/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP RST+ACK answering a refused SYN, built in place and sent back with XDP_TX.
 * Layout: the original L2 header (VLAN tags kept, MACs swapped), a fresh IPv4 or
 * IPv6 header, a 20-byte TCP header; everything after it is cut off.
 */
#ifndef SG_BPF_RESET_H
#define SG_BPF_RESET_H

#include "parsing.h"
#include "csum.h"

#define SG_RST_TTL 64
#define SG_IP_DF   0x4000

/* Everything the RST needs, read before the frame is resized. */
struct sg_rst_info {
	__u8 saddr[16];          /* of the SYN; IPv4 in [0..3] */
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 ack;               /* host order: SYN seq + 1 + payload */
	__u32 l2_len;
	__u32 family;
};

static __always_inline void sg_rst_tcp(const struct sg_rst_info *ri, struct tcphdr *th, __u64 pseudo)
{
	struct tcphdr t = {};

	t.source = ri->dport;
	t.dest = ri->sport;
	t.ack_seq = bpf_htonl(ri->ack);
	t.doff = 5;
	t.rst = 1;
	t.ack = 1;
	pseudo += bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(t));
	t.check = sg_csum_fold(pseudo + sg_csum_words(&t, sizeof(t) / 2));
	*th = t;
}

static __always_inline void sg_rst_swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

static __always_inline int sg_rst_write_v4(void *l3, void *end, const struct sg_rst_info *ri)
{
	struct iphdr *iph = l3;
	struct tcphdr *th = l3 + sizeof(*iph);
	struct iphdr h = {};

	/* checked through l3 itself: the verifier widens ranges only on the checked pointer's id */
	if (l3 + sizeof(*iph) + sizeof(*th) > end)
		return -1;
	h.version = 4;
	h.ihl = 5;
	h.tot_len = bpf_htons(sizeof(h) + sizeof(*th));
	h.frag_off = bpf_htons(SG_IP_DF);
	h.ttl = SG_RST_TTL;
	h.protocol = IPPROTO_TCP;
	__builtin_memcpy(&h.saddr, ri->daddr, 4);
	__builtin_memcpy(&h.daddr, ri->saddr, 4);
	h.check = sg_csum_fold(sg_csum_words(&h, sizeof(h) / 2));
	*iph = h;
	sg_rst_tcp(ri, th, sg_csum_words(&h.saddr, 4));
	return 0;
}

static __always_inline int sg_rst_write_v6(void *l3, void *end, const struct sg_rst_info *ri)
{
	struct ipv6hdr *ip6 = l3;
	struct tcphdr *th = l3 + sizeof(*ip6);
	struct ipv6hdr h = {};

	if (l3 + sizeof(*ip6) + sizeof(*th) > end)
		return -1;
	h.version = 6;
	h.payload_len = bpf_htons(sizeof(*th));
	h.nexthdr = IPPROTO_TCP;
	h.hop_limit = SG_RST_TTL;
	__builtin_memcpy(&h.saddr, ri->daddr, 16);
	__builtin_memcpy(&h.daddr, ri->saddr, 16);
	*ip6 = h;
	sg_rst_tcp(ri, th, sg_csum_words(&h.saddr, 16));
	return 0;
}

/* Turn the SYN in ctx (described by ri) into the RST; returns 0 when the frame is ready for XDP_TX. */
static __always_inline int sg_send_rst(struct xdp_md *ctx, const struct sg_rst_info *ri)
{
	__u32 l3_len, new_len, l2;
	void *data, *end;

	l3_len = ri->family == 4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	new_len = ri->l2_len + l3_len + sizeof(struct tcphdr);
	/* new_len never exceeds the parsed frame, so this only shrinks */
	if (bpf_xdp_adjust_tail(ctx, (int)new_len - (int)bpf_xdp_get_buff_len(ctx)) < 0)
		return -1;
	/* the resize invalidated every packet pointer: derive and check them again */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) > end)
		return -1;
	sg_rst_swap_macs(data);
	/* opaque copy: clang must bound-check the very register it adds to the pointer */
	l2 = ri->l2_len;
	asm volatile("" : "+r"(l2));
	if (l2 < sizeof(struct ethhdr) || l2 > sizeof(struct ethhdr) + SG_MAX_VLANS * 4)
		return -1;
	if (ri->family == 4)
		return sg_rst_write_v4(data + l2, end, ri);
	return sg_rst_write_v6(data + l2, end, ri);
}

#endif /* SG_BPF_RESET_H */
