/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The connection table (sg_conn) and its two indexes: each owner's ring of its last
 * conn_per_vm entries (sg_conn_ring) and the steered flows by client ADDR:PORT
 * (sg_conn_nat). Contract: docs/internals.md, "Connections".
 *
 * Races: an entry is created, found and forgotten without locks. Two CPUs forgetting
 * the same entry delete it once; an index entry is deleted only while it still names
 * the entry being forgotten (checked, then deleted: a new flow that takes the same
 * index key in between loses its index entry, and its packets are then refused, never
 * misdirected). The ring index comes from an atomic counter, so two SYNs of one owner
 * never take the same slot unless conn_per_vm SYNs pass between them.
 */
#ifndef SG_BPF_CONN_H
#define SG_BPF_CONN_H

#include "maps.h"
#include "parsing.h"

#define SG_CONN_KEY_WORDS (sizeof(struct sg_conn_key) / 4)
#define SG_AUTO_KEY_WORDS (sizeof(struct sg_auto_key) / 4)

/* Addresses on the stack are declared SG_ALIGNED: the verifier refuses misaligned stack words. */
#define SG_ALIGNED __attribute__((aligned(8)))

/* Equal 32-bit words (both buffers 4-byte aligned). */
static __always_inline int sg_words_eq(const void *a, const void *b, int words)
{
	const __u32 *x = a, *y = b;
	__u32 diff = 0;
	int i;

#pragma unroll
	for (i = 0; i < words; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

static __always_inline struct sg_runtime *sg_rt(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sg_runtime, &zero);
}

/* 0 reads as the default, more than the maximum as the maximum */
static __always_inline __u32 sg_conn_per_vm(const struct sg_runtime *rt)
{
	__u32 n = rt ? rt->conn_per_vm : 0;

	if (n == 0)
		return SG_CONN_PER_VM_DEFAULT;
	return n > SG_CONN_PER_VM_MAX ? SG_CONN_PER_VM_MAX : n;
}

/* A segment from the VM, keyed as the VM sees it: its address/port, then the destination. */
static __always_inline void sg_conn_key_vm(const struct sg_pkt *p, __u32 ifindex,
					   struct sg_conn_key *k)
{
	k->ifindex = ifindex;
	k->family = p->family;
	k->vm_port = p->tcp->source;
	k->dst_port = p->tcp->dest;
	sg_copy_addr(p, 0, k->vm_addr, 16);
	sg_copy_addr(p, 1, k->dst_addr, 16);
}

/* A segment towards the VM: the VM is its destination, the remote its source. */
static __always_inline void sg_conn_key_reply(const struct sg_pkt *p, __u32 ifindex,
					      struct sg_conn_key *k)
{
	k->ifindex = ifindex;
	k->family = p->family;
	k->vm_port = p->tcp->dest;
	k->dst_port = p->tcp->source;
	sg_copy_addr(p, 1, k->vm_addr, 16);
	sg_copy_addr(p, 0, k->dst_addr, 16);
}

static __always_inline void sg_nat_key(const struct sg_conn_key *k, struct sg_conn_nat_key *nk)
{
	nk->family = k->family;
	nk->vm_port = k->vm_port;
	__builtin_memcpy(nk->vm_addr, k->vm_addr, 16);
}

static __always_inline void sg_ring_key(__u32 slot, const struct sg_auto_key *owner, __u32 idx,
					struct sg_conn_ring_key *rk)
{
	rk->slot = slot;
	rk->idx = idx;
	__builtin_memcpy(&rk->owner_key, owner, sizeof(rk->owner_key));
}

/* Delete an index entry (nat or ring) only while it still names connection k. */
static __always_inline void sg_index_drop(void *map, const void *ikey, const struct sg_conn_key *k)
{
	struct sg_conn_key *v = bpf_map_lookup_elem(map, ikey);

	if (v && sg_words_eq(v, k, SG_CONN_KEY_WORDS))
		bpf_map_delete_elem(map, ikey);
}

/*
 * Forget connection k (value c, ring key rk): the entry, its ring slot and, if steered,
 * its NAT index entry. c is read before the delete: a freed element may be reused at once.
 */
static __always_inline void sg_conn_drop(const struct sg_conn_key *k, const struct sg_conn *c,
					 const struct sg_conn_ring_key *rk)
{
	struct sg_conn_nat_key nk = {};
	int steered = c->flags & SG_CONNF_STEERED;

	bpf_map_delete_elem(&sg_conn, k);
	sg_index_drop(&sg_conn_ring, rk, k);
	if (steered) {
		sg_nat_key(k, &nk);
		sg_index_drop(&sg_conn_nat, &nk, k);
	}
}

/* sg_conn_drop as a global function (here and below: verified once, not at every call site). */
__noinline int sg_conn_forget(const struct sg_conn_key *k, const struct sg_conn *c)
{
	struct sg_conn_ring_key rk = {};

	if (!k || !c)
		return 0;
	sg_ring_key(c->slot, &c->owner_key, c->ring_idx, &rk);
	sg_conn_drop(k, c, &rk);
	return 0;
}

/*
 * Ring slot idx of an owner (slot, or SG_SLOT_NONE and owner) is being taken: evict the
 * entry that held it (the owner's oldest) if it still does. The owner is checked: only
 * ever one of its own. Returns 1 when an entry was evicted.
 */
__noinline int sg_ring_evict(__u32 slot, const struct sg_auto_key *owner, __u32 idx)
{
	struct sg_conn_ring_key rk = {};
	struct sg_conn_key old, *v;
	struct sg_conn *c;

	if (!owner)
		return 0;
	sg_ring_key(slot, owner, idx, &rk);
	v = bpf_map_lookup_elem(&sg_conn_ring, &rk);
	if (!v)
		return 0;
	__builtin_memcpy(&old, v, sizeof(old));
	c = bpf_map_lookup_elem(&sg_conn, &old);
	if (!c || c->ring_idx != idx || c->slot != slot ||
	    !sg_words_eq(&c->owner_key, owner, SG_AUTO_KEY_WORDS))
		return 0;
	sg_conn_drop(&old, c, &rk);   /* inline: a call here would nest one frame too deep */
	sg_count(SG_RES_CONN_EVICTED);
	return 1;
}

/* Serial-number max: has the sender's end moved past `nxt`? */
static __always_inline void sg_seq_advance(__u32 *nxt, __u32 end)
{
	if ((__s32)(end - *nxt) > 0)
		*nxt = end;
}

#endif /* SG_BPF_CONN_H */
