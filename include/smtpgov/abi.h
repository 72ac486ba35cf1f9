/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * smtpgov kernel/userspace ABI: the one definition of every struct and
 * constant that the BPF programs and the C++ userspace share.
 *
 * Plain C, fixed-width __u* fields, explicit padding. The C++ side pins the
 * sizes with static_assert at the bottom of this file.
 */
#ifndef SMTPGOV_ABI_H
#define SMTPGOV_ABI_H

#include <linux/types.h>

/* ---- limits ------------------------------------------------------------ */
#define SG_MAX_PORTS        16      /* SMTP ports the loader may configure */
#define SG_DEFAULT_MAX_VMS  16384   /* slots in the per-VM arrays (loader may resize) */
#define SG_MAX_IFACES       65536   /* sg_ifaces is an ARRAY indexed by ifindex below this */
#define SG_MAX_IFACES_BIG   4096    /* sg_ifaces_big: HASH for the rare larger ifindex */
#define SG_MAX_PREFIXES     262144  /* per address family, LPM tries */
#define SG_MAX_AUTO         8192    /* LRU entries for unregistered sources */
#define SG_MAX_V6_EXT_HDRS  6       /* IPv6 extension headers walked; a longer chain is refused */
#define SG_EVENT_INTERVAL_NS (100ULL * 1000 * 1000) /* <= 1 burst event per VM per 100 ms */
#define SG_RINGBUF_BYTES    (256 * 1024)
#define SG_REPLY_TEXT_MAX   96      /* bytes of a remote reply line sampled into an event */
#define SG_SLOT_NONE        0xffffffffu
/* connection table (docs/internals.md, "Connections") */
#define SG_CONN_MAX            524288  /* sg_conn entries; HASH allocated as used */
#define SG_CONN_PER_VM_DEFAULT 4096    /* policy conn_per_vm */
#define SG_CONN_PER_VM_MAX     65536
#define SG_CONN_IDLE_NS        (600ULL * 1000 * 1000 * 1000) /* established, no packet either way */
#define SG_CONN_SHORT_NS       (30ULL * 1000 * 1000 * 1000)  /* SYN sent, or both sides sent FIN */
#define SG_CONN_WINDOW         65535u  /* bytes past remote_nxt a remote segment may start */

/* ---- enums (stored in __u8 fields) -------------------------------------- */
enum sg_tier {
	SG_TIER_OK        = 0,
	SG_TIER_THROTTLED = 1,
	SG_TIER_STEERED   = 2,
	SG_TIER_BLOCKED   = 3,
	SG_TIER_MAX
};

enum sg_action {          /* what happens to a SYN that is refused */
	SG_ACT_DROP  = 0,
	SG_ACT_RESET = 1,     /* TCP RST+ACK built in place, sent back with XDP_TX */
};

enum sg_verdict {         /* index into sg_vm_stats.syn[] */
	SG_VERDICT_PASS     = 0,
	SG_VERDICT_THROTTLE = 1,  /* over the token bucket (tiers ok, throttled) */
	SG_VERDICT_STEER    = 2,
	SG_VERDICT_BLOCK    = 3,
	SG_VERDICT_MAX
};

enum sg_result {          /* index into the global per-CPU counter array sg_global */
	SG_RES_NON_IP      = 0,   /* not IPv4/IPv6 (ARP, LLDP, ...) */
	SG_RES_NON_TCP     = 1,   /* IP but not TCP */
	SG_RES_NON_SMTP    = 2,   /* TCP but not a new SMTP connection */
	SG_RES_SMTP_SYN    = 3,   /* new SMTP connection, judged */
	SG_RES_UNPARSED    = 4,   /* truncated / malformed, no receiver takes it: passed */
	SG_RES_FRAGMENT    = 5,   /* non-first fragment: cannot be classified, passed */
	SG_RES_AUTO_NEW    = 6,   /* auto entry created for an unregistered source */
	SG_RES_RST_SENT    = 7,   /* RST built and returned with XDP_TX */
	SG_RES_EVENT_LOST  = 8,   /* ring buffer full: burst event not delivered */
	SG_RES_SPOOFED     = 9,   /* SYN from an address its VM does not own */
	SG_RES_REFUSED     = 10,  /* could hide a new connection, cannot be classified: dropped
	                           * (tiny first fragment, TCP offset 1, chain or VLAN stack too deep) */
	SG_RES_CONN_NEW    = 11,  /* connection entry created for a passed or steered SYN */
	SG_RES_CONN_FULL   = 12,  /* sg_conn full: a passed SYN goes untracked, a steered one is refused */
	SG_RES_CONN_EVICTED = 13, /* an owner past conn_per_vm lost its own oldest entry */
	SG_RES_STEER_LOST  = 14,  /* packet of a steered VM to a proxy port with no entry: dropped */
	SG_RES_STEER_FRAG  = 15,  /* fragment from a steered VM (cannot be rewritten): dropped */
	SG_RES_REPLY_UNTRACKED = 16, /* SYN-ACK/RST/reply from an SMTP port, no tracked connection: ignored */
	SG_RES_REPLY_OUTSIDE   = 17, /* on a tracked connection but outside TCP's window: ignored */
	SG_RES_NAT_CONFLICT    = 18, /* steered SYN whose client ADDR:PORT is a live steered flow: refused */
	SG_RES_MAX
};

