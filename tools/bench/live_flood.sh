#!/usr/bin/env bash
# One VM's SYN flood through a veth with live frames: smtpgov's XDP program against an
# empty XDP drop, in Mpps (issue 11: single-VM live-frame flood >= 0.7x the empty
# program's Mpps, goal 0.9x).
#
#   tools/bench/live_flood.sh [--rounds N] [--frames N]     (root; default 3 x 3,000,000)
#   SMTPGOV_BUILD_DIR (default build/); SG_NS_TAG is prepended to every name it creates
#
# Three VM namespaces, each with one veth into a hypervisor namespace. In each VM,
# smtpgov-flood --method live (BPF_PROG_RUN live frames, XDP_TX out of the VM's eth0,
# pinned to CPU 0) sends IPv4 SYNs to port 25; the hypervisor side of the veth runs
#   empty            an XDP program that counts and drops every frame (drop_count.bpf.c)
#   smtpgov-over     smtpgovd's datapath, the VM pinned to `ok`, 100/s burst 200, `drop`:
#                    all but the first few hundred SYNs are over its limit
#   smtpgov-blocked  smtpgovd's datapath, the VM pinned to `blocked` with action `drop`
# (one smtpgovd, on CPU 1, attached natively to both interfaces). Verdicts are drops, never
# resets: live frames share pages with the generator, and a RST rewritten in place would
# corrupt its later repetitions. A veth hands XDP_TX frames only to a peer running XDP,
# which each of the three does. Rounds interleave the contenders (in rotating order);
# every run is bounded in count and in time (30 s). Prints Mpps min/median/max per
# contender, the ratio of medians to the empty program's, and the frames each receiver's
# own counters judged (the drop counter; smtpgovd's SYN counters of the VM) against the
# frames sent: exit 1 unless every frame sent was judged.
set -euo pipefail
src_dir=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "live_flood.sh: $*"; exit 1; }

rounds=3 frames=3000000
while (($#)); do
    case $1 in
        --rounds) rounds=${2:?--rounds N}; shift 2 ;;
        --frames) frames=${2:?--frames N}; shift 2 ;;
        -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1" ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds: a positive number"
[[ $frames =~ ^[1-9][0-9]*$ ]] && ((frames <= 100000000)) || die "--frames: 1..100000000"
((EUID == 0)) || die "must run as root (namespaces, XDP)"
for tool in bpftool taskset nsenter python3; do command -v "$tool" >/dev/null || die "$tool not found"; done

build=${SMTPGOV_BUILD_DIR:-$src_dir/build}
[[ -f $build/CMakeCache.txt ]] || cmake -S "$src_dir" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target smtpgovd smtpgovctl smtpgov-flood drop_count_bpf_gen >/dev/null ||
    die "build failed (cmake --build $build)"
bin=$build/bin

tag=${SG_NS_TAG:-}
hv_ns=${tag}sglf-hv pins=/sys/fs/bpf/${tag}sglf
contenders=(empty smtpgov-over smtpgov-blocked)
declare -A vm_ns=([empty]=${tag}sglf-e [smtpgov-over]=${tag}sglf-o [smtpgov-blocked]=${tag}sglf-b)
declare -A hv_if=([empty]=${tag}lfe [smtpgov-over]=${tag}lfo [smtpgov-blocked]=${tag}lfb)
declare -A net=([empty]=198.18.20 [smtpgov-over]=198.18.21 [smtpgov-blocked]=198.18.22)
target=203.0.113.26
tmp=$(mktemp -d "/tmp/${tag}sglf.XXXXXX")
daemon_pid=""

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
sgctl() { "$bin/smtpgovctl" --socket "$tmp/ctl.sock" --json "$@"; }

