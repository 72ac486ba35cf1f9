#!/usr/bin/env bash
# smtpgov side by side with what operators use today (issue 11, part 2).
#
#   tools/bench/run.sh [--quick] [--out DIR] [--rounds N] [--frames N] [--scenarios LIST]
#                      [--vms LIST] [--detection-bursts N]
#   (root; SMTPGOV_BUILD_DIR, default build/)
#
# Brings up network namespaces only (sgbn-*: a hypervisor, a tap and a veth VM, a VM
# sending real mail, "the internet"), then, in interleaved rounds, sends the same flood of
# SMTP SYNs through every contender: empty-xdp (an XDP program that drops everything,
# native and generic), tc-drop (the same on TC ingress), smtpgov (smtpgovd attaching the
# real datapath, with 1, 100 and 10,000 registered VMs), nftables (per-source meter with
# `limit rate over`), iptables-hashlimit (raw table, iptables-legacy), none (into the
# stack). Scenarios: one-vm-flood (tap), one-vm-flood-veth, many-sources (1,000 spoofed
# sources on the tap, smtpgov in gateway mode), flood-plus-legit (a tap flood while a
# veth VM sends real SMTP sessions). Writes DIR/results.json, DIR/results.png (gnuplot)
# and prints the table. Defaults: 5 rounds, 1,000,000 frames per run, VMs 1,100,10000,
# 20 detection bursts; --quick: 3 rounds, 500,000 frames, VMs 1,10000, 10 bursts (under
# 10 minutes on 2 cores). --detection-bursts 0 skips tools/bench/escalation_latency.sh.
set -euo pipefail
SGBN_SRC=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
SGBN_LIB=$SGBN_SRC/tools/bench/lib

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

all_scenarios=one-vm-flood,one-vm-flood-veth,many-sources,flood-plus-legit
out=bench-results rounds=5 frames=1000000 vms_list=1,100,10000 bursts=20 scenarios=$all_scenarios quick=0
rounds_set="" frames_set="" vms_set="" bursts_set=""
while (($#)); do
    case $1 in
        --quick) quick=1; shift ;;
        --out) out=${2:?--out DIR}; shift 2 ;;
        --rounds) rounds_set=${2:?--rounds N}; shift 2 ;;
        --frames) frames_set=${2:?--frames N}; shift 2 ;;
        --vms) vms_set=${2:?--vms LIST}; shift 2 ;;
        --scenarios) scenarios=${2:?--scenarios LIST}; shift 2 ;;
        --detection-bursts) bursts_set=${2:?--detection-bursts N}; shift 2 ;;
        -h | --help) usage ;;
        *) log "run.sh: unknown option $1"; usage 2 >&2 ;;
    esac
