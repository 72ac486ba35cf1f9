#!/usr/bin/env bash
# kill -9 at random moments during a flood, ten times in a row (issue 10, item 6).
# "spammer" floods 4,000 SYN/s (limit 20/s burst 40, pinned ok, so it runs at its limit),
# "escalator" 1,000 SYN/s (same limits, escalating), "sender" sends real mail at 3/s,
# for the whole test. Ten times, after a random 0.3-2.5 s, smtpgovd is killed with
# SIGKILL and restarted; a third of the restarts (at random) are themselves killed
# 50-1500 ms after exec, mid-start, before the one that is let up. At the end, at the
# receiver: each flood's SYNs within (burst + rate x measured duration) x 1.02 of its
# policy; every legit message accepted and delivered; the escalator still escalated;
# and no counter of `vm show` (syn.*, replies.*, spoofed, rst_sent) ever went
# backwards: read before each kill and right after each restart. About 60 s.
#   SMTPGOV_KILL9_SEED=N reproduces a run's schedule (the seed is logged).
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmk9
sg_testbed --vms 3 up
eval "$(sg_testbed env)"
sgd_mixed_policy "$SG_TMP/policy.json"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF" "$SG_VM3_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

# early_kill MS: an smtpgovd started and killed with SIGKILL MS ms after exec, whatever
# it is doing then (loading state, adopting pins, attaching, its first sweep)
early_kills=0
early_kill() {
    nsenter --net="/run/netns/$SG_NS_HV" "$SG_BIN/smtpgovd" --config "$SG_TMP/smtpgovd.json" >"$SG_TMP/early.log" 2>&1 &
    local p=$!
    sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"
    kill -0 "$p" 2>/dev/null || { cat "$SG_TMP/early.log" >&2; fail "smtpgovd exited by itself within $1 ms of its start"; }
    kill -9 "$p"
    wait "$p" 2>/dev/null || true
    cat "$SG_TMP/early.log" >>"$SG_TMP/smtpgovd.all.log"
    early_kills=$((early_kills + 1))
}

seed=${SMTPGOV_KILL9_SEED:-$((SRANDOM % 100000))}
RANDOM=$seed
log "kill schedule seed $seed (SMTPGOV_KILL9_SEED=$seed reproduces it)"
vms=(sender spammer escalator)
deadline=$((SECONDS + 70))   # the whole test stays under 90 s

sgd_load_start 75
last=$(sgd_counters "${vms[@]}")
kills=0
for ((k = 1; k <= 10; k++)); do
    ms=$((300 + RANDOM % 2200))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    before=$(sgd_counters "${vms[@]}")
    sgd_assert_monotonic "$last" "$before" "before kill $k"
    t0=$EPOCHREALTIME
    kill -9 "$SG_DAEMON_PID"
    wait "$SG_DAEMON_PID" 2>/dev/null || true
    SG_DAEMON_PID=""
    cat "$SG_TMP/smtpgovd.log" >>"$SG_TMP/smtpgovd.all.log"
    if ((RANDOM % 3 == 0)); then
        early=$((50 + RANDOM % 1450))
        early_kill "$early"
        log "kill $k: the restart itself killed ${early} ms after exec"
    fi
    sg_daemon_start "$SG_TMP/smtpgovd.json"
    t1=$EPOCHREALTIME
    last=$(sgd_counters "${vms[@]}")
    sgd_assert_monotonic "$before" "$last" "right after restart $k"
    kills=$k
    log "kill $k after ${ms} ms: up again in $(python3 -c "print(round($t1 - $t0, 2))") s; spammer now $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["spammer"])' "$last")"
    ((SECONDS < deadline)) || fail "ten kills did not fit in 70 s (restart $k took too long)"
done
assert_eq "$kills" 10 "kill -9 and restarts during the flood"
log "of which $early_kills restarts were themselves killed during their start"
sleep 2   # enforcement after the last restart is part of the measured flood
esc=$(sg_vm escalator)
log "escalator as smtpgovctl sees it (still flooding): $esc"
[[ $(json tier <<<"$esc") != ok ]] || fail "escalator lost its escalation across ten restarts"
sgd_load_stop
sgd_load_check
final=$(sgd_counters "${vms[@]}")
sgd_assert_monotonic "$last" "$final" "after the flood"
log "final counters: $final"
log "RESULT kill9: 10 kills (+$early_kills during a start), spammer SYNs at the receiver $SGD_SPAM_RX <= $SGD_SPAM_BOUND; legit mails delivered $SGD_MAIL_OK"

sg_daemon_stop
sg_testbed down
sg_assert_clean
