#!/usr/bin/env bash
# smtpgovd inside deploy/systemd/smtpgovd.service's sandbox, as far as it can be built
# without systemd as PID 1 (this machine's is not):
#   - the capability bounding set is exactly the unit's CapabilityBoundingSet=, with
#     no_new_privs (setpriv);
#   - /sys is read-only but the pin directory, as ProtectKernelTunables= with
#     ReadWritePaths= (a private mount namespace);
#   - strace sees every system call: each one must be allowed by the unit's
#     SystemCallFilter= lines (expanded by systemd-analyze syscall-filter, applied in
#     order), nothing in /proc is opened but /proc/self (ProcSubset=pid) and no device
#     but the few PrivateDevices= keeps.
# The daemon attaches to a veth in its own network namespace, takes vm set-tier, a policy
# apply and a scrape, restarts adopting its pins and stops. (`smtpgovd --remove` is an
# operator's command from a shell, not the unit's: the exit hooks run it unsandboxed.)
set -euo pipefail
if [[ -z ${SG_UNIT_NS:-} ]]; then
    exec unshare --mount --propagation private env SG_UNIT_NS=1 bash "$(readlink -f "$0")" "$@"
fi
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
sg_init unit
unit=$SG_SRC/deploy/systemd/smtpgovd.service
command -v strace >/dev/null || fail "strace is missing (deploy/install-deps.sh installs it)"

ns=$SG_PREFIX-hv
ip netns add "$ns"
sg_on_exit 'ip netns del "$ns" 2>/dev/null'
ip -n "$ns" link add "${SG_PREFIX}v1" type veth peer name "${SG_PREFIX}p1"
ip -n "$ns" link set lo up
ip -n "$ns" link set "${SG_PREFIX}v1" up
ip -n "$ns" link set "${SG_PREFIX}p1" up

# ProtectKernelTunables=: every mount under /sys read-only, then the pin directory
# writable again (ReadWritePaths=); this namespace only
mkdir -p "$SG_BPFFS"
sg_on_exit '"$SG_BIN/smtpgovd" --bpffs "$SG_BPFFS" --remove >/dev/null 2>&1; rm -rf "$SG_BPFFS"'
for mp in $(awk '$5 ~ "^/sys(/|$)" {print $5}' /proc/self/mountinfo | sort -u); do
    mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
mount --bind "$SG_BPFFS" "$SG_BPFFS"
mount -o remount,bind,rw "$SG_BPFFS"
sg_on_exit 'umount "$SG_BPFFS"; mount -o remount,bind,rw /sys/fs/bpf'
! touch /sys/fs/bpf/sg-unit-probe 2>/dev/null || { rm -f /sys/fs/bpf/sg-unit-probe; fail "/sys/fs/bpf is still writable"; }

caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[[ -n $caps ]] || fail "no CapabilityBoundingSet= in the unit"
bounding="-all$(for c in $caps; do c=${c#CAP_}; printf ',+%s' "${c,,}"; done)"
log "capability bounding set: $caps ($bounding)"

cat >"$SG_TMP/policy.json" <<JSON
{"vms": [{"id": "vm-101", "tenant": "acme", "interface": "${SG_PREFIX}v1"}]}
JSON
SG_SOCKET=$SG_TMP/ctl.sock
port=$((20000 + RANDOM % 20000))
cat >"$SG_TMP/smtpgovd.json" <<JSON
{"interfaces": ["${SG_PREFIX}v1"], "xdp_mode": "native", "bpffs": "$SG_BPFFS",
 "state_dir": "$SG_TMP/state", "socket": "$SG_SOCKET", "metrics_listen": "127.0.0.1:$port",
 "policy": "$SG_TMP/policy.json", "log_target": "journal"}
JSON

run=0
STRACE_PID=""
start() {
    run=$((run + 1))
    nsenter --net="/run/netns/$ns" strace -f -qq -o "$SG_TMP/strace.$run" \
        setpriv --bounding-set="$bounding" --inh-caps=-all --no-new-privs \
        "$SG_BIN/smtpgovd" --config "$SG_TMP/smtpgovd.json" "$@" 2>>"$SG_TMP/smtpgovd.log" &
    STRACE_PID=$!
}
stop_daemon() {
    local pid
    pid=$(pgrep -P "$STRACE_PID" || true)
    [[ -n $pid ]] && kill "$pid"
    wait "$STRACE_PID" || fail "smtpgovd exited with $? (log: $(tail -5 "$SG_TMP/smtpgovd.log"))"
    STRACE_PID=""
}
sg_on_exit '[[ -z $STRACE_PID ]] || { kill $(pgrep -P "$STRACE_PID") 2>/dev/null; wait "$STRACE_PID"; }'
wait_attached() {
    for ((i = 0; i < 600; i++)); do
        kill -0 "$STRACE_PID" 2>/dev/null || { cat "$SG_TMP/smtpgovd.log" >&2; fail "smtpgovd exited"; }
        if sgctl status >"$SG_TMP/status.json" 2>/dev/null &&
            [[ $(json interfaces.0.attached <"$SG_TMP/status.json") == True ]]; then
            return 0
        fi
        sleep 0.1
    done
    cat "$SG_TMP/smtpgovd.log" >&2
    fail "smtpgovd did not attach within 60 s (under strace)"
}

start
wait_attached
log "ok: attached with the unit's capabilities and a read-only /sys"
sgctl vm set-tier vm-101 blocked >/dev/null
sgctl policy apply "$SG_TMP/policy.json" >/dev/null
for ((i = 0; i < 50; i++)); do
    nsenter --net="/run/netns/$ns" curl -sf "http://127.0.0.1:$port/metrics" >"$SG_TMP/metrics" && break
    sleep 0.1
done
grep -q "^smtpgov_build_info" "$SG_TMP/metrics" || fail "no smtpgov_build_info on /metrics"
stop_daemon
start
wait_attached
assert_eq "$(json tier <<<"$(sgctl vm show vm-101)")" blocked "tier of vm-101 after a restart under the sandbox"
stop_daemon
log "ok: set-tier, policy apply, scrape, restart (adopted)"

# every system call after smtpgovd's execve, against the unit's filter
for f in "$SG_TMP"/strace.*; do
    awk '/execve\("[^"]*\/smtpgovd"/ { on = 1 } on' "$f"
done >"$SG_TMP/trace"
python3 "$(dirname "$(readlink -f "$0")")/unit_filter.py" "$unit" "$SG_TMP/trace" ||
    fail "the daemon does what the unit would refuse"
log "ok: every system call within the unit's SystemCallFilter=, /proc and /dev as the unit leaves them"
