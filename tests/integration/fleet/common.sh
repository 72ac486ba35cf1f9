#!/usr/bin/env bash
# Helpers of the fleet tests: several hypervisors (each a testbed under its own prefix,
# with its own smtpgovd) sharing an etcd cluster on a management bridge.
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/etcd.sh"

FLEET_PREFIX=/sgtest

# fleet_host_up NAME IDX: testbed NAME (2 VMs) joined to the management bridge
fleet_host_up() {
    local name=$1 idx=$2
    "$SG_SRC/deploy/testbed.sh" --prefix "$name" down >/dev/null 2>&1 || true
    sg_on_exit "\"$SG_SRC/deploy/testbed.sh\" --prefix $name down >/dev/null 2>&1"
    SG_VMS=2 "$SG_SRC/deploy/testbed.sh" --prefix "$name" --vms 2 up >/dev/null
    fleet_etcd_attach "$name-hv" "$idx"
}

# fleet_daemon_start NAME: smtpgovd of host NAME in NAME-hv, its state under $SG_TMP/NAME
fleet_daemon_start() {
    local name=$1 dir=$SG_TMP/$1
    mkdir -p "$dir"
    rm -rf "/sys/fs/bpf/${SG_NS_TAG:+$SG_NS_TAG-}smtpgov-test-$name"
    cat >"$dir/config.json" <<JSON
{
  "interfaces": ["${name}v1", "${name}v2"],
  "xdp_mode": "native",
  "bpffs": "/sys/fs/bpf/${SG_NS_TAG:+$SG_NS_TAG-}smtpgov-test-$name",
  "state_dir": "$dir/state",
  "socket": "$dir/ctl.sock",
  "metrics_listen": "127.0.0.1:9464",
  "policy_service_listen": "",
  "sweep_interval_ms": 200,
  "fleet": {"etcd": [$(fleet_etcd_endpoints | sed 's/[^,]*/"&"/g')], "host": "$name", "prefix": "$FLEET_PREFIX"}
}
JSON
    [[ " ${sg_fail_logs[*]} " == *" $dir/smtpgovd.log "* ]] || sg_fail_log "$dir/smtpgovd.log"
    nsenter --net="/run/netns/$name-hv" "$SG_BIN/smtpgovd" --config "$dir/config.json" >>"$dir/smtpgovd.log" 2>&1 &
    echo $! >"$dir/pid"
    sg_on_exit "fleet_daemon_stop $name; rm -rf /sys/fs/bpf/${SG_NS_TAG:+$SG_NS_TAG-}smtpgov-test-$name"
    fleet_daemon_wait "$name"
}

# fleet_daemon_wait H: until smtpgovd of host H ($SG_TMP/H/pid) answers, 10 s at most
fleet_daemon_wait() {
    local dir=$SG_TMP/$1 i
    for ((i = 0; i < 100; i++)); do
        fctl "$1" status >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/smtpgovd.log" >&2; fail "smtpgovd of $1 exited"; }
        sleep 0.1
    done
    cat "$dir/smtpgovd.log" >&2
    fail "smtpgovd of $1 did not answer within 10 s"
}

fleet_daemon_stop() {
    local pid
    pid=$(cat "$SG_TMP/$1/pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

# fctl HOST ARGS...: smtpgovctl against host HOST's daemon (--json)
fctl() { local h=$1; shift; "$SG_BIN/smtpgovctl" --socket "$SG_TMP/$h/ctl.sock" --json "$@"; }

# fleetctl ARGS...: smtpgovctl fleet ... against the cluster, from the management network
fleetctl() {
    nsenter --net="/run/netns/$FLEET_ETCD_NS" "$SG_BIN/smtpgovctl" "$@" --etcd "$(fleet_etcd_endpoints)" \
        --prefix "$FLEET_PREFIX"
}

# fleet_status_of HOST FIELD: a field of HOST's status key
fleet_status_of() {
    fleet_etcdctl get --print-value-only "$FLEET_PREFIX/hosts/$1/status" | json "$2" 2>/dev/null || echo ""
}

# fleet_wait_serial HOST SERIAL TIMEOUT_S
fleet_wait_serial() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [[ $(fleet_status_of "$1" policy_serial) == "$2" ]] && return 0
        sleep 0.1
    done
    fail "host $1 did not apply fleet policy serial $2 within $3 s (status: $(fleet_status_of "$1" policy_serial); log: $SG_TMP/$1/smtpgovd.log)"
}

# fleet_wait_tier HOST ID TIER TIMEOUT_S
fleet_wait_tier() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        [[ $(fctl "$1" vm show "$2" 2>/dev/null | json tier 2>/dev/null) == "$3" ]] && return 0
        sleep 0.1
    done
    fail "$2 on host $1 is not $3 after $4 s: $(fctl "$1" vm show "$2" 2>&1 | head -c 300)"
}
