/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which segments from the remote end of a tracked connection are acceptable, as one
 * pure function (the BPF program and tests/bpf/test_window.cpp share it). Only an
 * acceptable segment is evidence or changes the connection (docs/internals.md,
 * "Connections"):
 *  - SYN_SENT: a SYN-ACK acknowledging the VM's SYN; a RST with ACK acknowledging it
 *    (RFC 793, RFC 5961 section 3). Nothing else.
 *  - ESTABLISHED: a RST whose seq is in [remote_nxt, remote_nxt + SG_CONN_WINDOW); other
 *    segments need ACK, an ack in [vm_isn + 1, vm_nxt] and a seq within SG_CONN_WINDOW of
 *    remote_nxt either way. Data that ends after remote_nxt is new; a retransmission
 *    (SYN-ACK included) is acceptable but new in nothing.
 * Sequence numbers compare as serial numbers (RFC 1982): a range check is one unsigned
 * subtraction, right across the wrap.
 */
#ifndef SG_BPF_WINDOW_H
#define SG_BPF_WINDOW_H

#include <linux/types.h>
#include <smtpgov/abi.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define SG_WIN_FIN 0x01
#define SG_WIN_SYN 0x02
#define SG_WIN_RST 0x04
#define SG_WIN_ACK 0x10

enum sg_win {
	SG_WIN_OUTSIDE = 0,  /* not acceptable: ignored, changes nothing */
	SG_WIN_SYNACK  = 1,  /* answers the VM's SYN: counted once, ESTABLISHED */
	SG_WIN_RESET   = 2,  /* acceptable RST: counted, the connection ends */
	SG_WIN_NEW     = 3,  /* in window, ends after remote_nxt: its data is new */
	SG_WIN_OLD     = 4,  /* in window, nothing new (retransmission, pure ACK) */
};

/* A segment from the remote, host order. */
struct sg_win_seg {
	__u32 seq;
	__u32 ack;
	__u32 len;               /* payload bytes */
	__u8 flags;              /* TCP flags byte */
};

/* x in [lo, lo + span] in serial arithmetic */
static __always_inline int sg_seq_within(__u32 x, __u32 lo, __u32 span)
{
	return x - lo <= span;
}

/* a after b (RFC 1982) */
static __always_inline int sg_seq_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

/*
 * Judge segment s against a connection in `state`; *nxt receives remote_nxt after it
 * (the SYN-ACK's seq + 1, or the end of new data or FIN), unchanged otherwise.
 */
static __always_inline int sg_window(__u8 state, __u32 vm_isn, __u32 vm_nxt, __u32 remote_nxt,
				     const struct sg_win_seg *s, __u32 *nxt)
{
	/* the remote may acknowledge anything from the SYN (isn + 1) to what the VM sent */
	int ack_ok = (s->flags & SG_WIN_ACK) && sg_seq_within(s->ack, vm_isn + 1, vm_nxt - (vm_isn + 1));
	__u32 end;

	*nxt = remote_nxt;
	if (state == SG_CONN_SYN_SENT) {
		if (s->flags & SG_WIN_RST)
			return ack_ok ? SG_WIN_RESET : SG_WIN_OUTSIDE;
		if ((s->flags & (SG_WIN_SYN | SG_WIN_ACK)) != (SG_WIN_SYN | SG_WIN_ACK) || !ack_ok)
			return SG_WIN_OUTSIDE;
		*nxt = s->seq + 1;
		return SG_WIN_SYNACK;
	}
	if (s->flags & SG_WIN_RST)
		return sg_seq_within(s->seq, remote_nxt, SG_CONN_WINDOW - 1) ? SG_WIN_RESET : SG_WIN_OUTSIDE;
	if (!ack_ok)
		return SG_WIN_OUTSIDE;
	if (s->flags & SG_WIN_SYN)   /* a retransmitted SYN-ACK: its seq + 1 is behind remote_nxt */
		return sg_seq_within(s->seq + 1, remote_nxt - SG_CONN_WINDOW, SG_CONN_WINDOW) ?
			       SG_WIN_OLD : SG_WIN_OUTSIDE;
	if (!sg_seq_within(s->seq, remote_nxt - SG_CONN_WINDOW, 2 * SG_CONN_WINDOW - 1))
		return SG_WIN_OUTSIDE;
	end = s->seq + s->len + ((s->flags & SG_WIN_FIN) ? 1 : 0);
	if (!sg_seq_after(end, remote_nxt))
		return SG_WIN_OLD;
	*nxt = end;
	return SG_WIN_NEW;
}

#endif /* SG_BPF_WINDOW_H */
