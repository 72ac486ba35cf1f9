/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing shared by the XDP and TC programs. A cursor walks the frame;
 * each parse function handles one header and returns the next header's type
 * (or 0 for TCP) or a negative SG_PARSE_* value. The rules here are mirrored
 * exactly by the userspace reference classifier (tests/lib/reference.cpp).
 *
 * What cannot be classified but could hide a new connection is refused
 * (SG_RES_REFUSED, dropped on VM-facing interfaces; docs/internals.md):
 *  - a third VLAN tag;
 *  - an IPv6 chain of more than SG_MAX_V6_EXT_HDRS extension headers;
 *  - a first fragment (IPv4 MF at offset 0, IPv6 fragment header at offset 0) whose
 *    later headers down to the end of the TCP header are not all in it: the receiver
 *    completes them from fragments we cannot judge (RFC 1858, RFC 7112);
 *  - an IPv4 TCP fragment at offset 1, which can overwrite a first fragment's data
 *    offset and flags (RFC 1858, RFC 3128).
 * Other non-first fragments pass: at offset >= 2 (16 bytes) an IPv4 fragment cannot
 * reach the ports, data offset or flags, and IPv6 receivers discard overlapping
 * fragments (RFC 5722). Frames no receiver accepts (truncated, bad lengths or
 * versions) pass as SG_RES_UNPARSED.
 */
#ifndef SG_BPF_PARSING_H
#define SG_BPF_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <smtpgov/abi.h>

#define SG_PARSE_SHORT  (-1)   /* bounds or sanity failure: SG_RES_UNPARSED */
#define SG_PARSE_FRAG   (-2)   /* non-first fragment: SG_RES_FRAGMENT */
#define SG_PARSE_REFUSE (-3)   /* may hide a new connection, cannot be classified: SG_RES_REFUSED */

#define SG_MAX_VLANS    2
#define SG_ETH_P_8021Q  0x8100
#define SG_ETH_P_8021AD 0x88A8
#define SG_IP_OFFMASK   0x1fff
#define SG_IP_MF        0x2000
#define SG_IP6_OFFMASK  0xfff8

#define SG_TCP_FIN 0x01
#define SG_TCP_SYN 0x02
#define SG_TCP_RST 0x04
#define SG_TCP_ACK 0x10

/*
 * end bounds every pointer we dereference (the linear data); frame_len is the whole
 * frame, against which IP lengths are checked: an XDP frame is all linear, but a TC
 * skb may keep its payload in page fragments beyond end.
 */
struct hdr_cursor {
	void *pos;
	void *end;
	void *start;
	__u32 frame_len;
};

/* Do `len` bytes from the cursor fit in the frame (linear or not)? */
static __always_inline int sg_fits_frame(const struct hdr_cursor *c, __u32 len)
{
	return (__u64)(c->pos - c->start) + len <= c->frame_len;
}

struct sg_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* What the classifier learnt about a frame; pointers are valid until the frame is resized. */
struct sg_pkt {
	struct ethhdr *eth;
	struct iphdr *ip4;      /* exactly one of ip4/ip6 is set for IP frames (fragments too) */
	struct ipv6hdr *ip6;
	struct tcphdr *tcp;
	void *l4;               /* the L4 header (NON_TCP, NON_SMTP results) */
	__u32 l3_rem;           /* datagram bytes after the current header (then: TCP payload) */
	__u16 l2_len;           /* Ethernet + VLAN tags */
	__u8 family;            /* 4 or 6 */
	__u8 tcp_flags;
	__u8 first_frag;        /* a first fragment: every later header must be whole in it */
	__u8 l4_proto;          /* L4 protocol, also of a non-first fragment */
};

static __always_inline int sg_parse_eth(struct hdr_cursor *c, struct ethhdr **ethp)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > c->end)
		return SG_PARSE_SHORT;
	c->pos = eth + 1;
	*ethp = eth;
	return bpf_ntohs(eth->h_proto);
}

