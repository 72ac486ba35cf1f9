/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One's complement checksum arithmetic (RFC 1071, RFC 1624) in plain C: the BPF
 * programs and the userspace tests share it. Words are summed in memory order, so
 * a result stored back in memory order is right on either byte order.
 */
#ifndef SG_BPF_CSUM_H
#define SG_BPF_CSUM_H

#include <linux/types.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Fold a 64-bit sum to 16 bits and complement it: the value of a checksum field. */
static __always_inline __u16 sg_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* One's complement sum of 16-bit words in memory order (result is in memory order too). */
static __always_inline __u64 sg_csum_words(const void *buf, int words)
{
	const __u16 *w = (const __u16 *)buf;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < words; i++)
		sum += w[i];
	return sum;
}

/* What replacing `words` 16-bit words from -> to adds to a sum: sum of ~m + m'. */
static __always_inline __u64 sg_csum_diff(const void *from, const void *to, int words)
{
	const __u16 *f = (const __u16 *)from, *t = (const __u16 *)to;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < words; i++)
		sum += (__u16)~f[i] + (__u32)t[i];
	return sum;
}

/* The checksum field after a change whose sg_csum_diff is `diff`: HC' = ~(~HC + ~m + m') (RFC 1624 eq. 3). */
static __always_inline __u16 sg_csum_replace(__u16 check, __u64 diff)
{
	return sg_csum_fold((__u16)~check + diff);
}

#endif /* SG_BPF_CSUM_H */