enum sg_reply_kind {      /* remote answers seen by the TC return-path program */
	SG_REPLY_SYNACK = 0,
	SG_REPLY_RST    = 1,
	SG_REPLY_2XX    = 2,
	SG_REPLY_4XX    = 3,
	SG_REPLY_5XX    = 4,
	SG_REPLY_MAX
};

enum sg_event_type {
	SG_EV_OVER_LIMIT = 1,     /* a VM went over its bucket (rate limited per VM) */
	SG_EV_REPLY      = 2,     /* a sampled 4xx/5xx reply line from a remote SMTP server */
};

/* sg_iface.flags */
#define SG_IFACE_HAS_VM   (1u << 0)  /* hypervisor mode: ifindex names vm_slot */
#define SG_IFACE_GATEWAY  (1u << 1)  /* gateway mode: the source address names the VM */

/* sg_vm_policy.flags */
#define SG_VMF_ACTIVE     (1u << 0)  /* slot is in use */
#define SG_VMF_HAS_ADDRS  (1u << 1)  /* VM registered addresses: check sources for spoofing */
#define SG_VMF_ONE_V4     (1u << 2)  /* its only IPv4 prefix is the one address in v4_addr: an
                                      * IPv4 source is checked against it inline, no LPM lookup
                                      * (prefixes never overlap between VMs: the same answer) */

/* sg_conn.state */
enum sg_conn_state {
	SG_CONN_SYN_SENT    = 0,  /* the VM's SYN passed or was steered; no valid SYN-ACK yet */
	SG_CONN_ESTABLISHED = 1,  /* a SYN-ACK acknowledging the VM's SYN came back */
};

/* sg_conn.flags */
#define SG_CONNF_STEERED    (1u << 0)  /* destination rewritten to proxy_addr:proxy_port */
#define SG_CONNF_FIN_VM     (1u << 1)
#define SG_CONNF_FIN_REMOTE (1u << 2)

/* sg_runtime.flags */
#define SG_RT_PROXY_V4      (1u << 0)  /* proxy_v4 is set */
#define SG_RT_PROXY_V6      (1u << 1)  /* proxy_v6 is set */

/* ---- static configuration (const volatile rodata, set between open and load) */
struct sg_static_cfg {
	__u16 ports[SG_MAX_PORTS];   /* network byte order is NOT used: host order */
	__u32 n_ports;
	__u32 bench_stop;            /* enum sg_bench_stop; 0 everywhere but benchmarks */
};

/*
 * sg_static_cfg.bench_stop, for the benchmark's per-stage breakdown only
 * (tools/bench/bench_datapath.cpp): a new SMTP connection is passed, untracked, right
 * after this stage of its judgement. It is rodata: with 0 (the daemon, the tests) the
 * verifier removes every stop from the program.
 */
enum sg_bench_stop {
	SG_STOP_NONE   = 0,
	SG_STOP_PARSE  = 1,   /* parsed, classified, counted in sg_global */
	SG_STOP_IFACE  = 2,   /* + the interface entry (sg_ifaces) */
	SG_STOP_VM     = 3,   /* + the VM's policy, bucket and per-CPU counters looked up */
	SG_STOP_SPOOF  = 4,   /* + the spoof check (the source's LPM match) */
	SG_STOP_CLOCK  = 5,   /* + the clock */
	SG_STOP_BUCKET = 6,   /* + the token bucket (and the over-limit event) */
	SG_STOP_CHARGE = 7,   /* + the verdict charged: everything but the connection entry */
	SG_STOP_MAX
};

/* ---- maps ------------------------------------------------------------------ */

/* sg_ifaces: ARRAY ifindex -> sg_iface for ifindex < SG_MAX_IFACES (the JIT inlines an
 * array lookup: no helper call on the SYN path); sg_ifaces_big: HASH for larger ifindexes.
 * flags == 0 means "no entry". */
struct sg_iface {
	__u32 vm_slot;           /* valid with SG_IFACE_HAS_VM */
	__u32 flags;
};

/* sg_vm_v4 / sg_vm_v6: LPM_TRIE prefix -> __u32 vm slot */
struct sg_lpm_v4 {
	__u32 prefixlen;
	__u8  addr[4];
};

