/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors about steered flows, on their way to the VM (TC): the quoted packet is
 * the VM's segment as rewritten to the proxy. Its destination goes back to the server
 * the VM dialled (inner IPv4 header checksum, and the inner TCP checksum when it is
 * quoted), and so does an outer source that is the proxy itself, so the proxy's
 * address never reaches the VM. The ICMP checksum follows every change (ICMPv6: its
 * pseudo-header too). Everything is read and written with skb helpers: ICMP errors are
 * rare and their quotes may sit outside the linear data.
 */
#ifndef SG_BPF_ICMP_H
#define SG_BPF_ICMP_H

#include <stddef.h>
#include <linux/pkt_cls.h>
#include "conn.h"
#include "csum.h"

/* linux/icmp.h drags in libc headers */
#define SG_ICMP_DEST_UNREACH   3
#define SG_ICMP_TIME_EXCEEDED  11
#define SG_ICMPV6_DEST_UNREACH 1
#define SG_ICMPV6_PARAMPROB    4

/* The quoted segment of an ICMP error: offsets in the skb, and what identifies its flow. */
struct sg_icmp_quote {
	__u32 icmp_off;
	__u32 daddr_off;         /* quoted destination address */
	__u32 ipcheck_off;       /* quoted IPv4 header checksum; 0 for IPv6 */
	__u32 tcp_off;           /* quoted TCP header (at least its first 8 bytes) */
	__u8 tcp_check;          /* the quote holds the TCP checksum */
	__u8 family;
	__be16 sport;
	__be16 dport;
	__be16 ipcheck;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 outer_l3_off;      /* the ICMP packet's own IP header */
	__u8 outer_saddr[16];
};

/* Errors that quote the offending packet: IPv4 unreachable/time exceeded, ICMPv6 1-4. */
static __always_inline int sg_icmp_is_error(__u8 family, __u8 type)
{
	if (family == 4)
		return type == SG_ICMP_DEST_UNREACH || type == SG_ICMP_TIME_EXCEEDED;
	return type >= SG_ICMPV6_DEST_UNREACH && type <= SG_ICMPV6_PARAMPROB;
}

