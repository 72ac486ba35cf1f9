#!/usr/bin/env bash
# smtpgovd at scale: N registered VMs (default 100,000; max_vms raised to fit), each
# with an IPv4 /32 (gateway-style LPM entries) and every 10th with a VM interface name.
# Prints sweep duration (ms; status.sweep.last_ms over several sweeps) and daemon RSS.
# Targets: sweep <= 50 ms, RSS <= 150 MB. Root; runs in a private network namespace.
#   tools/bench/scale.sh [N]   (SG_BIN: directory of smtpgovd, default build/bin)
set -euo pipefail
N=${1:-100000}
SRC=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
BIN=${SG_BIN:-$SRC/build/bin}
NS=sgscale-$$
TMP=$(mktemp -d /tmp/sg-scale.XXXXXX)
BPFFS=/sys/fs/bpf/smtpgov-bench-scale-$$
pid=""
cleanup() {
    set +e
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [[ -d $BPFFS ]] && nsenter --net="/run/netns/$NS" "$BIN/smtpgovd" --bpffs "$BPFFS" --remove >/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
[[ -n ${SG_SCALE_KEEPLOG:-} ]] && trap "cp \"\$TMP/log\" \"$SG_SCALE_KEEPLOG\"; cleanup" EXIT
"$SRC/tests/ensure-bpffs.sh"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add sgs0 type veth peer name sgs1
ip -n "$NS" link set sgs0 up && ip -n "$NS" link set sgs1 up

python3 - "$N" "$TMP/policy.json" <<'PY'
import json, sys
n = int(sys.argv[1])
vms = []
for i in range(n):
    vm = {"id": f"vm-{i}", "tenant": f"t{i % 100}", "addresses": [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32"],
          "rate": 10 + i % 50, "burst": 20 + i % 100}
    if i == 0: vm["interface"] = "sgs0"
    vms.append(vm)
json.dump({"vms": vms}, open(sys.argv[2], "w"))
PY
max_vms=$(( (N + 1023) / 1024 * 1024 ))
t0=$(date +%s%N)
nsenter --net="/run/netns/$NS" "$BIN/smtpgovd" --interfaces sgs0 --bpffs "$BPFFS" --state-dir "$TMP/state" \
    --socket "$TMP/ctl.sock" --metrics-listen "${SG_SCALE_METRICS-127.0.0.1:0}" --policy "$TMP/policy.json" --max-vms "$max_vms" \
    --sweep-interval-ms 1000 ${SG_SCALE_ARGS:-} >"$TMP/log" 2>&1 &
pid=$!
status() {
    python3 - "$TMP/ctl.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{"cmd":"status"}\n')
r = json.loads(s.makefile().readline())["result"]; print(r["sweep"]["last_ms"], r["sweep"]["count"], r["vms"])
PY
}
until [[ -S $TMP/ctl.sock ]] && status >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/log"; exit 1; }
    sleep 0.2
done
start_ms=$((($(date +%s%N) - t0) / 1000000))
samples=()
last=-1
while ((${#samples[@]} < 15)); do
    read -r ms count vms < <(status)
    if ((count != last)); then samples+=("$ms"); last=$count; fi
    sleep 0.5
done
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
printf '%s\n' "${samples[@]}" | sort -g >"$TMP/sweeps"
p50=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$TMP/sweeps")
max=$(tail -1 "$TMP/sweeps")
printf '\n| metric | value | target |\n|---|---|---|\n'
printf '| registered VMs | %d | 100000 |\n' "$vms"
printf '| start to ready (load, policy into maps, attach, first sweep) | %d ms | |\n' "$start_ms"
printf '| sweep duration p50 (of %d sweeps) | %.1f ms | <= 50 ms |\n' "${#samples[@]}" "$p50"
printf '| sweep duration max | %.1f ms | <= 50 ms |\n' "$max"
printf '| daemon RSS | %.1f MB | <= 150 MB |\n' "$(echo "$rss_kb / 1024" | bc -l)"
