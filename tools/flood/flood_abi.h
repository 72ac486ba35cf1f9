/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * smtpgov-flood: what the live-frames XDP program (flood.bpf.c) and its loader
 * (syn_live.cpp) share. Plain C, fixed-width fields.
 */
#ifndef SMTPGOV_FLOOD_ABI_H
#define SMTPGOV_FLOOD_ABI_H

#include <linux/types.h>

#define FLOOD_MAX_TARGETS 64   /* destination x port combinations cycled per frame */
#define FLOOD_FRAME_MAX   96   /* eth + 802.1Q + IPv6 + TCP with MSS option = 82 */
#define FLOOD_TCP_HLEN    24   /* TCP header with one option: MSS */
#define FLOOD_SPOOF_V4    1
#define FLOOD_SPOOF_V6    2

/*
 * One SYN template. Every field the program randomises (source port, ISN and, when
 * spoofing, the source address) is zero in frame[], and both checksums are zero;
 * tcp_sum/ip_sum are the unfolded 16-bit one's-complement sums of everything else
 * they cover (TCP: pseudo header + header; IPv4: header), in memory word order, so
 * the program only adds the words it writes and folds.
 */
struct flood_target {
	__u8  frame[FLOOD_FRAME_MAX];
	__u32 tcp_sum;
	__u32 ip_sum;
};

/* Read-only parameters (rodata), set between open and load. */
struct flood_params {
	__u32 tx_ifindex;    /* live-frames device; frames seen anywhere else pass untouched */
	__u32 n_v4;          /* targets [0, n_v4) are IPv4 ... */
	__u32 n_v6;          /* ... and [n_v4, n_v4 + n_v6) are IPv6 */
	__u32 l3_off;        /* 14, or 18 behind an 802.1Q tag */
	__u32 spoof;          /* FLOOD_SPOOF_V4|V6: randomise the source inside the prefix */
	__u32 spoof4_base;    /* network order; prefix bits of the spoofed IPv4 source */
	__u32 spoof4_mask;    /*   (mask bits set = fixed, clear = random) */
	__u32 spoof6_base[4]; /* the same for IPv6 */
	__u32 spoof6_mask[4];
};

#endif
