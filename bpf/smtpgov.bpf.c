// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* smtpgov datapath entry points; the logic lives in lib/ (docs/internals.md). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/bucket.h"
#include "lib/verdict.h"
#include "lib/reset.h"
#include "lib/reply.h"

/*
 * A new SMTP connection: SYN without ACK to a configured port. RST or FIN
 * together with SYN is not a connection attempt any stack accepts, so it is
 * not counted; ECE/CWR may be set (RFC 3168 ECN setup SYN).
 */
static __always_inline int sg_is_new_smtp(const struct sg_pkt *p)
{
	if ((p->tcp_flags & (SG_TCP_SYN | SG_TCP_ACK | SG_TCP_RST | SG_TCP_FIN)) != SG_TCP_SYN)
		return 0;
	return sg_is_smtp_port(bpf_ntohs(p->tcp->dest));
}

static __always_inline int sg_enforce(struct xdp_md *ctx, const struct sg_pkt *p)
{
	struct sg_judgement j = {};

	sg_attribute(p, ctx->ingress_ifindex, bpf_ktime_get_ns(), &j);
	if (!sg_refused(j.verdict))
		return XDP_PASS;   /* steered SYNs pass until steering NAT lands */
	if (j.action != SG_ACT_RESET)
		return XDP_DROP;
	if (sg_send_rst(ctx, p) < 0)
		return XDP_DROP;
	sg_count(SG_RES_RST_SENT);
	if (j.stats)
		j.stats->rst_sent++;
	else if (j.autov)
		__sync_fetch_and_add(&j.autov->stats.rst_sent, 1);
	return XDP_TX;
}

SEC("xdp")
int smtpgov_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct sg_pkt p = {};
	int res;

	res = sg_parse_frame(data, end, (__u32)(end - data), &p);
	if (res == SG_RES_NON_SMTP && sg_is_new_smtp(&p))
		res = SG_RES_SMTP_SYN;
	sg_count(res);
	if (res == SG_RES_SMTP_SYN)
		return sg_enforce(ctx, &p);
	/* unclassifiable but able to hide a new connection: it goes nowhere */
	return res == SG_RES_REFUSED ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int smtpgov_tc_reply(struct __sk_buff *skb)
{
	return sg_tc_reply(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
