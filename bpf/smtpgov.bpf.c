// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* smtpgov datapath entry points; the logic lives in lib/ (docs/internals.md). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/xdp.h"
#include "lib/reply.h"

/*
 * A new SMTP connection: SYN without ACK (to a configured port, checked by the caller).
 * RST or FIN together with SYN is not a connection attempt any stack accepts, so it is
 * not counted; ECE/CWR may be set (RFC 3168 ECN setup SYN).
 */
static __always_inline int sg_is_new_conn(const struct sg_pkt *p)
{
	return (p->tcp_flags & (SG_TCP_SYN | SG_TCP_ACK | SG_TCP_RST | SG_TCP_FIN)) == SG_TCP_SYN;
}

SEC("xdp")
int smtpgov_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct sg_vm_seg s = {};
	struct sg_pkt p = {};
	int res, smtp;

	res = sg_parse_frame(data, end, (__u32)(end - data), &p);
	/* the port test is all that other traffic pays; only SMTP meets the connection table */
	smtp = res == SG_RES_NON_SMTP && sg_is_smtp_port(bpf_ntohs(p.tcp->dest));
	if (smtp && sg_is_new_conn(&p))
		res = SG_RES_SMTP_SYN;
	sg_count(res);
	/* unclassifiable but able to hide a new connection: it goes nowhere */
	if (res == SG_RES_REFUSED)
		return XDP_DROP;
	if ((p.first_frag || res == SG_RES_FRAGMENT) && p.l4_proto == IPPROTO_TCP &&
	    sg_fragment(ctx, p.l2_len) == XDP_DROP)
		return XDP_DROP;
	if (!smtp)
		return XDP_PASS;
	sg_vm_seg_init(&p, ctx->ingress_ifindex, data, &s);
	if (res == SG_RES_SMTP_SYN)
		return sg_new_smtp(ctx, &s);
	return sg_vm_segment(ctx, &s);
}

SEC("tc")
int smtpgov_tc_reply(struct __sk_buff *skb)
{
	return sg_tc_reply(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