cleanup() {
    set +e
    if [[ -n $daemon_pid ]]; then
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    # smtpgovd keeps its links and maps pinned by design: remove them
    [[ -d $pins/smtpgov ]] && in_ns "$hv_ns" "$bin/smtpgovd" --bpffs "$pins/smtpgov" --remove >/dev/null 2>&1
    for c in "${contenders[@]}"; do [[ -e /run/netns/${vm_ns[$c]} ]] && ip netns del "${vm_ns[$c]}"; done
    [[ -e /run/netns/$hv_ns ]] && ip netns del "$hv_ns"
    rm -rf "$pins" "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a namespace with nothing on its links but what we send: no IPv6 (router solicitations,
# MLD), so that the empty program's count equals the frames sent
ns_add() {
    ip netns add "$1"
    in_ns "$1" ip link set lo up
    in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

topo_up() {
    ns_add "$hv_ns"
    for c in "${contenders[@]}"; do
        local ns=${vm_ns[$c]} ifc=${hv_if[$c]} n=${net[$c]}
        ns_add "$ns"
        ip link add name eth0 netns "$ns" type veth peer name "$ifc" netns "$hv_ns"
        in_ns "$ns" ip addr add "$n.2/24" dev eth0
        in_ns "$ns" ip link set eth0 up
        in_ns "$ns" ip route add default via "$n.1"
        in_ns "$hv_ns" ip addr add "$n.1/24" dev "$ifc"
        in_ns "$hv_ns" ip link set "$ifc" up
        # a static neighbour: nothing on the link but the flood
        in_ns "$ns" ip neigh replace "$n.1" nud permanent dev eth0 \
            lladdr "$(in_ns "$hv_ns" ip -o link show "$ifc" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)"
    done
}

drop_up() {
    mkdir -p "$pins/drop"
    bpftool prog loadall "$build/bpf-gen/drop_count.bpf.o" "$pins/drop/progs" pinmaps "$pins/drop/maps" ||
        die "load drop_count.bpf.o"
    in_ns "$hv_ns" bpftool net attach xdpdrv pinned "$pins/drop/progs/sgbn_xdp_drop" dev "${hv_if[empty]}" ||
        die "attach the empty program"
}

smtpgov_up() {
    local o=${hv_if[smtpgov-over]} b=${hv_if[smtpgov-blocked]} i n
    cat >"$tmp/policy.json" <<JSON
{"smtp_ports": [25], "defaults": {"rate": 100, "burst": 200, "over_limit": "drop"},
 "tiers": {"blocked": {"action": "drop"}},
 "vms": [{"id": "over", "interface": "$o", "addresses": ["${net[smtpgov-over]}.2/32"],
          "rate": 100, "burst": 200, "tier": "ok"},
         {"id": "blocked", "interface": "$b", "addresses": ["${net[smtpgov-blocked]}.2/32"], "tier": "blocked"}]}
JSON
    cat >"$tmp/smtpgovd.json" <<JSON
{"interfaces": ["$o", "$b"], "xdp_mode": "native", "bpffs": "$pins/smtpgov", "state_dir": "$tmp/state",
 "socket": "$tmp/ctl.sock", "metrics_listen": "", "policy_service_listen": "", "policy": "$tmp/policy.json",
 "log_level": "warning"}
JSON
    mkdir -p "$tmp/state"
    taskset -c 1 nsenter --net="/run/netns/$hv_ns" "$bin/smtpgovd" --config "$tmp/smtpgovd.json" \
        >"$tmp/smtpgovd.log" 2>&1 &
    daemon_pid=$!
    for ((i = 0; i < 300; i++)); do
        kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/smtpgovd.log" >&2; die "smtpgovd exited"; }
        n=$(sgctl status 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for x in json.load(sys.stdin).get("interfaces", []) if x.get("attached")))' 2>/dev/null || echo 0)
        ((n == 2)) && return 0
        sleep 0.1
    done
    cat "$tmp/smtpgovd.log" >&2
    die "smtpgovd did not attach within 30 s"
}

judged() {
    case $1 in
        empty) bpftool map dump pinned "$pins/drop/maps/sgbn_dropped" -j | python3 -c '
import json, sys
print(sum(v["value"] for e in json.load(sys.stdin) for v in e["formatted"]["values"]))' ;;
        smtpgov-over) sgctl vm show over | python3 -c 'import json, sys; print(sum(json.load(sys.stdin)["syn"].values()))' ;;
        smtpgov-blocked) sgctl vm show blocked | python3 -c 'import json, sys; print(sum(json.load(sys.stdin)["syn"].values()))' ;;
    esac
}

# run CONTENDER ROUND: one flood, then the receiver's count once it has settled
run() {
    local c=$1 r=$2 before after last i out=$tmp/flood-$1-$2.json
    before=$(judged "$c")
    timeout 60 taskset -c 0 "$bin/smtpgov-flood" --netns "${vm_ns[$c]}" syn --method live --dst "$target" \
        --rate max --count "$frames" --duration 30 --json >"$out" || die "$c: the flood failed"
    after=$(judged "$c") last=-1
    for ((i = 0; i < 50 && after != last && after - before < frames; i++)); do
        sleep 0.1
        last=$after after=$(judged "$c")
    done
    python3 - "$out" "$c" "$r" "$((after - before))" >>"$tmp/runs.jsonl" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
print(json.dumps({"contender": sys.argv[2], "round": int(sys.argv[3]), "sent": f["sent"], "judged": int(sys.argv[4]),
                  "method": f["method"], "mpps": f["rate"] / 1e6, "xmit_errors": f.get("iface_xdp_xmit_errors", 0)}))
PY
}

log "load average: $(cut -d' ' -f1-3 /proc/loadavg); spec_rstack_overflow: $(cat /sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow 2>/dev/null || echo n/a)"
topo_up
drop_up
smtpgov_up
for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < ${#contenders[@]}; k++)); do
        run "${contenders[$(((k + r) % ${#contenders[@]}))]}" "$r"
    done
done
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$src_dir/tools/bench/lib/live_table.py" "$tmp/runs.jsonl" "$rounds" "$frames"
