#!/usr/bin/env bash
# Soak (issue 10, item 7): mixed flood and legitimate mail, one daemon run, for 10 minutes
# with SMTPGOV_LONG=1, or the seconds given; else 1 minute (asan), 2 minutes (rss: the heap
# takes ~40 s to settle, and its judgement needs thirds after that):
#   soak.sh asan [SECONDS]  smtpgovd built with AddressSanitizer/LeakSanitizer + UBSan
#                           (smtpgovd_asan of the clang tree build-fuzz, tests/fuzz): no
#                           sanitizer report in its log, exit 0 after SIGTERM (the leak
#                           check runs at exit).
#   soak.sh rss [SECONDS]   the normal build: the heap in use (`status` memory, from
#                           mallinfo2) every 3 s; the median of the last third within 5%
#                           of the median of the second third (the first is warm-up).
#                           VmRSS (peak and floor of reads every 0.25 s per 3 s) is
#                           logged, and its peak bounded (SG_SOAK_RSS_MAX_MB, 256).
# Both: the load of kill9.sh (a VM flooding at its limit, one escalating, one sending
# real mail on 587), plus random-source SYNs behind a declared gateway (auto entries
# come and go in the LRU), plus an operator every 2 s (status, vm list/show, events,
# /metrics; every 10 s a policy apply adding or removing a VM, a timed pin, a spam
# report). Asserted: every sample of `status` has each map's used <= max, no counter of
# the three VMs goes backwards, no control command fails, the receiver's bounds and
# every legit message delivered (sgd_load_check), exit 0 on SIGTERM.
# The ASan half needs build-fuzz (tests/run.sh's fuzz stage configures it): it brings
# smtpgovd_asan up to date there, and fails when the tree is missing (SMTPGOV_FUZZ=0).
source "$(dirname "$(readlink -f "$0")")/common.sh"
mode=${1:?usage: soak.sh asan|rss [SECONDS]}
[[ $mode == asan || $mode == rss ]] || fail "usage: soak.sh asan|rss [SECONDS]"
if [[ -n ${2:-} ]]; then
    duration=$2
elif [[ ${SMTPGOV_LONG:-0} == 1 ]]; then
    duration=600
elif [[ $mode == asan ]]; then
    duration=60
else
    duration=120
fi
sg_init "dmsoak${mode:0:1}"

if [[ $mode == asan ]]; then
    tree=${SG_ASAN_TREE:-$SG_SRC/build-fuzz}
    [[ -f $tree/CMakeCache.txt ]] ||
        fail "no sanitizer tree at $tree: the ASan soak needs tests/run.sh's fuzz stage (SMTPGOV_FUZZ=0 skips it), or: cmake -S $SG_SRC -B $tree -DSMTPGOV_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ && cmake --build $tree --target smtpgovd_asan"
    log "bringing smtpgovd_asan up to date in $tree"
    cmake --build "$tree" --target smtpgovd_asan -j"$(nproc)" >"$SG_TMP/asan-build.log" 2>&1 ||
        { tail -30 "$SG_TMP/asan-build.log" >&2; fail "building smtpgovd_asan in $tree failed"; }
    # sg_daemon_start runs $SG_BIN/smtpgovd: a private bin dir naming the ASan build so
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    mkdir "$SG_TMP/bin"
    ln -s "$tree/bin/smtpgovd_asan" "$SG_TMP/bin/smtpgovd"
    ln -s "$SG_BIN/smtpgovctl" "$SG_TMP/bin/smtpgovctl"
    SG_BIN=$SG_TMP/bin
fi

sg_testbed --vms 4 up
eval "$(sg_testbed env)"
sgd_mixed_policy "$SG_TMP/policy.json"
# the second policy of the operator's applies: the same plus a VM that comes and goes
python3 - "$SG_TMP/policy.json" "$SG_TMP/policy-extra.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["vms"].append({"id": "extra", "tenant": "churn", "addresses": ["192.0.2.77/32"], "rate": 5, "burst": 5})
json.dump(p, open(sys.argv[2], "w"))
PY
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF" "$SG_VM3_IF" "$SG_VM4_IF"
sgd_set_config "$SG_TMP/smtpgovd.json" gateway_interfaces "[\"$SG_VM4_IF\"]"
sg_daemon_start "$SG_TMP/smtpgovd.json"
pid=$SG_DAEMON_PID
log "smtpgovd under soak: $(readlink -f "$SG_BIN/smtpgovd") (pid $pid, $(cat "/proc/$pid/comm")), $duration s"

