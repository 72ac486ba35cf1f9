/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Steering NAT (docs/internals.md, "Connections"): XDP rewrites a steered VM's segments
 * to the proxy, TC rewrites the proxy's answers back to the server the VM dialled.
 * Checksums are updated incrementally; nothing but the address and port changes (VLAN
 * tags, IP options and extension headers stay as they are).
 */
#ifndef SG_BPF_NAT_H
#define SG_BPF_NAT_H

#include <stddef.h>
#include <linux/pkt_cls.h>
#include "conn.h"
#include "csum.h"

/* Where a steered flow of `family` goes: 1 and *addr (16 bytes, zero-padded), *port; 0 if none. */
static __always_inline int sg_proxy_of(const struct sg_runtime *rt, __u8 family, __u8 *addr,
				       __be16 *port)
{
	if (family == 4 && (rt->flags & SG_RT_PROXY_V4)) {
		__builtin_memcpy(addr, rt->proxy_v4, 4);
		*port = rt->proxy_v4_port;
		return 1;
	}
	if (family == 6 && (rt->flags & SG_RT_PROXY_V6)) {
		__builtin_memcpy(addr, rt->proxy_v6, 16);
		*port = rt->proxy_v6_port;
		return 1;
	}
	return 0;
}

/* Is port (host order) steered? sg_runtime.proxy_ports; none configured reads as [25]. */
__noinline int sg_proxy_port(__u16 port)
{
	struct sg_runtime *rt = sg_rt();
	__u32 i, n;

	if (!rt)
		return 0;
	n = rt->n_proxy_ports;
	if (n == 0)
		return port == 25;
	/* n is run-time data: a bounded loop, not unrolled */
	for (i = 0; i < SG_MAX_PORTS && i < n; i++) {
		if (rt->proxy_ports[i] == port)
			return 1;
	}
	return 0;
}

/* Does the client ADDR:PORT of k already name another live steered flow? */
__noinline int sg_nat_conflict(const struct sg_conn_key *k)
{
	struct sg_conn_nat_key nk = {};
	struct sg_conn_key *v;
	struct sg_conn *c;

	if (!k)
		return 0;
	sg_nat_key(k, &nk);
	v = bpf_map_lookup_elem(&sg_conn_nat, &nk);
	if (!v || sg_words_eq(v, k, SG_CONN_KEY_WORDS))
		return 0;
	c = bpf_map_lookup_elem(&sg_conn, v);
	return c && (c->flags & SG_CONNF_STEERED);
}

/* Index steered flow k by its client ADDR:PORT (a stale index entry is replaced). */
static __always_inline int sg_nat_index(const struct sg_conn_key *k)
{
	struct sg_conn_nat_key nk = {};

	sg_nat_key(k, &nk);
	return bpf_map_update_elem(&sg_conn_nat, &nk, k, BPF_ANY);
}

/* XDP: send a VM's segment to addr:port (addr in the frame's family, 16 bytes); ip4 or ip6 is set. */
static __always_inline void sg_nat_dst(struct iphdr *ip4, struct ipv6hdr *ip6, struct tcphdr *th,
				       const __u8 *addr, __be16 port)
{
	__u64 diff;

	if (ip4) {
		__be32 to;

		__builtin_memcpy(&to, addr, 4);
		diff = sg_csum_diff(&ip4->daddr, &to, 2);
		ip4->check = sg_csum_replace(ip4->check, diff);
		ip4->daddr = to;
	} else if (ip6) {
		diff = sg_csum_diff(&ip6->daddr, addr, 8);
		__builtin_memcpy(&ip6->daddr, addr, 16);
	} else {
		return;
	}
	/* the TCP checksum covers the pseudo-header's address and the port */
	diff += sg_csum_diff(&th->dest, &port, 1);
	th->dest = port;
	th->check = sg_csum_replace(th->check, diff);
}

/* What sg_nat_src_tc needs of a segment, read before the first helper moves the packet. */
struct sg_nat_seg {
	__u32 l3_off;
	__u32 l4_off;
	__u8 saddr[16];          /* 4-byte aligned: compared a word at a time */
	__be16 sport;
	__u8 v4;
	__u8 pad;
};

static __always_inline void sg_nat_seg_save(const struct sg_pkt *p, void *data, struct sg_nat_seg *s)
{
	s->v4 = p->ip4 != 0;
	s->l3_off = (__u32)(p->ip4 ? (void *)p->ip4 - data : (void *)p->ip6 - data);
	s->l4_off = (__u32)((void *)p->tcp - data);
	s->sport = p->tcp->source;
	sg_copy_addr(p, 0, s->saddr, 16);
}

/*
 * TC: the proxy's segment towards the VM comes from addr:port (the server it dialled).
 * The csum helpers keep CHECKSUM_PARTIAL skbs of a local proxy right: the address is
 * a pseudo-header change, the port one the device still sums.
 */
static __always_inline void sg_nat_src_tc(struct __sk_buff *skb, const struct sg_nat_seg *s,
					  const __u8 *addr, __be16 port)
{
	__u32 check = s->l4_off + offsetof(struct tcphdr, check);
	__be32 from4, to4;
	__s64 diff;

	if (s->v4) {
		__builtin_memcpy(&from4, s->saddr, 4);
		__builtin_memcpy(&to4, addr, 4);
		if (from4 != to4) {
			bpf_l4_csum_replace(skb, check, from4, to4, BPF_F_PSEUDO_HDR | sizeof(to4));
			bpf_l3_csum_replace(skb, s->l3_off + offsetof(struct iphdr, check), from4, to4,
					    sizeof(to4));
			bpf_skb_store_bytes(skb, s->l3_off + offsetof(struct iphdr, saddr), &to4,
					    sizeof(to4), 0);
		}
	} else if (!sg_words_eq(s->saddr, addr, 4)) {
		diff = bpf_csum_diff((__be32 *)s->saddr, 16, (__be32 *)addr, 16, 0);
		bpf_l4_csum_replace(skb, check, 0, diff, BPF_F_PSEUDO_HDR);
		bpf_skb_store_bytes(skb, s->l3_off + offsetof(struct ipv6hdr, saddr), addr, 16, 0);
	}
	if (s->sport != port) {
		bpf_l4_csum_replace(skb, check, s->sport, port, sizeof(port));
		bpf_skb_store_bytes(skb, s->l4_off + offsetof(struct tcphdr, source), &port,
				    sizeof(port), 0);
	}
}

#endif /* SG_BPF_NAT_H */
