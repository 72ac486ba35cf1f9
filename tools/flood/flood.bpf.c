// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * smtpgov-flood's frame factory, run with BPF_PROG_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES): each run writes one TCP SYN from a template,
 * randomises source port, ISN and (optionally) source address, fixes both
 * checksums, and returns XDP_TX so the kernel transmits it out of the ingress
 * device (the VM's veth).
 *
 * Pages of the live-frames pool are recycled without being re-initialised, so
 * the program rewrites the whole frame every time instead of patching it.
 * The family of a run is given by the size of its frame: userspace runs IPv4
 * and IPv6 templates in separate batches.
 *
 * Userspace also attaches this program (generic mode) to the namespace's lo for
 * the length of a run: that keeps it in the kernel's XDP dispatcher, so a
 * BPF_PROG_RUN costs microseconds instead of two dispatcher rebuilds (an RCU
 * grace period each). Real frames on lo carry another ingress ifindex and pass.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "flood_abi.h"

const volatile struct flood_params params = {};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FLOOD_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct flood_target);
} flood_targets SEC(".maps");

/* frames built per CPU: cycles through the targets of a family */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flood_cursor SEC(".maps");

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u32 words(__u32 v)
{
	return (v & 0xffff) + (v >> 16);
}

/* l3 and v6 are constants at each call site, so every layout gets its own copy */
static __always_inline int build(struct xdp_md *ctx, const __u32 l3, const int v6)
{
	const __u32 iplen = v6 ? 40 : 20;
	const __u32 len = l3 + iplen + FLOOD_TCP_HLEN;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, n = v6 ? params.n_v6 : params.n_v4;
	__u32 base = v6 ? params.n_v4 : 0, idx;
	struct flood_target *t;
	__u64 *cur;

	if (data + len > data_end || n == 0)
		return XDP_ABORTED;
	cur = bpf_map_lookup_elem(&flood_cursor, &zero);
	if (!cur)
		return XDP_ABORTED;
	idx = base + (__u32)(*cur % n);
	(*cur)++;
	t = bpf_map_lookup_elem(&flood_targets, &idx);
	if (!t)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->frame, len);

	__u8 *ip = data + l3;
	__u8 *tcp = ip + iplen;
	__u32 r = bpf_get_prandom_u32();
	__u16 sport = bpf_htons(1024 + (r & 0xffff) % (65536 - 1024));
	__u32 seq = bpf_get_prandom_u32();
	__u32 tsum = t->tcp_sum + sport + words(seq);

	*(__u16 *)tcp = sport;
	*(__u32 *)(tcp + 4) = seq;
	if (params.spoof & (v6 ? FLOOD_SPOOF_V6 : FLOOD_SPOOF_V4)) {
		if (v6) {
			__u32 *src = (__u32 *)(ip + 8);
			for (int i = 0; i < 4; i++) {
				__u32 a = (params.spoof6_base[i] & params.spoof6_mask[i]) |
					  (bpf_get_prandom_u32() & ~params.spoof6_mask[i]);
				src[i] = a;
				tsum += words(a);
			}
		} else {
			__u32 a = (params.spoof4_base & params.spoof4_mask) |
				  (bpf_get_prandom_u32() & ~params.spoof4_mask);
			*(__u32 *)(ip + 12) = a;
			tsum += words(a);
			*(__u16 *)(ip + 10) = fold(t->ip_sum + words(a));
		}
	} else if (!v6) {
		*(__u16 *)(ip + 10) = fold(t->ip_sum);
	}
	*(__u16 *)(tcp + 16) = fold(tsum);
	return XDP_TX;
}

SEC("xdp")
int flood_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	/* an IPv6 run hands us a frame long enough for the IPv6 layout */
	int v6 = data + params.l3_off + 40 + FLOOD_TCP_HLEN <= data_end;

	if (ctx->ingress_ifindex != params.tx_ifindex)
		return XDP_PASS;

	if (params.l3_off == ETH_HLEN + 4)
		return v6 ? build(ctx, ETH_HLEN + 4, 1) : build(ctx, ETH_HLEN + 4, 0);
	return v6 ? build(ctx, ETH_HLEN, 1) : build(ctx, ETH_HLEN, 0);
}

/* The live-frames probe: sends its input frame (an ICMP echo to the next hop)
 * unchanged, so userspace can see whether XDP_TX frames get through at all. */
SEC("xdp")
int flood_probe(struct xdp_md *ctx)
{
	if (ctx->ingress_ifindex != params.tx_ifindex)
		return XDP_PASS;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