struct sg_lpm_v6 {
	__u32 prefixlen;
	__u8  addr[16];
};

/* sg_vm_policy: ARRAY slot -> sg_vm_policy (written by userspace only).
 * sg_defaults: ARRAY[SG_DEFAULTS_MAX] of the same struct for unregistered sources. */
struct sg_vm_policy {
	__u32 rate;              /* new SMTP connections per second; 0 = none pass */
	__u32 burst;             /* bucket depth */
	__u8  tier;              /* enum sg_tier */
	__u8  over_action;       /* enum sg_action, when over the bucket */
	__u8  block_action;      /* enum sg_action, tier blocked */
	__u8  flags;             /* SG_VMF_* */
	__u8  v4_addr[4];        /* with SG_VMF_ONE_V4: the VM's IPv4 address (network order), else 0 */
};

enum sg_defaults_idx {
	SG_DEFAULTS_SOURCE    = 0,   /* each unregistered source (auto entry) */
	SG_DEFAULTS_AGGREGATE = 1,   /* all unregistered sources of one gateway interface */
	SG_DEFAULTS_MAX
};

/* Token bucket as GCRA: tat_ns is the theoretical arrival time; a SYN passes when
 * max(tat, now) + 1e9/rate - now <= burst * 1e9/rate, and then advances tat by
 * one emission interval with a compare-and-swap. Over-limit SYNs do not touch tat.
 * Shared by all CPUs (not per-CPU) so that two CPUs flooding one VM cannot double it.
 * An over-limit SYN only reads it (and wins last_event_ns at most every
 * SG_EVENT_INTERVAL_NS): nothing it writes is shared. */
struct sg_bucket {
	__u64 tat_ns;
	__u64 last_event_ns;     /* last SG_EV_OVER_LIMIT sent for this VM */
	__u64 reserved_over;     /* unused since the event carries a cumulative count (was
	                          * over_since_event); kept so pinned maps keep their layout */
	__u64 last_sample_ns;    /* last SG_EV_REPLY sampled for this VM */
	__u64 conn_seq;          /* connection entries ever created; ring index = seq % conn_per_vm */
	__u64 conn_evicted;      /* own entries evicted past conn_per_vm */
};

/* sg_vm_bucket: ARRAY slot -> sg_bucket (kernel-owned; userspace zeroes on VM creation) */

/* sg_vm_stats: PERCPU_ARRAY slot -> sg_vm_stats, summed in userspace */
struct sg_vm_stats {
	__u64 syn[SG_VERDICT_MAX];
	__u64 spoofed;
	__u64 rst_sent;
	__u64 replies[SG_REPLY_MAX];
};

/* sg_auto: LRU_HASH sg_auto_key -> sg_auto_vm. Unregistered sources:
 *   hypervisor mode: {ifindex, family 0, addr 0}            ("if:vnet7")
 *   gateway mode:    {ifindex, family 4|6, /32 or /64 addr} ("ip:203.0.113.9")
 * Registered VMs never live here, so a flood of random sources cannot evict them.
 * Counters are shared and updated atomically. */
struct sg_auto_key {
	__u32 ifindex;
	__u8  family;            /* 0 = whole interface, 4 = IPv4, 6 = IPv6 */
	__u8  pad[3];
	__u8  addr[16];          /* IPv4 in addr[0..3] */
};

struct sg_auto_vm {
	struct sg_bucket bucket;
	struct sg_vm_stats stats;
	__u64 first_seen_ns;
	__u64 last_seen_ns;
};

/* sg_auto_policy: HASH sg_auto_key -> sg_vm_policy, written by userspace only for
 * auto entries whose tier the controller changed; absent = sg_defaults. */

/* sg_events: RINGBUF of sg_event */
struct sg_event {
	__u32 type;              /* enum sg_event_type */
	__u32 slot;              /* VM slot, or SG_SLOT_NONE for an auto entry (see key) */
	__u64 ts_ns;             /* bpf_ktime_get_ns() */
	__u64 count;             /* SG_EV_OVER_LIMIT: the owner's throttled SYNs so far, this one
	                          * included (syn[SG_VERDICT_THROTTLE] summed over CPUs; cumulative:
	                          * the controller takes differences between events) */
	struct sg_auto_key key;  /* auto entry identity when slot == SG_SLOT_NONE */
	__u16 reply_code;        /* SG_EV_REPLY: 3-digit SMTP code */
	__u16 text_len;          /* SG_EV_REPLY: bytes valid in text */
	__u32 pad;
	char  text[SG_REPLY_TEXT_MAX];
};