/* Read the quoted IP header; returns 0 when it quotes TCP with both ports. */
static __always_inline int sg_icmp_quote_ip(struct __sk_buff *skb, struct sg_icmp_quote *q)
{
	__u32 in = q->icmp_off + 8;
	struct ipv6hdr ip6;
	struct iphdr ip4;
	__be16 ports[2];

	if (q->family == 4) {
		if (bpf_skb_load_bytes(skb, in, &ip4, sizeof(ip4)) < 0 || ip4.version != 4 ||
		    ip4.ihl < 5 || ip4.protocol != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(q->saddr, &ip4.saddr, 4);
		__builtin_memcpy(q->daddr, &ip4.daddr, 4);
		q->daddr_off = in + offsetof(struct iphdr, daddr);
		q->ipcheck_off = in + offsetof(struct iphdr, check);
		q->ipcheck = ip4.check;
		q->tcp_off = in + ip4.ihl * 4;
	} else {
		if (bpf_skb_load_bytes(skb, in, &ip6, sizeof(ip6)) < 0 || ip6.version != 6 ||
		    ip6.nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(q->saddr, &ip6.saddr, 16);
		__builtin_memcpy(q->daddr, &ip6.daddr, 16);
		q->daddr_off = in + offsetof(struct ipv6hdr, daddr);
		q->tcp_off = in + sizeof(ip6);
	}
	if (bpf_skb_load_bytes(skb, q->tcp_off, ports, sizeof(ports)) < 0)
		return -1;
	q->sport = ports[0];
	q->dport = ports[1];
	q->tcp_check = skb->len >= q->tcp_off + offsetof(struct tcphdr, check) + 2;
	return 0;
}

/* The steered flow the quote belongs to (its client is the quote's source): k and c. */
static __always_inline struct sg_conn *sg_icmp_flow(const struct sg_icmp_quote *q, __u32 ifindex,
						    struct sg_conn_key *k)
{
	struct sg_conn_nat_key nk = { .family = q->family, .vm_port = q->sport };
	struct sg_conn_key *v;
	struct sg_conn *c;

	__builtin_memcpy(nk.vm_addr, q->saddr, 16);
	v = bpf_map_lookup_elem(&sg_conn_nat, &nk);
	if (!v || v->ifindex != ifindex)
		return 0;
	__builtin_memcpy(k, v, sizeof(*k));
	c = bpf_map_lookup_elem(&sg_conn, k);
	if (!c || !(c->flags & SG_CONNF_STEERED) || c->proxy_port != q->dport ||
	    !sg_words_eq(c->proxy_addr, q->daddr, 4))
		return 0;
	return c;
}

/* Rewrite 2 bytes at off from `from` to `to`; returns the checksum diff of the change. */
static __always_inline __u64 sg_store16(struct __sk_buff *skb, __u32 off, __be16 from, __be16 to)
{
	bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
	return sg_csum_diff(&from, &to, 1);
}

/*
 * The quote back to what the VM sent (destination: the server k names); returns the
 * diff its changes make to the ICMP checksum.
 */
static __always_inline __u64 sg_icmp_fix_quote(struct __sk_buff *skb, const struct sg_icmp_quote *q,
					       const struct sg_conn_key *k)
{
	int words = q->family == 4 ? 2 : 8;
	__u64 addr = q->family == 4 ? sg_csum_diff(q->daddr, k->dst_addr, 2)
				    : sg_csum_diff(q->daddr, k->dst_addr, 8);
	__u64 port = sg_csum_diff(&q->dport, &k->dst_port, 1), diff = addr + port;
	__u32 check_off = q->tcp_off + offsetof(struct tcphdr, check);
	__be16 check;

	bpf_skb_store_bytes(skb, q->daddr_off, k->dst_addr, words == 2 ? 4 : 16, 0);
	bpf_skb_store_bytes(skb, q->tcp_off + offsetof(struct tcphdr, dest), &k->dst_port, 2, 0);
	if (q->family == 4)   /* the quoted IPv4 header's own checksum */
		diff += sg_store16(skb, q->ipcheck_off, q->ipcheck, sg_csum_replace(q->ipcheck, addr));
	if (q->tcp_check && bpf_skb_load_bytes(skb, check_off, &check, sizeof(check)) == 0)
		diff += sg_store16(skb, check_off, check, sg_csum_replace(check, addr + port));
	return diff;
}

/* An outer source that is the proxy becomes the dialled server; returns the pseudo-header diff. */
static __always_inline __u64 sg_icmp_fix_outer(struct __sk_buff *skb, const struct sg_icmp_quote *q,
					       const struct sg_conn_key *k, const __u8 *proxy)
{
	__u32 l3 = q->outer_l3_off;
	__be32 from, to;

	if (!sg_words_eq(q->outer_saddr, proxy, 4))
		return 0;
	if (q->family == 4) {
		__builtin_memcpy(&from, q->outer_saddr, 4);
		__builtin_memcpy(&to, k->dst_addr, 4);
		bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), from, to, sizeof(to));
		bpf_skb_store_bytes(skb, l3 + offsetof(struct iphdr, saddr), &to, sizeof(to), 0);
		return 0;   /* ICMPv4 has no pseudo-header */
	}
	bpf_skb_store_bytes(skb, l3 + offsetof(struct ipv6hdr, saddr), k->dst_addr, 16, 0);
	return sg_csum_diff(q->outer_saddr, k->dst_addr, 8);
}

/* An ICMP error towards the VM (q: where it is): translated when it quotes a steered flow. */
__noinline int sg_icmp_error(struct __sk_buff *skb, struct sg_icmp_quote *q)
{
	struct sg_conn_key k = {};
	struct sg_conn *c;
	__u8 proxy[16] SG_ALIGNED;
	__u8 hdr[4];
	__be16 check;
	__u64 diff;

	if (!q || bpf_skb_load_bytes(skb, q->icmp_off, hdr, sizeof(hdr)) < 0 ||
	    !sg_icmp_is_error(q->family, hdr[0]) || sg_icmp_quote_ip(skb, q) < 0)
		return TC_ACT_OK;
	c = sg_icmp_flow(q, skb->ifindex, &k);
	if (!c)
		return TC_ACT_OK;
	__builtin_memcpy(proxy, c->proxy_addr, 16);
	diff = sg_icmp_fix_outer(skb, q, &k, proxy);
	diff += sg_icmp_fix_quote(skb, q, &k);
	__builtin_memcpy(&check, &hdr[2], sizeof(check));
	sg_store16(skb, q->icmp_off + 2, check, sg_csum_replace(check, diff));
	return TC_ACT_OK;
}

static __always_inline int sg_icmp_reply(struct __sk_buff *skb, const struct sg_pkt *p, void *data)
{
	struct sg_icmp_quote q = {};

	if (!(p->ip4 && p->l4_proto == IPPROTO_ICMP) && !(p->ip6 && p->l4_proto == IPPROTO_ICMPV6))
		return TC_ACT_OK;
	q.family = p->family;
	q.icmp_off = (__u32)(p->l4 - data);
	q.outer_l3_off = (__u32)(p->ip4 ? (void *)p->ip4 - data : (void *)p->ip6 - data);
	sg_copy_addr(p, 0, q.outer_saddr, 16);
	return sg_icmp_error(skb, &q);
}

#endif /* SG_BPF_ICMP_H */