done
((quick)) && rounds=3 frames=500000 vms_list=1,10000 bursts=10
rounds=${rounds_set:-$rounds} frames=${frames_set:-$frames} vms_list=${vms_set:-$vms_list} bursts=${bursts_set:-$bursts}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds: a positive number"
[[ $frames =~ ^[1-9][0-9]*$ ]] && ((frames >= 1000 && frames <= 100000000)) || die "--frames: 1000..100000000"
[[ $bursts =~ ^[0-9]+$ ]] || die "--detection-bursts: a number"
[[ $vms_list =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--vms: a comma-separated list of counts"
for s in ${scenarios//,/ }; do [[ ,$all_scenarios, == *,$s,* ]] || die "--scenarios: unknown '$s' ($all_scenarios)"; done
((EUID == 0)) || die "must run as root (namespaces, XDP, nft, iptables)"
for tool in nft iptables-legacy bpftool tc taskset gnuplot nsenter; do
    command -v "$tool" >/dev/null || die "$tool not found: run deploy/install-deps.sh"
done

# ---- build what the run needs
build=${SMTPGOV_BUILD_DIR:-$SGBN_SRC/build}
[[ -f $build/CMakeCache.txt ]] || cmake -S "$SGBN_SRC" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target smtpgov-bench-side-by-side >/dev/null || die "build failed (cmake --build $build)"
SGBN_BIN=$build/bin SGBN_BPF_GEN=$build/bpf-gen

mkdir -p "$out"
SGBN_OUT=$(cd "$out" && pwd)
SGBN_TMP=$(mktemp -d /tmp/sgbn.XXXXXX)
rm -f "$SGBN_OUT/raw.jsonl"
# the limit every contender is configured with (per source for the peers; per VM, or
# per gateway aggregate, for smtpgov)
SGBN_RATE=100 SGBN_BURST=200
SGBN_FRAMES=$frames SGBN_SESSIONS=$((quick ? 20 : 40))
# every flood is bounded in time as well as count
SGBN_MAX_S=$((20 + frames / 20000))
# the generator (and with it the receive path, which runs in its sends) on CPU 0,
# smtpgovd on CPU 1
SGBN_GEN_CPU=0 SGBN_RX_CPU=$(($(nproc) > 1 ? 1 : 0))

source "$SGBN_LIB/topo.sh"
source "$SGBN_LIB/contenders.sh"
source "$SGBN_LIB/measure.sh"

sink_pid="" SGBN_LEGIT_PID=""
cleanup() {
    set +e
    trap - EXIT INT TERM
    local p
    for p in $sink_pid $SGBN_LEGIT_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    contender_all_off
    topo_down
    rm -rf "$SGBN_TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "topology up (sgbn-*), generator on CPU $SGBN_GEN_CPU, receiver on CPU $SGBN_RX_CPU"
topo_up
SGBN_TAP_MAC=$(topo_tap_mac)
drop_progs_load
if [[ ,$scenarios, == *,flood-plus-legit,* ]]; then
    # nsenter itself in the background (not the in_ns function's subshell), so that
    # $! is the sink's own PID and cleanup's kill reaches it
    nsenter --net="/run/netns/$SGBN_NS_INET" python3 "$SGBN_LIB/smtp_sink.py" --addr "$SGBN_SINK_V4" --max-seconds 7200 >"$SGBN_TMP/sink.log" 2>&1 &
    sink_pid=$!
    for ((i = 0; i < 50; i++)); do grep -q listening "$SGBN_TMP/sink.log" && break; sleep 0.1; done
    grep -q listening "$SGBN_TMP/sink.log" || die "the SMTP sink did not start: $(cat "$SGBN_TMP/sink.log")"
fi

# the plan: "SCENARIO CONTENDER MODE VMS" per run of a round ("-": does not apply)
plan() {
    local s v
    for s in ${scenarios//,/ }; do
        case $s in
            one-vm-flood | one-vm-flood-veth)
                echo "$s empty-xdp native -"; echo "$s empty-xdp generic -"; echo "$s tc-drop - -"
                for v in ${vms_list//,/ }; do echo "$s smtpgov native $v"; done
                echo "$s smtpgov generic ${vms_list##*,}"
                echo "$s nftables - -"; echo "$s iptables-hashlimit - -"; echo "$s none - -" ;;
            many-sources)
                echo "$s empty-xdp native -"
                echo "$s smtpgov native ${vms_list##*,}"
                echo "$s nftables - -"; echo "$s iptables-hashlimit - -" ;;
            flood-plus-legit)   # the flooding VM and the legitimate one at least
                v=${vms_list##*,}
                echo "$s smtpgov native $((v < 2 ? 2 : v))"
                echo "$s nftables - -"; echo "$s iptables-hashlimit - -"; echo "$s none - -" ;;
        esac
    done
}
mapfile -t runs < <(plan)
t0=$SECONDS
log "$rounds rounds x ${#runs[@]} runs, $frames frames each"
for ((r = 1; r <= rounds; r++)); do
    # interleaved: each round visits every run, in an order that rotates by round, so
    # that the machine's drift spreads over the contenders
    for ((k = 0; k < ${#runs[@]}; k++)); do
        read -r s c m v <<<"${runs[$(((k + (r - 1) * 5) % ${#runs[@]}))]}"
        run_one "$r" "$s" "$c" "$m" "$v"
    done
done
log "floods done in $((SECONDS - t0)) s"

detection=$SGBN_TMP/detection.json
if ((bursts > 0)) && [[ ,$scenarios, == *,one-vm-flood,* || ,$scenarios, == *,one-vm-flood-veth,* ]]; then
    log "detection: tools/bench/escalation_latency.sh $bursts (its own testbed, prefix sgbnlat)"
    SG_BIN=$SGBN_BIN SG_LAT_PREFIX=sgbnlat "$SGBN_SRC/tools/bench/escalation_latency.sh" --json "$bursts" \
        >"$detection" 2>"$SGBN_TMP/detection.log" || { cat "$SGBN_TMP/detection.log" >&2; die "escalation_latency.sh failed"; }
else
    echo null >"$detection"
fi

machine() {
    python3 - "$SGBN_SRC" <<'PY'
import datetime, json, os, subprocess, sys
def read(p):
    try:
        return open(p).read().strip()
    except OSError:
        return None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
commit = subprocess.run(["git", "-C", sys.argv[1], "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
print(json.dumps({"kernel": os.uname().release, "cpu_model": cpu, "nproc": os.cpu_count(),
                  "spec_rstack_overflow": read("/sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow"),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "git_commit": commit or None, "loadavg": read("/proc/loadavg")}))
PY
}
machine >"$SGBN_TMP/machine.json"
python3 "$SGBN_LIB/results.py" --raw "$SGBN_OUT/raw.jsonl" --machine "$SGBN_TMP/machine.json" \
    --detection "$detection" --rounds "$rounds" --quick "$quick" --out "$SGBN_OUT"
log "wrote $SGBN_OUT/results.json and $SGBN_OUT/results.png in $((SECONDS - t0)) s"
