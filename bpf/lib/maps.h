/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Map definitions and static configuration (contract: docs/internals.md). */
#ifndef SG_BPF_MAPS_H
#define SG_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <smtpgov/abi.h>

#define SG_READ_ONCE(x) (*(volatile typeof(x) *)&(x))

/* Ports are rodata so the verifier folds the port test into constants. */
const volatile struct sg_static_cfg sg_cfg = {
	.ports = { 25, 465, 587 },
	.n_ports = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct sg_iface);
} sg_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SG_MAX_IFACES_BIG);
	__type(key, __u32);
	__type(value, struct sg_iface);
} sg_ifaces_big SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SG_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sg_lpm_v4);
	__type(value, __u32);
} sg_vm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SG_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sg_lpm_v6);
	__type(value, __u32);
} sg_vm_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_DEFAULT_MAX_VMS);
	__type(key, __u32);
	__type(value, struct sg_vm_policy);
} sg_vm_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_DEFAULTS_MAX);
	__type(key, __u32);
	__type(value, struct sg_vm_policy);
} sg_defaults SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_DEFAULT_MAX_VMS);
	__type(key, __u32);
	__type(value, struct sg_bucket);
} sg_vm_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SG_DEFAULT_MAX_VMS);
	__type(key, __u32);
	__type(value, struct sg_vm_stats);
} sg_vm_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SG_MAX_AUTO);
	__type(key, struct sg_auto_key);
	__type(value, struct sg_auto_vm);
} sg_auto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SG_MAX_AUTO);
	__type(key, struct sg_auto_key);
	__type(value, struct sg_vm_policy);
} sg_auto_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SG_RES_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sg_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sg_runtime);
} sg_runtime SEC(".maps");

/* connection table (abi.h): allocated as used, so an idle host pays nothing for it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SG_CONN_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sg_conn_key);
	__type(value, struct sg_conn);
} sg_conn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SG_CONN_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sg_conn_ring_key);
	__type(value, struct sg_conn_key);
} sg_conn_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SG_CONN_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sg_conn_nat_key);
	__type(value, struct sg_conn_key);
} sg_conn_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SG_RINGBUF_BYTES);
} sg_events SEC(".maps");

/*
 * The interface entry, or NULL. Nearly every ifindex is below SG_MAX_IFACES and takes
 * the array, whose lookup the JIT inlines (a helper call costs as much as the rest of
 * the SYN path on CPUs with return-thunk mitigations); an empty slot reads as NULL.
 */
static __always_inline struct sg_iface *sg_iface_lookup(__u32 ifindex)
{
	struct sg_iface *ifc;

	if (ifindex >= SG_MAX_IFACES)
		return bpf_map_lookup_elem(&sg_ifaces_big, &ifindex);
	ifc = bpf_map_lookup_elem(&sg_ifaces, &ifindex);
	return ifc && ifc->flags ? ifc : 0;
}

/* A benchmark's stop after `stage` (enum sg_bench_stop): constant 0 outside benchmarks. */
static __always_inline int sg_stop(__u32 stage)
{
	return sg_cfg.bench_stop == stage;
}

/*
 * The clock of a new connection's judgement (bucket, over-limit event, connection entry):
 * CLOCK_MONOTONIC at tick resolution. bpf_ktime_get_coarse_ns() is at most one tick
 * (4 ms at HZ=250) behind bpf_ktime_get_ns() and reads no clocksource (on kvm-clock ~20 ns
 * less per call; with return thunks the call itself still costs about that much); a
 * bucket then refills in tick steps, which moves what it admits by at most rate x tick,
 * and only its burst shape, not its rate (tests/bpf Bucket accuracy).
 */
static __always_inline __u64 sg_clock(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline void sg_count(__u32 res)
{
	__u64 *c = bpf_map_lookup_elem(&sg_global, &res);

	if (c)
		*c += 1;
}

/* n_ports and ports are rodata: the verifier folds this loop to a few compares */
static __always_inline int sg_is_smtp_port(__u16 port)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < SG_MAX_PORTS; i++) {
		if (i >= sg_cfg.n_ports)
			break;
		if (sg_cfg.ports[i] == port)
			return 1;
	}
	return 0;
}

#endif /* SG_BPF_MAPS_H */
