#!/usr/bin/env bash
# (a) testbed up twice is idempotent, every piece works, down leaves nothing behind.
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
sg_init tblc

sg_testbed --vms 2 --vlan-vm 2 up
sg_testbed status >"$SG_TMP/status1"
sg_testbed --vms 2 --vlan-vm 2 up
sg_testbed status >"$SG_TMP/status2"
# the second up changed nothing: same namespaces, links and postfix processes
assert_eq "$(diff <(grep -v SYNs "$SG_TMP/status1") <(grep -v SYNs "$SG_TMP/status2") && echo same)" same "status after a second up"
eval "$(sg_testbed env)"
assert_eq "$(ip netns list | grep -c "^$SG_PREFIX-")" 5 "namespaces (hv, inet, proxy, 2 VMs)"
for ns in "$SG_NS_INET" "$SG_NS_PROXY"; do
    assert_ge "$(ip netns pids "$ns" | wc -l)" 3 "postfix processes in $ns"
done

# each VM, both families, sends one real message through the hypervisor (vm2 over VLAN 100)
for i in 1 2; do
    ns_var=SG_VM${i}_NS v4_dst=${SG_INET_V4[i]} v6_dst=${SG_INET_V6[i - 1]}
    out=$(sg_flood --netns "${!ns_var}" smtp --dst "$v4_dst,$v6_dst" --dport 25,587 --rate 10 --count 2 --json)
    assert_eq "$(json ok <<<"$out")" 2 "vm$i messages accepted"
done
sg_flood --netns "$SG_VM1_NS" smtp --dst "$SG_PROXY_V4" --rate 10 --count 1 --json >/dev/null
wait_delivered 4 || fail "the internet sink logged $(sg_delivered) deliveries, want 4"
assert_eq "$(sg_delivered)" 4 "deliveries at the internet sink"
assert_eq "$(sg_delivered proxy)" 1 "deliveries at the proxy sink"
assert_eq "$(sg_syncount)" 4 "SYNs counted at the internet"
assert_eq "$(sg_syncount --family 6)" 2 "IPv6 SYNs counted at the internet"

sg_testbed down
sg_assert_clean
sg_testbed down >/dev/null   # down on nothing is fine too
sg_assert_clean
