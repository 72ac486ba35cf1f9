#!/usr/bin/env bash
# A reboot, simulated: the pins go (`smtpgovd --remove`, as a reboot empties bpffs), the
# VMs' interfaces come back with new ifindexes, smtpgovd starts on fresh maps. A VM that
# was blocked by its score is blocked from its first SYN (its reputation is persisted in
# the state dir, on Unix time), not washed clean by the reboot.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmrb
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
sgd_policy "$SG_TMP/policy.json"
# a half-life far longer than the test: what a reboot must not wash clean is a tier the
# score still earns (with sgd_policy's 2 s half-life it would legitimately decay)
sed -i 's/"half_life_s": 2/"half_life_s": 3600/' "$SG_TMP/policy.json"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

sgctl report complaint spammer --count 20 >/dev/null  # 20 x 200: far above blocked
assert_eq "$(json tier <<<"$(sg_vm spammer)")" blocked "spammer's tier before the reboot"
old_ifindex=$(sgd_iface "$SG_VM2_IF" ifindex)
sg_daemon_stop  # also removes the test's pins, as a reboot would
"$SG_BIN/smtpgovd" --config "$SG_TMP/smtpgovd.json" --remove >/dev/null
[[ ! -e $SG_BPFFS/maps/sg_vm_policy ]] || fail "pins left after --remove"
ip -n "$SG_NS_HV" link del "$SG_VM2_IF"
sg_testbed --vms 2 up  # the VM's interface is back, under a new ifindex
sg_daemon_start "$SG_TMP/smtpgovd.json"
[[ $(sgd_iface "$SG_VM2_IF" ifindex) != "$old_ifindex" ]] || fail "the interface kept its ifindex"
assert_eq "$(json tier <<<"$(sg_vm spammer)")" blocked "spammer's tier after the reboot"

before=$(sg_syncount --family 4 --port 25)
sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate 1000 --count 500 --json >/dev/null
sleep 0.5
assert_eq "$(($(sg_syncount --family 4 --port 25) - before))" 0 "spammer SYNs at the internet after the reboot"
assert_eq "$(json tier <<<"$(sg_vm sender)")" ok "the other VM's tier"

sg_daemon_stop
sg_testbed down
sg_assert_clean