static __always_inline int sg_parse_vlan(struct hdr_cursor *c)
{
	struct sg_vlan_hdr *vh = c->pos;

	if ((void *)(vh + 1) > c->end)
		return SG_PARSE_SHORT;
	c->pos = vh + 1;
	return bpf_ntohs(vh->encap_proto);
}

/* IPv4 with options; tot_len must fit the frame (frames may carry L2 padding). */
static __always_inline int sg_parse_ipv4(struct hdr_cursor *c, struct iphdr **iphp, __u32 *rem,
					 __u8 *first_frag)
{
	struct iphdr *iph = c->pos;
	__u32 hlen, tot, off;

	if ((void *)(iph + 1) > c->end)
		return SG_PARSE_SHORT;
	if (iph->version != 4 || iph->ihl < 5)
		return SG_PARSE_SHORT;
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	if (c->pos + hlen > c->end || tot < hlen || !sg_fits_frame(c, tot))
		return SG_PARSE_SHORT;
	/* only the first fragment carries the TCP header */
	off = bpf_ntohs(iph->frag_off) & SG_IP_OFFMASK;
	*iphp = iph;
	if (off) {
		/* offset 1 (8 bytes) can rewrite a first fragment's TCP flags (RFC 1858) */
		if (off == 1 && iph->protocol == IPPROTO_TCP)
			return SG_PARSE_REFUSE;
		return SG_PARSE_FRAG;
	}
	*first_frag = !!(iph->frag_off & bpf_htons(SG_IP_MF));
	c->pos += hlen;
	*rem = tot - hlen;
	return iph->protocol;
}

static __always_inline int sg_parse_ipv6(struct hdr_cursor *c, struct ipv6hdr **ip6p, __u32 *rem)
{
	struct ipv6hdr *ip6 = c->pos;
	__u32 plen;

	if ((void *)(ip6 + 1) > c->end)
		return SG_PARSE_SHORT;
	if (ip6->version != 6)
		return SG_PARSE_SHORT;
	plen = bpf_ntohs(ip6->payload_len);
	if (!sg_fits_frame(c, sizeof(*ip6) + plen))
		return SG_PARSE_SHORT;
	c->pos = ip6 + 1;
	*rem = plen;
	*ip6p = ip6;
	return ip6->nexthdr;
}

static __always_inline int sg_is_ipv6_ext(int nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT;
}

/* One extension header: hop-by-hop, routing, destination options or fragment
 * (whose next header names the fragmented protocol, in every fragment). */
static __always_inline int sg_parse_ipv6_ext(struct hdr_cursor *c, int nh, __u32 *rem,
					     __u8 *first_frag, __u8 *frag_proto)
{
	__u8 *h = c->pos;
	__u32 len;

	if ((void *)(h + 8) > c->end)
		return SG_PARSE_SHORT;
	/* fragment header: fixed 8 bytes; its second byte is reserved, not a length */
	len = nh == IPPROTO_FRAGMENT ? 8 : ((__u32)h[1] + 1) * 8;
	if (c->pos + len > c->end || len > *rem)
		return SG_PARSE_SHORT;
	if (nh == IPPROTO_FRAGMENT) {
		*frag_proto = h[0];
		if (*(__be16 *)(h + 2) & bpf_htons(SG_IP6_OFFMASK))
			return SG_PARSE_FRAG;
		/* offset 0: the rest of the chain and TCP must be in this fragment (RFC 7112) */
		*first_frag = 1;
	}
	c->pos += len;
	*rem -= len;
	return h[0];
}

static __always_inline int sg_parse_tcp(struct hdr_cursor *c, struct tcphdr **thp, __u32 *rem)
{
	struct tcphdr *th = c->pos;
	__u32 len;

	if ((void *)(th + 1) > c->end)
		return SG_PARSE_SHORT;
	len = th->doff * 4;
	if (len < sizeof(*th) || c->pos + len > c->end || len > *rem)
		return SG_PARSE_SHORT;
	c->pos += len;
	*rem -= len;
	*thp = th;
	return 0;
}

