// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * An 802.1Q trunk emulated with tc for kernels without the 8021q module (the
 * testbed's VLAN VM): egress pushes the tag (the device has tx VLAN offload off,
 * so the stack writes it into the frame), ingress pops it after the stack has
 * moved it from the frame into skb metadata. Frames with another tag are dropped,
 * as a trunk port with one allowed VLAN would.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u16 vlan_id = 0;

SEC("tc")
int vlan_push(struct __sk_buff *skb)
{
	if (skb->vlan_present)
		return TC_ACT_OK;
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), vlan_id) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int vlan_pop(struct __sk_buff *skb)
{
	if (!skb->vlan_present)
		return TC_ACT_OK;   /* untagged: link-local chatter of the veth itself */
	if ((skb->vlan_tci & 0x0fff) != vlan_id)
		return TC_ACT_SHOT;
	if (bpf_skb_vlan_pop(skb) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
