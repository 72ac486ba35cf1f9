# tools/bench/run.sh: one measured run (a contender on a scenario's flood), appended to
# $SGBN_OUT/raw.jsonl as one JSON object; results.py turns the runs into rows.
# Sourced after topo.sh and contenders.sh; needs $SGBN_FRAMES,
# $SGBN_SESSIONS, $SGBN_GEN_CPU, $SGBN_MAX_S.

# scenario_iface SCENARIO: the interface the scenario floods through
scenario_iface() { [[ $1 == one-vm-flood-veth ]] && echo "$SGBN_VETH" || echo "$SGBN_TAP"; }
scenario_kind() { [[ $1 == one-vm-flood-veth ]] && echo veth || echo tap; }
scenario_sources() { [[ $1 == many-sources ]] && echo 1000 || echo 1; }

# busy_ticks: busy CPU of the whole machine in clock ticks (user nice system irq softirq
# steal of /proc/stat's first line). A bash builtin read: no process of ours in the window.
busy_ticks() {
    local _cpu u n s idle iow irq sirq st _rest
    read -r _cpu u n s idle iow irq sirq st _rest </proc/stat
    echo $((u + n + s + irq + sirq + st))
}

# tasks_ns PID...: CPU time (ns, the scheduler's exact sum) of every thread of the PIDs
tasks_ns() {
    local t=0 f ns _rest
    for f in "${@/#//proc/}"; do
        for f in "$f"/task/*/schedstat; do
            [[ -r $f ]] && read -r ns _rest <"$f" 2>/dev/null && t=$((t + ns))
        done
    done
    echo "$t"
}

# the generator CPU's softirq thread: receive work the kernel defers out of the sender's
# context when it piles up (the other CPU's is left out: nothing of ours runs there but
# smtpgovd, and its softirqs are other load's)
SGBN_KSOFTIRQD=()
for f in /proc/[0-9]*/comm; do
    read -r c <"$f" 2>/dev/null || continue
    [[ $c == "ksoftirqd/$SGBN_GEN_CPU" ]] && f=${f%/comm} && SGBN_KSOFTIRQD+=("${f#/proc/}")
done
((${#SGBN_KSOFTIRQD[@]} == 1)) || die "no ksoftirqd/$SGBN_GEN_CPU thread found"

# generate SCENARIO OUTFILE: the flood, bounded in count and time, pinned to one CPU
generate() {
    local scenario=$1 out=$2
    if [[ $(scenario_kind "$scenario") == tap ]]; then
        local src=$SGBN_TAP_VM_V4
        [[ $scenario == many-sources ]] && src=$SGBN_SPOOF_BASE
        taskset -c "$SGBN_GEN_CPU" nsenter --net="/run/netns/$SGBN_NS_HV" "$SGBN_BIN/smtpgov-bench-tap-writer" \
            --tap "$SGBN_TAP" --src-mac "$SGBN_TAP_VM_MAC" --dst-mac "$SGBN_TAP_MAC" --src "$src" \
            --dst "$SGBN_TARGET_V4" --count "$SGBN_FRAMES" --max-seconds "$SGBN_MAX_S" \
            --sources "$(scenario_sources "$scenario")" >"$out"
    else
        # AF_PACKET from the VM's side of the veth, as fast as it goes
        taskset -c "$SGBN_GEN_CPU" "$SGBN_BIN/smtpgov-flood" --netns "$SGBN_NS_VM1" syn --method packet \
            --dst "$SGBN_TARGET_V4" --rate max --count "$SGBN_FRAMES" --duration "$SGBN_MAX_S" \
            --json >"$out"
    fi
}

# wait_judged NAME SENT BEFORE: the contender's count once it has settled (smtpgovd
# publishes its per-CPU counters at each sweep): reaches BEFORE + SENT, or stops moving
wait_judged() {
    local name=$1 sent=$2 before=$3 now last=-1 i
    for ((i = 0; i < 40; i++)); do
        now=$(contender_judged "$name")
        ((now - before >= sent)) && break
        [[ $name != smtpgov && $now == "$last" ]] && break
        last=$now
        sleep 0.25
    done
    echo "$now"
}

# run_one ROUND SCENARIO CONTENDER MODE VMS
run_one() {
    local round=$1 scenario=$2 name=$3 mode=$4 vms=$5 ifc j0 j1 a0 a1 b0 b1 d0 d1 k0 k1 t0 t1 legit_pid="" legit=null sent
    SGBN_SCENARIO=$scenario
    ifc=$(scenario_iface "$scenario")
    contender_on "$name" "$mode" "$ifc" "$scenario" "$vms"
    j0=$(contender_judged "$name")
    a0=$(admitted_count)
    if [[ $scenario == flood-plus-legit ]]; then
        # the sessions start once the flood is under way (results.py checks that they
        # ended before it did)
        (sleep 0.1; exec nsenter --net="/run/netns/$SGBN_NS_VM2" timeout 120 python3 "$SGBN_SRC/tools/bench/smtp_sessions.py" \
            --dst "$SGBN_SINK_V4" --sessions "$SGBN_SESSIONS" --concurrency 2 --tag "sgbn-$round-$name" \
            --timeout-s 20 --deadline-s 90 >"$SGBN_TMP/legit.json") &
        legit_pid=$! SGBN_LEGIT_PID=$!
    fi
    d0=$(tasks_ns ${SGBN_DAEMON_PID:+"$SGBN_DAEMON_PID"}) k0=$(tasks_ns "${SGBN_KSOFTIRQD[@]}")
    b0=$(busy_ticks)
    t0=$EPOCHREALTIME
    generate "$scenario" "$SGBN_TMP/gen.json" || { contender_off "$name" "$mode" "$ifc"; die "the generator failed ($scenario, $name)"; }
    t1=$EPOCHREALTIME
    b1=$(busy_ticks)
    d1=$(tasks_ns ${SGBN_DAEMON_PID:+"$SGBN_DAEMON_PID"}) k1=$(tasks_ns "${SGBN_KSOFTIRQD[@]}")
    if [[ -n $legit_pid ]]; then
        wait "$legit_pid" || die "the SMTP session client failed ($name)"
        SGBN_LEGIT_PID=""
        legit=$(cat "$SGBN_TMP/legit.json")
    fi
    sent=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("frames_written", d.get("sent")))' "$SGBN_TMP/gen.json")
    sleep 0.1   # the last frames in flight
    j1=$(wait_judged "$name" "$sent" "$j0")
    a1=$(admitted_count)
    contender_off "$name" "$mode" "$ifc"
    printf '{"round": %d, "scenario": "%s", "iface": "%s", "contender": "%s", "xdp_mode": %s, "vms": %s, "rate": %d, "burst": %d, "sources": %d, "judged": %d, "admitted": %d, "busy_ticks": %d, "clk_tck": %d, "daemon_ns": %d, "ksoftirqd_ns": %d, "flood_start_epoch": %s, "flood_end_epoch": %s, "gen": %s, "legit": %s}\n' \
        "$round" "$scenario" "$(scenario_kind "$scenario")" "$name" \
        "$([[ $mode == - ]] && echo null || echo "\"$mode\"")" "$([[ $name == smtpgov ]] && echo "$vms" || echo null)" \
        "$SGBN_RATE" "$SGBN_BURST" "$(scenario_sources "$scenario")" $((j1 - j0)) $((a1 - a0)) $((b1 - b0)) \
        "$(getconf CLK_TCK)" $((d1 - d0)) $((k1 - k0)) "$t0" "$t1" "$(cat "$SGBN_TMP/gen.json")" "$legit" >>"$SGBN_OUT/raw.jsonl"
    log "round $round $scenario $name${mode/#-/} ${vms/#-/}: sent $sent, judged $((j1 - j0)), admitted $((a1 - a0)), machine busy $((b1 - b0)) ticks, smtpgovd $(((d1 - d0) / 1000000)) ms, ksoftirqd $(((k1 - k0) / 1000000)) ms"
}