# operator: every 2 s reads, every 10 s changes; a failed command is recorded, not fatal
operator() {
    local i=0 extra=0 f
    while :; do
        sgctl status >/dev/null || echo "status failed" >>"$SG_TMP/operator.err"
        sgctl vm list >/dev/null || echo "vm list failed" >>"$SG_TMP/operator.err"
        sgctl vm show escalator >/dev/null || echo "vm show failed" >>"$SG_TMP/operator.err"
        sgctl events --limit 20 >/dev/null || echo "events failed" >>"$SG_TMP/operator.err"
        nsenter --net="/run/netns/$SG_NS_HV" curl -sf -m 5 -o /dev/null "http://$SG_METRICS/metrics" ||
            echo "/metrics failed" >>"$SG_TMP/operator.err"
        if ((i % 5 == 4)); then
            extra=$((1 - extra))
            if ((extra)); then f=policy-extra.json; else f=policy.json; fi
            sgctl policy apply "$SG_TMP/$f" >/dev/null || echo "policy apply $f failed" >>"$SG_TMP/operator.err"
            sgctl vm set-tier escalator blocked --for 3 >/dev/null || echo "vm set-tier failed" >>"$SG_TMP/operator.err"
            sgctl report spam escalator --count 2 >/dev/null || echo "report spam failed" >>"$SG_TMP/operator.err"
        fi
        i=$((i + 1))
        echo "$i" >"$SG_TMP/operator.rounds"
        sleep 2
    done
}

sgd_load_start $((duration + 30))
"$SG_FLOOD" --netns "$SG_VM4_NS" syn --dst "${SG_INET_V4[1]}" --dport 465 --spoof random --rate 500 \
    --duration $((duration + 30)) --json >"$SG_TMP/load-gateway.json" 2>"$SG_TMP/load-gateway.err" &
gw_pid=$!
sg_on_exit "kill $gw_pid 2>/dev/null"
operator &
op_pid=$!
sg_on_exit "kill $op_pid 2>/dev/null"
log "gateway: 500 SYN/s from random sources behind $SG_VM4_IF (port 465); operator every 2 s"

# RSS: VmRSS read every 0.25 s, one sample per 3 s = "peak/floor" of the readings in it.
# It is no leak measure: smtpgovd hands freed heap back only every 10 sweeps (and after a
# policy apply), so it swings by the size of the last large reply (a `vm list` of 8,000
# auto entries: ~60 MB) with when it is read; two such replies at once add a step that
# stays until the next trim (CI saw the peaks move from 106 to 114 MB mid-run). A leak
# is judged on the heap the allocator has handed out and not had back, read from
# `status`; a sample taken while the operator's `vm list` is being answered (commands
# run side by side) carries that reply, hence medians of each third.
python3 - "$pid" "$SG_TMP/rss.samples" <<'PY' &
import sys, time
pid, out = sys.argv[1], sys.argv[2]
peak, floor, t_end = 0, None, time.monotonic() + 3
while True:
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        break
    peak = max(peak, rss)
    floor = rss if floor is None else min(floor, rss)
    if time.monotonic() >= t_end:
        with open(out, "a") as f:
            f.write(f"{peak}/{floor}\n")
        peak, floor, t_end = 0, None, t_end + 3
    time.sleep(0.25)
PY
rss_pid=$!
sg_on_exit "kill $rss_pid 2>/dev/null"

