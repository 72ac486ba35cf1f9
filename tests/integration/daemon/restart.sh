#!/usr/bin/env bash
# kill -9 during a flood, restart: enforcement never lapses (the receiver sees no more
# SYNs than the bucket allows) and counters continue. Then an upgrade: restart with a
# changed smtp_ports swaps the programs under the same links. Then `smtpgovd --remove`
# leaves no pins and no programs.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmrst
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
sgd_policy "$SG_TMP/policy.json"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"
link_before=$(sgd_iface "$SG_VM2_IF" xdp_link_id)

received_before=$(sg_syncount --family 4 --port 25)
sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate 8000 --duration 4 --json >"$SG_TMP/flood.json" &
flood_pid=$!
sleep 1
before_kill=$(sg_vm spammer)
kill -9 "$SG_DAEMON_PID"
wait "$SG_DAEMON_PID" 2>/dev/null || true
SG_DAEMON_PID=""
log "smtpgovd killed with SIGKILL mid-flood; spammer was: $before_kill"
[[ -e $SG_BPFFS/links/xdp-$SG_VM2_IF ]] || fail "the xdp link pin vanished with the daemon"
sg_daemon_start "$SG_TMP/smtpgovd.json"
wait "$flood_pid" || fail "flood failed"
sleep 0.5
received=$(($(sg_syncount --family 4 --port 25) - received_before))
sent=$(json sent <"$SG_TMP/flood.json")
after=$(sg_vm spammer)
log "after restart: $after"
assert_ge "$sent" 30400 "SYNs sent by the spammer (8,000/s x 4 s, 5% slack for a generator stall)"
assert_le "$received" 122 "spammer SYNs at the receiver, (40 + 4 x 20) x 1.02"
assert_eq "$(sgd_iface "$SG_VM2_IF" adopted)" True "link adopted after restart"
assert_eq "$(sgd_iface "$SG_VM2_IF" xdp_link_id)" "$link_before" "xdp link id after restart"
judged() { echo $(($(json syn.pass <<<"$1") + $(json syn.throttle <<<"$1") + $(json syn.block <<<"$1"))); }
assert_ge "$(judged "$after")" "$(judged "$before_kill")" "SYNs judged continue across the restart"
assert_ge "$(judged "$after")" $((sent * 99 / 100)) "flood SYNs counted before and after the kill (99%: veth drops under load)"
[[ $(json tier <<<"$after") != ok ]] || fail "spammer lost its tier across the restart"

# upgrade: a restart with a changed smtp_ports swaps programs, keeps the links
xdp_link=$(sgd_iface "$SG_VM1_IF" xdp_link_id); tc_link=$(sgd_iface "$SG_VM1_IF" tc_link_id)
xdp_prog=$(sgd_iface "$SG_VM1_IF" xdp_prog_id)
kill "$SG_DAEMON_PID"; wait "$SG_DAEMON_PID" 2>/dev/null || true; SG_DAEMON_PID=""
python3 - "$SG_TMP/state/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["smtp_ports"] = [25, 2525]
json.dump(p, open(sys.argv[1], "w"))
PY
sg_daemon_start "$SG_TMP/smtpgovd.json"
assert_eq "$(sgd_iface "$SG_VM1_IF" xdp_link_id)" "$xdp_link" "xdp link id after the upgrade"
assert_eq "$(sgd_iface "$SG_VM1_IF" tc_link_id)" "$tc_link" "tc link id after the upgrade"
[[ $(sgd_iface "$SG_VM1_IF" xdp_prog_id) != "$xdp_prog" ]] || fail "xdp program not replaced"
sender=$(json syn.pass <<<"$(sg_vm sender)")
sg_flood --netns "$SG_VM1_NS" syn --dst "${SG_INET_V4[0]}" --dport 2525 --rate 10 --count 5 --json >/dev/null
assert_eq "$(json syn.pass <<<"$(sg_vm_wait sender syn.pass $((sender + 5)))")" $((sender + 5)) "SYNs to the new port 2525 governed"

# removal
kill "$SG_DAEMON_PID"; wait "$SG_DAEMON_PID" 2>/dev/null || true; SG_DAEMON_PID=""
nsenter --net="/run/netns/$SG_PREFIX-hv" "$SG_BIN/smtpgovd" --config "$SG_TMP/smtpgovd.json" --remove
[[ ! -e $SG_BPFFS ]] || fail "pins left: $(ls -R "$SG_BPFFS")"
for i in "$SG_VM1_IF" "$SG_VM2_IF"; do
    ! ip -n "$SG_PREFIX-hv" -d link show dev "$i" | grep -q "prog/xdp" || fail "xdp program left on $i"
done
! bpftool link show | grep -qw "$xdp_link" || fail "xdp link $xdp_link still exists"
log "ok: --remove left no pins, links or programs"

sg_testbed down
sg_assert_clean
