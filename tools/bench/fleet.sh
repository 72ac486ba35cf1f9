#!/usr/bin/env bash
# Fleet scale benchmark (issue 12 "Scale"): N simulated hypervisors (default 1,000, each
# with 100 VMs) against a 3-member etcd cluster started here in a namespace of its own
# (tests/integration/fleet/etcd.sh). smtpgov-fleet-sim (fleet_sim.cpp) talks to etcd as
# smtpgovd's fleet agent does: leases and keepalives, status writes, a watch on the global
# policy value answered by each host reading its own value, coalesced reputation writes.
# Prints policy propagation (final global write -> every host has its value, p50/p99 over
# several applies that change every host's value), etcd writes/s per host and in total,
# etcd's CPU (from /proc/<pid>/stat over the steady window) and DB size.
#
#   tools/bench/fleet.sh [--hosts N] [--vms M] [--quick] [--members K] [-- SIM-ARGS...]
#     --quick: 3 measured applies, a 15 s steady window
#     SIM-ARGS go to smtpgov-fleet-sim (--change-rate F, --workers W, --streams S, ...)
#
# Real daemons in the same run: FLEET_ATTACH="NS1 NS2" attaches those network namespaces
# to the etcd management bridge (10.254.0.(10+i)) before the run; give their hosts with
# `-- --real-hosts hv-a,hv-b` (their fleet config: etcd = the endpoints printed, prefix
# /smtpgov-sim). The simulator puts VMs for them in every policy and reports their
# propagation from their status's applied_at_ms.
# Root (network namespaces). SG_BIN: directory of smtpgov-fleet-sim (default build/bin).
set -euo pipefail
SRC=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
export SG_BIN=${SG_BIN:-$SRC/build/bin}
HOSTS=1000 VMS=100 MEMBERS=3 APPLIES=5 STEADY=30
SIM_ARGS=()
while (($#)); do
    case $1 in
        --hosts) HOSTS=$2; shift 2 ;;
        --vms) VMS=$2; shift 2 ;;
        --members) MEMBERS=$2; shift 2 ;;
        --quick) APPLIES=3 STEADY=15; shift ;;
        --) shift; SIM_ARGS=("$@"); break ;;
        *) echo "usage: $0 [--hosts N] [--vms M] [--quick] [--members K] [-- SIM-ARGS...]" >&2; exit 2 ;;
    esac
done
[[ -x $SG_BIN/smtpgov-fleet-sim ]] || { echo "$SG_BIN/smtpgov-fleet-sim not built" >&2; exit 1; }

source "$SRC/tests/integration/lib.sh"
source "$SRC/tests/integration/fleet/etcd.sh"
[[ $EUID -eq 0 ]] || fail "needs root (network namespaces)"
SG_PREFIX=sgcbench
SG_TMP=$(mktemp -d "/tmp/sg-$SG_PREFIX.XXXXXX")
trap _sg_exit EXIT
trap 'exit 130' INT TERM
sg_on_exit 'rm -rf "$SG_TMP"'

NS=sgcbench$$
fleet_etcd_up "$NS" "$MEMBERS"
i=0
for ns in ${FLEET_ATTACH:-}; do fleet_etcd_attach "$ns" "$i"; i=$((i + 1)); done
pids=""
for ((m = 0; m < MEMBERS; m++)); do pids+="${pids:+,}$(cat "$SG_TMP/etcd-m$m.pid")"; done
log "simulating $HOSTS hosts x $VMS VMs against $(fleet_etcd_endpoints) (etcd pids $pids, data in $SG_TMP)"
nsenter --net="/run/netns/$NS" "$SG_BIN/smtpgov-fleet-sim" --etcd "$(fleet_etcd_endpoints)" --hosts "$HOSTS" \
    --vms "$VMS" --applies "$APPLIES" --steady "$STEADY" --etcd-pids "$pids" "${SIM_ARGS[@]}"
fleet_etcdctl endpoint status -w table >&2 || true