# every 3 s: map fills, counters
maps_worst=""
n=0
last=$(sgd_counters sender spammer escalator)
end=$((SECONDS + duration))
while ((SECONDS < end)); do
    sleep 3
    kill -0 "$pid" 2>/dev/null || { cat "$SG_TMP/smtpgovd.log" >&2; fail "smtpgovd died during the soak"; }
    n=$((n + 1))
    sgctl status >"$SG_TMP/status.json" || fail "status failed"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["memory"]["heap_in_use_bytes"] // 1024)' \
        "$SG_TMP/status.json" >>"$SG_TMP/heap.samples" || fail "status has no memory.heap_in_use_bytes"
    maps_worst=$(python3 - "$SG_TMP/status.json" "$maps_worst" <<'PY'
import json, sys
maps = json.load(open(sys.argv[1]))["maps"]
worst = json.loads(sys.argv[2]) if sys.argv[2] else {}
over = [f"{m}: used {v['used']} > max {v['max']}" for m, v in maps.items() if v["used"] > v["max"]]
if over:
    print("maps over their bounds: " + "; ".join(over), file=sys.stderr)
    sys.exit(1)
for m, v in maps.items():
    if v["used"] >= worst.get(m, {"used": -1})["used"]:
        worst[m] = v
print(json.dumps(worst))
PY
    ) || fail "a map's used exceeds its max"
    now=$(sgd_counters sender spammer escalator)
    sgd_assert_monotonic "$last" "$now" "soak sample $n"
    last=$now
done
kill "$rss_pid" 2>/dev/null; wait "$rss_pid" 2>/dev/null || true
mapfile -t rss <"$SG_TMP/rss.samples"
mapfile -t heap <"$SG_TMP/heap.samples"
log "RSS samples (kB, peak/floor of every 3 s): ${rss[*]}"
log "heap in use samples (kB, every 3 s): ${heap[*]}"
log "map fills at their highest (used/max): $maps_worst"
kill "$op_pid" 2>/dev/null; wait "$op_pid" 2>/dev/null || true
log "operator rounds: $(cat "$SG_TMP/operator.rounds")"
[[ ! -s $SG_TMP/operator.err ]] || fail "operator commands failed: $(sort "$SG_TMP/operator.err" | uniq -c | tr '\n' ';')"
log "ok: every operator command answered"
# the gateway aggregate's auto entries fill the LRU: it must have been used
gw_autos=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sg_auto"]["used"])' <(echo "$maps_worst"))
assert_ge "$gw_autos" 100 "auto entries seen behind the gateway (sg_auto used, highest)"

kill -INT "$gw_pid" 2>/dev/null; wait "$gw_pid" || fail "the gateway flood failed"
log "gateway:   $(cat "$SG_TMP/load-gateway.json")"
sgd_load_stop
sgd_load_check

# stop with SIGTERM: exit 0 (the ASan build runs its leak check on the way out)
kill -TERM "$pid"
for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    fail "smtpgovd did not exit within 60 s of SIGTERM"
fi
rc=0
wait "$pid" || rc=$?
SG_DAEMON_PID=""
rm -rf "$SG_BPFFS"
if grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$SG_TMP/smtpgovd.log"; then
    grep -E -A30 'ERROR: |runtime error:' "$SG_TMP/smtpgovd.log" | head -120 >&2
    fail "sanitizer report in smtpgovd's log (exit $rc)"
fi
assert_eq "$rc" 0 "smtpgovd's exit status after SIGTERM"

if [[ $mode == rss ]]; then
    peak_mb=$(printf '%s\n' "${rss[@]}" | awk -F/ '$1 > m { m = $1 } END { print int(m / 1024) }')
    assert_le "$peak_mb" "${SG_SOAK_RSS_MAX_MB:-256}" "smtpgovd's highest RSS (MB)"
    read -r second last_third growth < <(python3 - "${heap[@]}" <<'PY'
import statistics, sys
s = [int(x) for x in sys.argv[1:]]
n = len(s) // 3
a, b = statistics.median(s[n:2 * n]), statistics.median(s[2 * n:])
print(int(a), int(b), f"{(b - a) / a * 100:+.2f}")
PY
    )
    log "heap in use, median of the second third $second kB, of the last third $last_third kB ($growth%)"
    python3 -c "import sys; sys.exit(0 if abs($growth) <= 5 else 1)" ||
        fail "heap in use not flat: $growth% between the second and the last third (bound 5%)"
    log "ok: heap in use flat within 5% ($growth%)"
    log "RESULT soak rss: ${duration} s, ${#heap[@]} samples, heap second third $second kB, last third $last_third kB ($growth%), RSS peak $peak_mb MB"
else
    log "ok: no AddressSanitizer, LeakSanitizer or UBSan report in ${duration} s and at exit"
    log "RESULT soak asan: ${duration} s, clean, exit $rc, RSS (ASan, peak/floor) ${rss[0]} -> ${rss[-1]} kB"
fi

sg_testbed down
sg_assert_clean
