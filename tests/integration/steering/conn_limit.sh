#!/usr/bin/env bash
# A VM past its conn_per_vm evicts only its own connections (issue 9).
# conn_per_vm 50. "hog" opens 500 connections (10x) to an internet server and holds
# them. Meanwhile "steered-vm" has a steered SMTP session open to the proxy and "quiet"
# a direct one: both are untouched (the steered one still completes through the proxy,
# relayed from the egress address; the direct one completes direct). Evictions are
# counted for hog only (vm show, and /metrics if it has them per VM).
source "$(dirname "$(readlink -f "$0")")/common.sh"
st_testbed sgccl 3
holder=203.0.113.77
st_policy "$SG_TMP/policy.json" "[
  $(st_vm hog 1 '"tier": "ok", "rate": 5000, "burst": 5000'),
  $(st_vm steered-vm 2 '"tier": "steered"'),
  $(st_vm quiet 3 '"tier": "ok"')]" '"conn_per_vm": 50'
st_proxy_start
st_daemon "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF" "$SG_VM3_IF"

ip -n "$SG_NS_INET" addr add "$holder/32" dev eth0
ip netns exec "$SG_NS_INET" python3 "$ST_DIR/hold_conns.py" server --addr "$holder" --hold-s 120 &
sg_on_exit "kill $! 2>/dev/null"

# evicted VM_JSON: the VM's eviction count, whatever the key's path (conn.evicted, ...)
evicted() {
    python3 -c '
import json, sys
def walk(v, path=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from walk(x, path + "." + k)
    elif isinstance(v, (int, float)) and "evict" in path:
        yield path, v
found = list(walk(json.loads(sys.argv[1])))
if not found:
    print("no eviction counter in vm show: " + sys.argv[1][:300], file=sys.stderr); sys.exit(1)
print(int(sum(v for _, v in found)))' "$1"
}

# the other VMs' live sessions, opened first
st_session "$SG_VM2_NS" "${SG_INET_V4[0]}" steered-live
steered_pid=$ST_SESSION_PID
st_session "$SG_VM3_NS" "${SG_INET_V4[1]}" quiet-live
quiet_pid=$ST_SESSION_PID
log "live sessions: steered $(cat "$SG_TMP/steered-live.conn"), quiet $(cat "$SG_TMP/quiet-live.conn")"
ev_steered0=$(evicted "$(sg_vm steered-vm)") || fail "vm show has no eviction counter"
ev_quiet0=$(evicted "$(sg_vm quiet)")

# hog: 10x its share, held open
ip netns exec "$SG_VM1_NS" python3 "$ST_DIR/hold_conns.py" client --dst "$holder" --count 500 \
    --gate "$SG_TMP/hog.go" --hold-s 120 >"$SG_TMP/hog.json" &
hog_pid=$!
sg_on_exit "touch $SG_TMP/hog.go; kill $hog_pid 2>/dev/null"
for ((i = 0; i < 300; i++)); do [[ -s $SG_TMP/hog.json ]] && break; sleep 0.1; done
[[ -s $SG_TMP/hog.json ]] || fail "hog's connections did not finish opening"
log "hog: $(cat "$SG_TMP/hog.json")"
assert_ge "$(json established <"$SG_TMP/hog.json")" 450 "hog's connections established"

vm=$(sg_vm_wait hog syn.pass 500 5)
# vm show reads the counters at a sweep: wait for the one that has every eviction
t0=$SECONDS
while ev_hog=$(evicted "$vm") && ((ev_hog < 450 && SECONDS < t0 + 15)); do
    sleep 0.2
    vm=$(sg_vm hog)
done
log "hog after $((SECONDS - t0)) s: $(python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print("syn", v["syn"], "connections", v.get("connections"))' "$vm")"
assert_ge "$ev_hog" 450 "hog's evictions (500 connections, conn_per_vm 50)"
assert_eq "$(evicted "$(sg_vm steered-vm)")" "$ev_steered0" "steered-vm's evictions"
assert_eq "$(evicted "$(sg_vm quiet)")" "$ev_quiet0" "quiet's evictions"
metrics=$(nsenter --net="/run/netns/$SG_NS_HV" curl -sf "http://$SG_METRICS/metrics" | grep -i 'evict' || true)
log "eviction metrics: $(tr '\n' ' ' <<<"$metrics")"
[[ -n $metrics ]] || fail "/metrics shows no evictions"
hog_metric=$(awk '/^smtpgov_connection_evictions_total\{vm="hog"\}/ {print int($NF)}' <<<"$metrics")
assert_ge "${hog_metric:-0}" 450 "smtpgov_connection_evictions_total{vm=\"hog\"}"
grep -qE '^smtpgov_connection_evictions_total\{vm="(steered-vm|quiet)"\} [1-9]' <<<"$metrics" &&
    fail "/metrics counts evictions for another VM"

# the other VMs' sessions are intact
res=$(st_session_finish steered-live "$steered_pid")
log "steered session: $res"
assert_eq "$(json code <<<"$res")" 250 "steered-vm's live session after hog's flood"
assert_eq "$(st_wait_relayed steered-live 30)" "$SG_EGRESS_V4" "steered-vm's message relayed by the proxy"
res=$(st_session_finish quiet-live "$quiet_pid")
log "quiet session: $res"
assert_eq "$(json code <<<"$res")" 250 "quiet's live session after hog's flood"
assert_eq "$(st_wait_relayed quiet-live 30)" "$SG_VM3_V4" "quiet's message, direct"

touch "$SG_TMP/hog.go"
wait "$hog_pid" || true
sg_daemon_stop
st_proxy_stop
sg_testbed down
sg_assert_clean
