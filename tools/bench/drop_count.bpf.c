// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The cheapest possible drop on each hook, counted: tools/bench/run.sh's `empty-xdp`
 * and `tc-drop` contenders (and the floor of every interface kind). The counter is
 * what makes such a row valid: it shows the program saw every frame that was sent. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sgbn_dropped SEC(".maps");

static __always_inline void count(void)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&sgbn_dropped, &key);

	if (n)
		(*n)++; /* per-CPU slot: no other writer */
}

SEC("xdp")
int sgbn_xdp_drop(struct xdp_md *ctx)
{
	(void)ctx;
	count();
	return XDP_DROP;
}

SEC("tc")
int sgbn_tc_drop(struct __sk_buff *skb)
{
	(void)skb;
	count();
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
