#!/usr/bin/env bash
# Identity (DESIGN.md "Identity"), tried as a hostile tenant would:
# 1. No framing: a tenant on an unregistered interface sends 3,000 SYNs under a
#    registered VM's address and under an address-only VM's address. Gateways are
#    declared, never inferred, so the source is not trusted: both VMs stay untouched
#    and the SYNs count against the sender's own interface (if:<name>).
# 2. Escalation sticks: that interface is blocked; its tap is deleted and recreated
#    under the same name (a new ifindex); 2,000 SYNs from it reach the internet: none.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmid
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
dst=${SG_INET_V4[0]}
attacker="if:$SG_VM2_IF"

cat >"$SG_TMP/policy.json" <<JSON
{
  "defaults": {"rate": 10, "burst": 20, "over_limit": "drop"},
  "tiers": {"blocked": {"action": "drop"}},
  "vms": [
    {"id": "mail", "tenant": "acme", "interface": "$SG_VM1_IF", "addresses": ["$SG_VM1_V4/32"], "rate": 50, "burst": 100},
    {"id": "elsewhere", "tenant": "globex", "addresses": ["198.51.100.77/32"]}
  ]
}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

# what left the VM: generated minus what its veth refused (see testbed/governed_flood.sh)
on_wire=0
for victim in "$SG_VM1_V4" 198.51.100.77; do
    out=$(sg_flood --netns "$SG_VM2_NS" syn --dst "$dst" --spoof "$victim/32" --rate 3000 --count 1500 --json)
    xe=$(json iface_xdp_xmit_errors <<<"$out") td=$(json iface_tx_dropped <<<"$out")
    on_wire=$((on_wire + $(json sent <<<"$out") - (xe > td ? xe : td)))
done
vm=$(sg_vm_settled "$attacker" "$on_wire" 5)
judged=$(($(json syn.pass <<<"$vm") + $(json syn.throttle <<<"$vm") + $(json syn.block <<<"$vm")))
log "datapath: $(json datapath <<<"$(sgctl status)")"
# every SYN is judged for the sender (a few may be lost on the veth without showing in
# its counters: 1% slack; the point is that none is charged to anybody else)
assert_ge "$judged" $((on_wire * 99 / 100)) "spoofed SYNs charged to the sender's own interface ($attacker)"
assert_le "$judged" 3000 "SYNs charged to $attacker, at most every SYN generated"
for id in mail elsewhere; do
    v=$(sg_vm "$id")
    assert_eq "$(json syn.throttle <<<"$v")" 0 "$id: throttled SYNs"
    assert_eq "$(json syn.pass <<<"$v")" 0 "$id: passed SYNs"
    assert_eq "$(json tier <<<"$v")" ok "$id: tier"
    assert_eq "$(json score <<<"$v")" 0 "$id: score"
    assert_eq "$(sgd_events_of "$id" ticket)" 0 "$id: tickets"
done
sgd_wait_tier "$attacker" blocked 10 || sgctl vm set-tier "$attacker" blocked >/dev/null
assert_eq "$(json tier <<<"$(sg_vm "$attacker")")" blocked "the sender's tier"

# the tap goes away and comes back under the same name, with a new ifindex
old_ifindex=$(sgd_iface "$SG_VM2_IF" ifindex)
ip -n "$SG_NS_HV" link del "$SG_VM2_IF"
sg_testbed --vms 2 up
for ((i = 0; i < 100; i++)); do
    [[ $(sgd_iface "$SG_VM2_IF" attached) == True && $(sgd_iface "$SG_VM2_IF" ifindex) != "$old_ifindex" ]] && break
    sleep 0.1
done
assert_eq "$(sgd_iface "$SG_VM2_IF" attached)" True "recreated tap governed"
before=$(sg_syncount --family 4 --port 25)
sg_flood --netns "$SG_VM2_NS" syn --dst "$dst" --rate 2000 --count 2000 --json >/dev/null
sleep 0.5
after=$(sg_syncount --family 4 --port 25)
assert_eq "$((after - before))" 0 "SYNs of the recreated blocked tap at the internet"
assert_eq "$(json tier <<<"$(sg_vm "$attacker")")" blocked "the recreated tap's tier"

sg_daemon_stop
sg_testbed down
sg_assert_clean
