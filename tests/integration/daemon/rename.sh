#!/usr/bin/env bash
# Renaming a governed interface and giving its old name to a new one keeps both
# governed: the renamed interface's hooks and pins follow its new name (it used to lose
# its link reference and silently stop being governed), and the new one is attached.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmrn
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
renamed=${SG_VM2_IF}o

sgd_policy "$SG_TMP/policy.json"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "${SG_PREFIX}v*"
sg_daemon_start "$SG_TMP/smtpgovd.json"
ifindex=$(sgd_iface "$SG_VM2_IF" ifindex)

ip -n "$SG_NS_HV" link set "$SG_VM2_IF" down
ip -n "$SG_NS_HV" link set "$SG_VM2_IF" name "$renamed"
ip -n "$SG_NS_HV" link set "$renamed" up
ip netns add "$SG_PREFIX-newvm"
sg_on_exit 'ip netns del "$SG_PREFIX-newvm" 2>/dev/null'
ip -n "$SG_NS_HV" link add "$SG_VM2_IF" type veth peer name eth0 netns "$SG_PREFIX-newvm"
ip -n "$SG_NS_HV" link set "$SG_VM2_IF" up
for ((i = 0; i < 100; i++)); do
    [[ $(sgd_iface "$renamed" attached) == True && $(sgd_iface "$SG_VM2_IF" attached) == True ]] && break
    sleep 0.1
done
assert_eq "$(sgd_iface "$renamed" ifindex)" "$ifindex" "the renamed interface keeps its ifindex"
assert_eq "$(sgd_iface "$renamed" attached)" True "the renamed interface is governed"
assert_eq "$(sgd_iface "$SG_VM2_IF" attached)" True "the new interface under the old name is governed"
ip -n "$SG_NS_HV" -d link show dev "$renamed" | grep -q "prog/xdp" || fail "no XDP program on $renamed"
[[ -e $SG_BPFFS/links/xdp-$renamed ]] || fail "the pin did not follow the rename"

# the VM behind the renamed interface is still judged (now an unclaimed interface)
out=$(sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate 2000 --count 1000 --json)
xe=$(json iface_xdp_xmit_errors <<<"$out") td=$(json iface_tx_dropped <<<"$out")
on_wire=$(($(json sent <<<"$out") - (xe > td ? xe : td)))
vm=$(sg_vm_settled "if:$renamed" "$on_wire" 5)
judged=$(($(json syn.pass <<<"$vm") + $(json syn.throttle <<<"$vm") + $(json syn.block <<<"$vm")))
assert_ge "$judged" $((on_wire * 99 / 100)) "SYNs judged behind the renamed interface"

sg_daemon_stop
ip -n "$SG_NS_HV" link del "$SG_VM2_IF"
ip netns del "$SG_PREFIX-newvm"
ip -n "$SG_NS_HV" link del "$renamed"
sg_testbed down
sg_assert_clean
