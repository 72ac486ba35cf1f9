#!/usr/bin/env bash
# A running smtpgovd: a VM interface created after start is governed within a second;
# an invalid policy changes nothing (policy and maps untouched); a policy with new
# smtp_ports swaps the programs under the same links.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmlc
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
late=${SG_PREFIX}late
sgd_policy "$SG_TMP/policy.json"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF" "${SG_PREFIX}late*"
sg_daemon_start "$SG_TMP/smtpgovd.json"

# hot-plug
ip netns add "$SG_PREFIX-latevm"
sg_on_exit 'ip netns del "$SG_PREFIX-latevm" 2>/dev/null'
t0=$(date +%s%N)
ip -n "$SG_PREFIX-hv" link add "$late" type veth peer name eth0 netns "$SG_PREFIX-latevm"
ip -n "$SG_PREFIX-hv" link set "$late" up
for ((i = 0; i < 200; i++)); do
    [[ $(sgd_iface "$late" attached) == True ]] && break
    sleep 0.005
done
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "$(sgd_iface "$late" attached)" True "late interface attached"
assert_le "$ms" 1000 "ms until a new VM interface is governed"
ip -n "$SG_PREFIX-hv" -d link show dev "$late" | grep -q "prog/xdp" || fail "no XDP program on $late"
ip -n "$SG_PREFIX-hv" link del "$late"
for ((i = 0; i < 100; i++)); do [[ -z $(sgd_iface "$late" name) ]] && break; sleep 0.01; done
assert_eq "$(sgd_iface "$late" name)" "" "removed interface forgotten"
[[ ! -e $SG_BPFFS/links/xdp-$late ]] || fail "pin of the removed interface left"

# an invalid policy pushed to the running daemon changes nothing
dump_maps() {
    for m in sg_vm_policy sg_ifaces sg_vm_v4 sg_vm_v6 sg_defaults; do
        bpftool map dump pinned "$SG_BPFFS/maps/$m" -j | python3 -c '
import json, sys; print(sorted(json.dumps(e, sort_keys=True) for e in json.load(sys.stdin) if "value" in e or "formatted" in e))'
    done
}
sgctl policy get >"$SG_TMP/policy-before.json"
dump_maps >"$SG_TMP/maps-before.txt"
cat >"$SG_TMP/bad.json" <<JSON
{"smtp_ports": [2525], "vms": [{"id": "spammer", "interface": "$SG_VM2_IF", "rate": -5},
                               {"id": "new-vm", "addresses": ["203.0.113.0/33"]}]}
JSON
rc=0
sgctl policy apply "$SG_TMP/bad.json" >"$SG_TMP/bad.out" 2>&1 || rc=$?
log "invalid policy: $(cat "$SG_TMP/bad.out")"
assert_eq "$rc" 2 "smtpgovctl exit code for an invalid policy"
sgctl policy get >"$SG_TMP/policy-after.json"
cmp -s "$SG_TMP/policy-before.json" "$SG_TMP/policy-after.json" || fail "policy changed by an invalid push"
dump_maps >"$SG_TMP/maps-after.txt"
cmp -s "$SG_TMP/maps-before.txt" "$SG_TMP/maps-after.txt" || fail "maps changed by an invalid push"
log "ok: policy and maps unchanged"

# new smtp_ports through policy.apply: programs swapped under the same links
xdp_link=$(sgd_iface "$SG_VM2_IF" xdp_link_id); xdp_prog=$(sgd_iface "$SG_VM2_IF" xdp_prog_id)
sgd_policy "$SG_TMP/policy2.json" "[25, 2525]"
out=$(sgctl policy apply "$SG_TMP/policy2.json")
assert_eq "$(json ports_changed <<<"$out")" True "ports_changed"
assert_eq "$(sgd_iface "$SG_VM2_IF" xdp_link_id)" "$xdp_link" "xdp link id after the ports change"
[[ $(sgd_iface "$SG_VM2_IF" xdp_prog_id) != "$xdp_prog" ]] || fail "xdp program not replaced"
before=$(json syn.pass <<<"$(sg_vm spammer)")
sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --dport 2525 --rate 10 --count 5 --json >/dev/null
assert_eq "$(json syn.pass <<<"$(sg_vm spammer)")" $((before + 5)) "SYNs to port 2525 counted"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["smtp_ports"] == [25, 2525]' "$SG_TMP/state/policy.json" ||
    fail "new policy not persisted"

sg_daemon_stop
ip netns del "$SG_PREFIX-latevm"
sg_testbed down
sg_assert_clean
