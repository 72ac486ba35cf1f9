#!/usr/bin/env bash
# The fill counts smtpgovctl status reports are the kernel's own: after start, after a
# veth pair matching gateway_interfaces is hot-plugged (both ends become gateways),
# after it is unplugged, and after a policy apply, every map's "used" equals what
# bpftool counts in the pinned map. An unclaimed VM interface that is not declared a
# gateway gets no entry even with an address-only VM in the policy (never inferred).
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmfill
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
hp=${SG_PREFIX}hp

policy() {  # policy FILE WITH_GATEWAY_VM
    local gw=""
    [[ $2 == yes ]] && gw=',{"id": "gwvm", "addresses": ["192.0.2.0/24", "2001:db8:99::/48"]}'
    cat >"$1" <<JSON
{"vms": [{"id": "sender", "interface": "$SG_VM1_IF", "addresses": ["$SG_VM1_V4/32", "$SG_VM1_V6/128"]}$gw]}
JSON
}

# check_fill WHEN: status --json "used" against bpftool's count, map by map
check_fill() {
    sgctl status >"$SG_TMP/status.json"
    for m in sg_ifaces sg_ifaces_big sg_vm_policy sg_vm_v4 sg_vm_v6 sg_auto_policy; do
        bpftool map dump pinned "$SG_BPFFS/maps/$m" -j >"$SG_TMP/$m.json"
    done
    python3 - "$SG_TMP" "$1" <<'PY' || fail "fill counts differ from the kernel's ($2)"
import json, sys
d, when = sys.argv[1], sys.argv[2]
def entries(m):
    return json.load(open(f"{d}/{m}.json"))
def value(e):  # BTF-formatted or raw hex bytes
    v = e.get("formatted", e)["value"]
    if isinstance(v, dict):
        return v
    raw = bytes(int(b, 16) for b in v)
    return {"flags": raw[4] if len(raw) == 8 else raw[11]}
kernel = {
    "sg_ifaces": sum(1 for e in entries("sg_ifaces") if value(e)["flags"]) + len(entries("sg_ifaces_big")),
    "sg_vm_policy": sum(1 for e in entries("sg_vm_policy") if value(e)["flags"] & 1),
    "sg_vm_v4": len(entries("sg_vm_v4")),
    "sg_vm_v6": len(entries("sg_vm_v6")),
    "sg_auto_policy": len(entries("sg_auto_policy")),
}
status = json.load(open(f"{d}/status.json"))["maps"]
bad = [f"{m}: status {status[m]['used']}, kernel {n}" for m, n in kernel.items() if status[m]["used"] != n]
print(f"[{when}] kernel {kernel}", file=sys.stderr)
if bad:
    print(f"[{when}] " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
    log "ok: fill counts equal the kernel's ($1)"
}

wait_attached() {  # wait_attached IFACE True|""
    local i
    for ((i = 0; i < 200; i++)); do
        [[ $(sgd_iface "$1" attached) == "$2" ]] && return 0
        sleep 0.05
    done
    fail "$1: attached is not '$2' after 10 s"
}

policy "$SG_TMP/policy.json" yes
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF" "${hp}*"
sgd_set_config "$SG_TMP/smtpgovd.json" gateway_interfaces "[\"${hp}*\"]"
sg_daemon_start "$SG_TMP/smtpgovd.json"
check_fill start
assert_eq "$(json maps.sg_ifaces.used <<<"$(sgctl status)")" 1 "interface entries: the VM's (the unclaimed one is no gateway)"

ip -n "$SG_NS_HV" link add "${hp}0" type veth peer name "${hp}1"
sg_on_exit 'ip -n "$SG_NS_HV" link del "${hp}0" 2>/dev/null'
ip -n "$SG_NS_HV" link set "${hp}0" up
ip -n "$SG_NS_HV" link set "${hp}1" up
wait_attached "${hp}0" True
wait_attached "${hp}1" True
check_fill hot-plug
assert_eq "$(json maps.sg_ifaces.used <<<"$(sgctl status)")" 3 "interface entries after hot-plugging a gateway pair"

ip -n "$SG_NS_HV" link del "${hp}0"
wait_attached "${hp}0" ""
wait_attached "${hp}1" ""
check_fill unplug

policy "$SG_TMP/policy2.json" no
sgctl policy apply "$SG_TMP/policy2.json" >/dev/null
check_fill "apply without the address-only VM"
assert_eq "$(json maps.sg_ifaces.used <<<"$(sgctl status)")" 1 "interface entries once the gateways are gone"
sgctl vm set-tier sender blocked >/dev/null
check_fill "set-tier"

sg_daemon_stop
sg_testbed down
sg_assert_clean
