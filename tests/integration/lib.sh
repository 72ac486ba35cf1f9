#!/usr/bin/env bash
# Shared helpers of the integration tests (source it). Every test runs its own
# testbed under its own prefix, and an EXIT trap takes down whatever it started,
# also when an assertion fails.
#
#   source "$(dirname "$0")/../lib.sh"
#   sg_init PREFIX            # paths, the cleanup trap, bpffs
#   sg_testbed up [--vms N] [--vlan-vm I]; eval "$(sg_testbed env)"
#   sg_flood --netns "$SG_VM1_NS" syn --dst ... --json   (JSON on stdout)
#   sg_daemon_start CONFIG    # smtpgovd in the hypervisor namespace
#   assert_eq / assert_le / assert_ge / fail
set -euo pipefail

SG_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SG_BIN=${SG_BIN:-$SG_SRC/build/bin}
export SG_FLOOD=$SG_BIN/smtpgov-flood

log() { printf '[%s] %s\n' "$(date +%T.%3N)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
assert_eq() { [[ $1 == "$2" ]] || fail "${3:-value}: expected $2, got $1"; log "ok: ${3:-value} = $1"; }
assert_le() { (($1 <= $2)) || fail "${3:-value}: expected <= $2, got $1"; log "ok: ${3:-value} = $1 <= $2"; }
assert_ge() { (($1 >= $2)) || fail "${3:-value}: expected >= $2, got $1"; log "ok: ${3:-value} = $1 >= $2"; }

# json FIELD.PATH < json: prints one value (numbers as integers when whole)
json() {
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(int(v) if isinstance(v, float) and v.is_integer() else v)' "$1"
}

sg_cleanup_hooks=()
sg_on_exit() { sg_cleanup_hooks=("$@" "${sg_cleanup_hooks[@]}"); }
# sg_fail_log FILE: its last lines are printed if the test fails (a daemon's log), so a
# failure in CI, whose temporary files are gone, can still be read.
sg_fail_logs=()
sg_fail_log() { sg_fail_logs+=("$1"); }
_sg_exit() {
    local rc=$? h
    set +e
    if ((rc)); then
        for h in "${sg_fail_logs[@]}"; do
            [[ -s $h ]] && { echo "--- the last lines of $h:"; tail -n 25 "$h"; } >&2
        done
    fi
    for h in "${sg_cleanup_hooks[@]}"; do eval "$h"; done
    if ((rc)); then log "test failed (exit $rc)"; else log "test passed"; fi
    exit $rc
}

# sg_init PREFIX: 1-8 chars [a-z0-9]; also the name of the test's private bpffs dir.
# SG_NS_TAG (environment, e.g. "sgp") is prepended to PREFIX and names the bpffs dir, so
# that several people running tests on one machine keep their namespaces, links and pins
# apart (the tagged prefix must still fit in 8 chars).
sg_init() {
    SG_PREFIX=${SG_NS_TAG:-}$1
    [[ $SG_PREFIX =~ ^[a-z][a-z0-9]{0,7}$ ]] || fail "test prefix '$SG_PREFIX' (SG_NS_TAG + '$1'): 1-8 of [a-z0-9]"
    [[ $EUID -eq 0 ]] || fail "integration tests need root"
    [[ -x $SG_FLOOD ]] || fail "$SG_FLOOD not built"
    "$SG_SRC/tests/ensure-bpffs.sh"
    SG_TMP=$(mktemp -d "/tmp/sg-$SG_PREFIX.XXXXXX")
    SG_BPFFS=/sys/fs/bpf/${SG_NS_TAG:+$SG_NS_TAG-}smtpgov-test-$SG_PREFIX
    trap _sg_exit EXIT
    trap 'exit 130' INT TERM
    sg_on_exit 'rm -rf "$SG_TMP"'
    sg_on_exit 'sg_testbed down >/dev/null 2>&1'
    # a stale testbed of an aborted earlier run must not change the result
    sg_testbed down >/dev/null 2>&1 || true
}

sg_testbed() { "$SG_SRC/deploy/testbed.sh" --prefix "$SG_PREFIX" "$@"; }
sg_syncount() { sg_testbed syncount "$@"; }
sg_delivered() { sg_testbed delivered "${1:-inet}"; }
sg_flood() { "$SG_FLOOD" "$@"; }

# wait_delivered N [TIMEOUT_S]: until the internet sink has logged N deliveries
wait_delivered() {
    local want=$1 t=${2:-20} i
    for ((i = 0; i < t * 10; i++)); do
        (($(sg_delivered) >= want)) && return 0
        sleep 0.1
    done
    return 1
}

# sg_assert_clean: nothing of the testbed or of the test's daemon is left behind
sg_assert_clean() {
    local p=$SG_PREFIX
    ! ip netns list | awk '{print $1}' | grep -qE "^$p-" || fail "namespaces left: $(ip netns list | grep "^$p-")"
    ! ip -o link show | awk -F': ' '{print $2}' | grep -qE "^${p}(v|up|px)" || fail "links left in the root namespace"
    [[ ! -e /run/smtpgov-testbed/$p ]] || fail "state dir /run/smtpgov-testbed/$p left"
    ! pgrep -f "/run/smtpgov-testbed/$p/" >/dev/null || fail "processes left: $(pgrep -af "/run/smtpgov-testbed/$p/")"
    [[ ! -e $SG_BPFFS ]] || fail "bpffs pins left under $SG_BPFFS"
    ! pgrep -f "$SG_TMP/smtpgovd.json" >/dev/null || fail "smtpgovd left running"
    log "ok: testbed $p left nothing behind"
}

# ---- smtpgovd (DESIGN.md config keys; internals.md control socket) -----------
SG_SOCKET=""
SG_DAEMON_PID=""

sgctl() { "$SG_BIN/smtpgovctl" --socket "$SG_SOCKET" --json "$@"; }

# sg_write_config FILE POLICY IFACE...: a private config for the test's testbed
sg_write_config() {
    local file=$1 policy=$2; shift 2
    local ifs port
    ifs=$(printf '"%s",' "$@")
    port=$((20000 + RANDOM % 20000))
    SG_SOCKET=$SG_TMP/ctl.sock
    SG_METRICS=127.0.0.1:$port
    cat >"$file" <<JSON
{
  "interfaces": [${ifs%,}],
  "xdp_mode": "${SG_XDP_MODE:-native}",
  "bpffs": "$SG_BPFFS",
  "state_dir": "$SG_TMP/state",
  "socket": "$SG_SOCKET",
  "metrics_listen": "$SG_METRICS",
  "policy": "$policy"
}
JSON
}

# sg_daemon_start CONFIG: smtpgovd in the hypervisor namespace (network namespace
# only: nsenter keeps the host's mount namespace, so the bpffs pins are real),
# waits until every configured interface is attached.
sg_daemon_start() {
    local cfg=$1 i n
    [[ -x $SG_BIN/smtpgovd ]] || fail "$SG_BIN/smtpgovd not built"
    mkdir -p "$SG_TMP/state"
    sg_fail_log "$SG_TMP/smtpgovd.log"
    nsenter --net="/run/netns/$SG_PREFIX-hv" "$SG_BIN/smtpgovd" --config "$cfg" >"$SG_TMP/smtpgovd.log" 2>&1 &
    SG_DAEMON_PID=$!
    sg_on_exit 'sg_daemon_stop'
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SG_DAEMON_PID" 2>/dev/null || { cat "$SG_TMP/smtpgovd.log" >&2; fail "smtpgovd exited"; }
        if sgctl status >"$SG_TMP/status.json" 2>/dev/null; then
            n=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(sum(1 for i in s.get("interfaces", []) if not i.get("attached")))' "$SG_TMP/status.json")
            ((n == 0)) && { log "smtpgovd up (pid $SG_DAEMON_PID)"; return 0; }
        fi
        sleep 0.1
    done
    cat "$SG_TMP/smtpgovd.log" >&2
    fail "smtpgovd did not attach within 10 s"
}

sg_daemon_stop() {
    [[ -n $SG_DAEMON_PID ]] || return 0
    kill "$SG_DAEMON_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SG_DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SG_DAEMON_PID" 2>/dev/null || true
    wait "$SG_DAEMON_PID" 2>/dev/null || true
    SG_DAEMON_PID=""
    # the daemon keeps its pins across restarts by design; the test's are private
    rm -rf "$SG_BPFFS"
}

# sg_vm ID: the VM object of `vm show` (JSON)
sg_vm() { sgctl vm show "$1"; }

# vm show reports the last sweep (sweep_interval_ms old at most): wait until the VM's
# judged SYNs (every verdict) reach $2, or $3 seconds (default 3) pass; prints the VM.
sg_vm_settled() {
    local id=$1 want=$2 deadline=$((SECONDS + ${3:-3})) vm judged
    while :; do
        vm=$(sg_vm "$id")
        judged=$(($(json syn.pass <<<"$vm") + $(json syn.throttle <<<"$vm") + $(json syn.steer <<<"$vm") + $(json syn.block <<<"$vm")))
        ((judged >= want || SECONDS >= deadline)) && break
        sleep 0.2
    done
    printf '%s\n' "$vm"
}

# sg_vm_wait ID FIELD WANT [TIMEOUT_S]: until the VM's numeric FIELD (e.g. syn.pass)
# reaches WANT after a sweep, or the timeout (default 3 s); prints the VM.
sg_vm_wait() {
    local id=$1 field=$2 want=$3 deadline=$((SECONDS + ${4:-3})) vm
    while :; do
        vm=$(sg_vm "$id")
        (($(json "$field" <<<"$vm") >= want || SECONDS >= deadline)) && break
        sleep 0.2
    done
    printf '%s\n' "$vm"
}