/* sg_runtime: ARRAY[1], written by the controller (policy conn_per_vm and proxy). */
struct sg_runtime {
	__u32 conn_per_vm;           /* 0 reads as SG_CONN_PER_VM_DEFAULT */
	__u32 flags;                 /* SG_RT_* */
	__u8  proxy_v4[4];
	__be16 proxy_v4_port;
	__be16 proxy_v6_port;
	__u8  proxy_v6[16];
	__u16 proxy_ports[SG_MAX_PORTS]; /* host order: steered destination ports (default 25) */
	__u32 n_proxy_ports;
	__u8  nofamily_tier;         /* steered SYN of a family with no proxy: SG_TIER_THROTTLED
	                              * (the steered tier's bucket, then pass) or SG_TIER_BLOCKED */
	__u8  pad[3];
};

/* sg_conn: HASH sg_conn_key -> sg_conn. Keyed as the VM sees the connection: its own
 * address/port and the destination it dialled, on the interface its SYN came in by.
 * Created by XDP for a passed or steered SYN; the kernel updates it; the controller only
 * deletes entries idle past SG_CONN_IDLE_NS/SG_CONN_SHORT_NS. */
struct sg_conn_key {
	__u32 ifindex;
	__u8  family;            /* 4 or 6 */
	__u8  pad;
	__be16 vm_port;
	__be16 dst_port;         /* as the VM dialled */
	__u16 pad2;
	__u8  vm_addr[16];       /* IPv4 in [0..3] */
	__u8  dst_addr[16];      /* as the VM dialled */
};

struct sg_conn {
	__u64 created_ns;
	__u64 last_ns;           /* last packet either way */
	__u32 slot;              /* owner: VM slot, or SG_SLOT_NONE and owner_key names the auto entry */
	__u32 ring_idx;          /* owner's ring position (sg_conn_ring) */
	struct sg_auto_key owner_key;
	__u32 vm_isn;            /* host order: the VM's SYN sequence number */
	__u32 vm_nxt;            /* host order: highest seq + len the VM sent */
	__u32 remote_nxt;        /* host order: next byte expected from the remote (ESTABLISHED) */
	__u8  state;             /* enum sg_conn_state */
	__u8  flags;             /* SG_CONNF_* */
	__be16 proxy_port;       /* SG_CONNF_STEERED: where the flow really goes */
	__u8  proxy_addr[16];
};

/* sg_conn_ring: HASH sg_conn_ring_key -> sg_conn_key: each owner's last conn_per_vm entries
 * in creation order; a new entry takes ring slot conn_seq % conn_per_vm and evicts what
 * was there (only the owner's own oldest). Kernel-written; the controller deletes stale ones. */
struct sg_conn_ring_key {
	__u32 slot;              /* as sg_conn.slot */
	__u32 idx;
	struct sg_auto_key owner_key;
};

/* sg_conn_nat: HASH sg_conn_nat_key -> sg_conn_key for steered flows: the client side
 * ADDR:PORT the proxy sees names the connection (reverse NAT, flow original-dst). */
struct sg_conn_nat_key {
	__u8  family;
	__u8  pad;
	__be16 vm_port;
	__u8  vm_addr[16];
};

#ifdef __cplusplus
static_assert(sizeof(struct sg_runtime) == 4 + 4 + 4 + 4 + 16 + 32 + 4 + 4, "abi: sg_runtime");
static_assert(sizeof(struct sg_conn_key) == 44, "abi: sg_conn_key");
static_assert(sizeof(struct sg_conn) == 8 + 8 + 4 + 4 + 24 + 12 + 4 + 16, "abi: sg_conn");
static_assert(sizeof(struct sg_conn_ring_key) == 32, "abi: sg_conn_ring_key");
static_assert(sizeof(struct sg_conn_nat_key) == 20, "abi: sg_conn_nat_key");
static_assert(sizeof(struct sg_static_cfg) == 40, "abi: sg_static_cfg");
static_assert(sizeof(struct sg_iface) == 8, "abi: sg_iface");
static_assert(sizeof(struct sg_lpm_v4) == 8, "abi: sg_lpm_v4");
static_assert(sizeof(struct sg_lpm_v6) == 20, "abi: sg_lpm_v6");
static_assert(sizeof(struct sg_vm_policy) == 16, "abi: sg_vm_policy");
static_assert(sizeof(struct sg_bucket) == 48, "abi: sg_bucket");
static_assert(sizeof(struct sg_vm_stats) == 88, "abi: sg_vm_stats");
static_assert(sizeof(struct sg_auto_key) == 24, "abi: sg_auto_key");
static_assert(sizeof(struct sg_auto_vm) == 48 + 88 + 16, "abi: sg_auto_vm");
static_assert(sizeof(struct sg_event) == 24 + 24 + 8 + SG_REPLY_TEXT_MAX, "abi: sg_event");
#endif

#endif /* SMTPGOV_ABI_H */
