#!/usr/bin/env bash
# etcd for the fleet tests (source it after tests/integration/lib.sh and sg_init):
# members inside a network namespace of the test's own, each with its data dir under
# $SG_TMP. That namespace is the management network: a bridge 10.254.0.1/24 that
# hypervisor namespaces join with fleet_etcd_attach. Member i listens for clients on
# 10.254.0.1:(2379+10*i) and 127.0.0.1:(2379+10*i), for peers on 127.0.0.1:(2380+10*i).
#
#   fleet_etcd_up NS N        # creates NS, starts N members, waits for a leader
#   fleet_etcd_attach HVNS I  # veth HVNS <-> NS, HVNS gets 10.254.0.(10+I)/24
#   fleet_etcd_endpoints      # "http://10.254.0.1:2379,http://10.254.0.1:2389,..."
#   fleet_etcd_kill I         # SIGKILL member I;   fleet_etcd_start I: start it again
#   fleet_etcd_leader         # index of the current leader
#   fleet_etcdctl ARGS...     # etcdctl against every member, inside NS

FLEET_ETCD_NS=""
FLEET_ETCD_N=0

_fleet_member_url() { echo "http://10.254.0.1:$((2379 + 10 * $1))"; }
_fleet_peer_url() { echo "http://127.0.0.1:$((2380 + 10 * $1))"; }

fleet_etcd_endpoints() {
    local i out=""
    for ((i = 0; i < FLEET_ETCD_N; i++)); do out+="${out:+,}$(_fleet_member_url "$i")"; done
    echo "$out"
}

fleet_etcdctl() {
    ETCDCTL_API=3 nsenter --net="/run/netns/$FLEET_ETCD_NS" etcdctl --endpoints "$(fleet_etcd_endpoints)" \
        --dial-timeout 500ms --command-timeout 5s "$@"
}

fleet_etcd_start() {
    local i=$1 cluster="" j
    for ((j = 0; j < FLEET_ETCD_N; j++)); do cluster+="${cluster:+,}m$j=$(_fleet_peer_url "$j")"; done
    local state=new
    [[ -d $SG_TMP/etcd-m$i/member ]] && state=existing
    mkdir -p "$SG_TMP/etcd-m$i"
    # Short election timeouts: a killed leader is replaced within about a second.
    nsenter --net="/run/netns/$FLEET_ETCD_NS" setsid etcd --name "m$i" --data-dir "$SG_TMP/etcd-m$i" \
        --listen-client-urls "$(_fleet_member_url "$i"),http://127.0.0.1:$((2379 + 10 * i))" --advertise-client-urls "$(_fleet_member_url "$i")" \
        --listen-peer-urls "$(_fleet_peer_url "$i")" --initial-advertise-peer-urls "$(_fleet_peer_url "$i")" \
        --initial-cluster "$cluster" --initial-cluster-state "$state" --initial-cluster-token "sg-$SG_PREFIX" \
        --heartbeat-interval 100 --election-timeout 1000 --max-txn-ops 1024 \
        --logger zap --log-level warn >"$SG_TMP/etcd-m$i.log" 2>&1 &
    echo $! >"$SG_TMP/etcd-m$i.pid"
    disown $!
}

fleet_etcd_kill() {
    local pid
    pid=$(cat "$SG_TMP/etcd-m$1.pid" 2>/dev/null) || return 0
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

fleet_etcd_leader() {
    local i st
    for ((i = 0; i < FLEET_ETCD_N; i++)); do
        st=$(ETCDCTL_API=3 nsenter --net="/run/netns/$FLEET_ETCD_NS" etcdctl --endpoints "$(_fleet_member_url "$i")" \
            --dial-timeout 1s endpoint status -w json 2>/dev/null) || continue
        python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; sys.exit(0 if s["leader"]==s["header"]["member_id"] else 1)' \
            <<<"$st" && { echo "$i"; return 0; }
    done
    return 1
}

# Waits (at most 30 s) until the cluster has a leader and takes writes.
fleet_etcd_wait() {
    local t
    for ((t = 0; t < 300; t++)); do
        fleet_etcdctl put /sg-probe ok >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "etcd cluster in $FLEET_ETCD_NS has no leader after 30 s (logs: $SG_TMP/etcd-m*.log)"
}

fleet_etcd_down() {
    local i
    for ((i = 0; i < FLEET_ETCD_N; i++)); do fleet_etcd_kill "$i"; done
    [[ -n $FLEET_ETCD_NS ]] && ip netns del "$FLEET_ETCD_NS" 2>/dev/null
    return 0
}

fleet_etcd_up() {
    FLEET_ETCD_NS=$1
    FLEET_ETCD_N=$2
    command -v etcd >/dev/null || fail "etcd is not installed (deploy/install-deps.sh installs etcd-server)"
    ip netns del "$FLEET_ETCD_NS" 2>/dev/null || true
    ip netns add "$FLEET_ETCD_NS"
    ip -n "$FLEET_ETCD_NS" link set lo up
    ip -n "$FLEET_ETCD_NS" link add br0 type bridge
    ip -n "$FLEET_ETCD_NS" addr add 10.254.0.1/24 dev br0
    ip -n "$FLEET_ETCD_NS" link set br0 up
    sg_on_exit fleet_etcd_down
    local i
    for ((i = 0; i < FLEET_ETCD_N; i++)); do fleet_etcd_start "$i"; done
    fleet_etcd_wait
    log "etcd: $FLEET_ETCD_N member(s) in $FLEET_ETCD_NS: $(fleet_etcd_endpoints)"
}

fleet_etcd_attach() {
    local hv=$1 i=$2
    local a="fe${FLEET_ETCD_NS: -4}$i"
    ip link add "$a" netns "$FLEET_ETCD_NS" type veth peer name mgmt0 netns "$hv"
    ip -n "$FLEET_ETCD_NS" link set "$a" master br0 up
    ip -n "$hv" addr add "10.254.0.$((10 + i))/24" dev mgmt0
    ip -n "$hv" link set mgmt0 up
}
