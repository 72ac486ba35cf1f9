#!/usr/bin/env bash
# Escalation latency: from the first over-limit SYN of an 8,000/s burst (ts_ns of the
# ring-buffer event, CLOCK_MONOTONIC) to smtpgovd having escalated the VM (transition
# time, CLOCK_MONOTONIC; both in the tier_change event's evidence). Prints p50/p99 over
# B bursts (default 20). Target: p99 <= 50 ms. Root; uses the netns testbed.
#   tools/bench/escalation_latency.sh [--json] [BURSTS]   (SG_BIN: build/bin by default)
# --json prints one object instead of the table (tools/bench/run.sh reads it);
# SG_LAT_PREFIX names its testbed and pin directory (default: bnlat, pins as the tests').
source "$(dirname "$(readlink -f "$0")")/../../tests/integration/daemon/common.sh"
as_json=0
[[ ${1:-} == --json ]] && { as_json=1; shift; }
bursts=${1:-20}
sg_init "${SG_LAT_PREFIX:-bnlat}"
[[ -n ${SG_LAT_PREFIX:-} ]] && SG_BPFFS=/sys/fs/bpf/$SG_PREFIX
sg_testbed --vms 2 up >/dev/null
eval "$(sg_testbed env)"
sgd_policy "$SG_TMP/policy.json"
# a fast-forgetting reputation so that the VM is back at ok between bursts
python3 - "$SG_TMP/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["reputation"] = {"half_life_s": 0.25, "min_dwell_s": 0.2, "hysteresis": 0.5}
json.dump(p, open(sys.argv[1], "w"))
PY
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json" 2>/dev/null
events=$SG_TMP/state/events.jsonl
for ((b = 0; b < bursts; b++)); do
    sgd_wait_tier spammer ok 30 || fail "spammer did not recover before burst $b"
    sleep 0.3
    mark=$(wc -l <"$events")
    sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate 8000 --duration 0.25 --json >/dev/null
    tail -n +"$((mark + 1))" "$events" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    ev = e["evidence"]
    if e["vm"] == "spammer" and e["type"] == "tier_change" and "trigger_ts_ns" in ev:
        print((ev["decided_ts_ns"] - ev["trigger_ts_ns"]) / 1e6); break' >>"$SG_TMP/latencies"
done
python3 - "$SG_TMP/latencies" "$bursts" "$as_json" <<'PY'
import json, sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
pct = lambda p: v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
if sys.argv[3] == "1":
    print(json.dumps({"bursts": int(sys.argv[2]), "escalated": len(v), "p50_ms": pct(50) if v else None,
                      "p99_ms": pct(99) if v else None, "min_ms": v[0] if v else None,
                      "max_ms": v[-1] if v else None, "samples_ms": v}))
    sys.exit(0)
print()
print("| metric | value | target |")
print("|---|---|---|")
print(f"| bursts (8,000 SYN/s, 0.25 s each) | {len(v)} of {sys.argv[2]} escalated | |")
print(f"| escalation latency p50 | {pct(50):.1f} ms | |")
print(f"| escalation latency p99 | {pct(99):.1f} ms | <= 50 ms |")
print(f"| escalation latency min / max | {v[0]:.1f} / {v[-1]:.1f} ms | |")
PY
sg_daemon_stop
sg_testbed down >/dev/null