/*
 * Copy the source (dst == 0) or destination address: 4 bytes for IPv4, v6_len
 * for IPv6. Branches on the header pointers, not on family, because the
 * verifier keeps pointers exact across stack spills but not narrow scalars.
 */
static __always_inline int sg_copy_addr(const struct sg_pkt *p, int dst, __u8 *out, int v6_len)
{
	if (p->ip4) {
		__builtin_memcpy(out, dst ? &p->ip4->daddr : &p->ip4->saddr, 4);
		return 4;
	}
	if (p->ip6) {
		if (v6_len == 16)
			__builtin_memcpy(out, dst ? &p->ip6->daddr : &p->ip6->saddr, 16);
		else
			__builtin_memcpy(out, dst ? &p->ip6->daddr : &p->ip6->saddr, 8);
		return v6_len;
	}
	return 0;
}

/* A header cut short in a first fragment is completed by fragments we cannot judge. */
static __always_inline int sg_parse_error(int err, __u8 first_frag)
{
	if (err == SG_PARSE_FRAG)
		return SG_RES_FRAGMENT;
	if (err == SG_PARSE_REFUSE || first_frag)
		return SG_RES_REFUSED;
	return SG_RES_UNPARSED;
}

/*
 * Parse a frame down to TCP; frame_len is its full length (XDP: data_end - data;
 * TC: skb->len, which counts paged data too). Returns SG_RES_NON_SMTP for a parsed TCP segment
 * (the caller decides whether it is a new SMTP connection), otherwise the final
 * sg_result of the frame (SG_RES_REFUSED: drop it).
 */
static __always_inline int sg_parse_frame(void *data, void *data_end, __u32 frame_len,
					  struct sg_pkt *p)
{
	struct hdr_cursor c = { .pos = data, .end = data_end, .start = data, .frame_len = frame_len };
	int proto, i;

	proto = sg_parse_eth(&c, &p->eth);
#pragma unroll
	for (i = 0; i < SG_MAX_VLANS; i++) {
		if (proto != SG_ETH_P_8021Q && proto != SG_ETH_P_8021AD)
			break;
		proto = sg_parse_vlan(&c);
	}
	if (proto < 0)
		return SG_RES_UNPARSED;
	p->l2_len = c.pos - data;
	if (proto == ETH_P_IP) {
		p->family = 4;
		proto = sg_parse_ipv4(&c, &p->ip4, &p->l3_rem, &p->first_frag);
	} else if (proto == ETH_P_IPV6) {
		p->family = 6;
		proto = sg_parse_ipv6(&c, &p->ip6, &p->l3_rem);
#pragma unroll
		for (i = 0; i < SG_MAX_V6_EXT_HDRS; i++) {
			if (proto < 0 || !sg_is_ipv6_ext(proto))
				break;
			proto = sg_parse_ipv6_ext(&c, proto, &p->l3_rem, &p->first_frag, &p->l4_proto);
		}
		/* a chain longer than we walk may hide TCP behind it */
		if (proto >= 0 && sg_is_ipv6_ext(proto))
			return SG_RES_REFUSED;
	} else if (proto == SG_ETH_P_8021Q || proto == SG_ETH_P_8021AD) {
		return SG_RES_REFUSED;   /* a third tag: deeper than we walk, may hide a SYN */
	} else {
		return SG_RES_NON_IP;
	}
	if (proto < 0) {
		if (p->ip4)
			p->l4_proto = p->ip4->protocol;
		return sg_parse_error(proto, p->first_frag);
	}
	p->l4_proto = proto;
	p->l4 = c.pos;
	if (proto != IPPROTO_TCP)
		return SG_RES_NON_TCP;
	if (sg_parse_tcp(&c, &p->tcp, &p->l3_rem) < 0)
		return sg_parse_error(SG_PARSE_SHORT, p->first_frag);
	p->tcp_flags = ((__u8 *)p->tcp)[13];
	return SG_RES_NON_SMTP;
}

#endif /* SG_BPF_PARSING_H */
