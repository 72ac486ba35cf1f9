#!/usr/bin/env bash
# Three hypervisors share one policy and every VM's reputation through a 3-member etcd
# cluster (issue 12): one apply reaches all three, each enforces only its VMs; a VM
# blocked on host A and moved to host B is blocked there from its first SYN (counted at
# the receiver); a tenant spread over three hosts is escalated as a tenant; an invalid
# stored policy is refused with the old one in force; a pin written from another
# machine holds on the VM's host; the etcd leader killed: no
# interruption beyond the election; every member killed: enforcement unchanged,
# reputation changes queued and written when etcd is back.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init sgfl
# host names (and their testbeds' namespaces) carry SG_NS_TAG like every other name
HA=${SG_NS_TAG:-}sgfa HB=${SG_NS_TAG:-}sgfb HC=${SG_NS_TAG:-}sgfc
fleet_etcd_up "$SG_PREFIX-etcd" 3
fleet_host_up ${HA} 0
fleet_host_up ${HB} 1
fleet_host_up ${HC} 2
inet=203.0.113.25  # the testbeds' internet SMTP server
for h in ${HA} ${HB} ${HC}; do fleet_daemon_start "$h"; done

# The fleet policy: own thresholds high (a complaint is 200), the tenant's lower.
fleet_policy() {  # fleet_policy FILE MOVED_HOST MOVED_IF RATE
    cat >"$1" <<JSON
{
  "defaults": {"rate": ${4:-10}, "burst": 20},
  "tiers": {"blocked": {"action": "drop"}},
  "reputation": {"half_life_s": 3600, "min_dwell_s": 600,
                 "thresholds": {"throttled": 500, "steered": 1000, "blocked": 2000},
                 "tenant_thresholds": {"throttled": 500, "steered": 5000, "blocked": 10000}},
  "vms": [
    {"id": "web-1", "tenant": "acme", "host": "${HA}", "interface": "${HA}v1"},
    {"id": "mover", "tenant": "fraud", "host": "$2", "interface": "$3"},
    {"id": "db-1", "tenant": "acme", "host": "${HB}", "interface": "${HB}v1"},
    {"id": "app-1", "tenant": "acme", "host": "${HC}", "interface": "${HC}v1"},
    {"id": "solo", "tenant": "other", "host": "${HC}", "interface": "${HC}v2"}
  ]
}
JSON
}

log "one apply reaches every host; each enforces only its own VMs"
fleet_policy "$SG_TMP/p1.json" ${HA} ${HA}v2
fleetctl fleet policy apply "$SG_TMP/p1.json" --wait 20 >"$SG_TMP/apply1.out" || { cat "$SG_TMP/apply1.out"; fail "apply 1"; }
serial=$(fleetctl fleet status --json | json serial)
for h in ${HA} ${HB} ${HC}; do fleet_wait_serial "$h" "$serial" 20; done
ids() { fctl "$1" vm list | python3 -c 'import json,sys; print(" ".join(sorted(v["id"] for v in json.load(sys.stdin) if not v["auto"])))'; }
assert_eq "$(ids ${HA})" "mover web-1" "VMs enforced on host a"
assert_eq "$(ids ${HB})" "db-1" "VMs enforced on host b"
assert_eq "$(ids ${HC})" "app-1 solo" "VMs enforced on host c"
status=$(fleetctl fleet status --json)
for h in ${HA} ${HB} ${HC}; do
    assert_eq "$(python3 -c 'import json,sys; s=json.load(sys.stdin); print(next(x["policy_serial"] for x in s["hosts"] if x["host"]==sys.argv[1]))' "$h" <<<"$status")" "$serial" "fleet status: serial applied on $h"
done
# a fleet host refuses a local policy apply (its policy is the fleet's)
if fctl ${HA} policy apply "$SG_TMP/p1.json" 2>"$SG_TMP/local.err"; then fail "local policy apply on a fleet host succeeded"; fi
grep -q "fleet policy apply" "$SG_TMP/local.err" || fail "local apply refusal does not point to fleet policy apply"

log "a VM blocked on host a, moved to host b, is blocked there from its first SYN"
fctl ${HA} report complaint mover --count 11 >/dev/null  # 2,200 >= blocked
fleet_wait_tier ${HA} mover blocked 10
for ((i = 0; i < 50; i++)); do  # its record reached etcd
    [[ $(fleet_etcdctl get --print-value-only "$FLEET_PREFIX/tenants/fraud/vms/mover" | json tier 2>/dev/null) == blocked ]] && break
    sleep 0.1
done
((i < 50)) || fail "mover's record in etcd is not blocked"
before=$("$SG_SRC/deploy/testbed.sh" --prefix ${HB} syncount)
fleet_policy "$SG_TMP/p2.json" ${HB} ${HB}v2
fleetctl fleet policy apply "$SG_TMP/p2.json" --wait 20 >/dev/null || fail "apply 2 (migration)"
serial=$(fleetctl fleet status --json | json serial)
fleet_wait_serial ${HB} "$serial" 20
sg_flood --netns ${HB}-vm2 syn --dst "$inet" --rate 200 --count 100 --json >/dev/null
sleep 0.5
after=$("$SG_SRC/deploy/testbed.sh" --prefix ${HB} syncount)
mover=$(fctl ${HB} vm show mover)
log "mover on b: $(json tier <<<"$mover"), syn $(python3 -c 'import json,sys; print(json.load(sys.stdin)["syn"])' <<<"$mover")"
assert_eq "$(json tier <<<"$mover")" blocked "mover's tier on its new host"
assert_eq "$(json syn.pass <<<"$mover")" 0 "mover's SYNs passed on its new host"
assert_eq "$((after - before))" 0 "mover's SYNs that reached the internet from host b"
assert_eq "$(ids ${HA})" "web-1" "host a no longer enforces mover"

log "a tenant spread over three hosts, each VM under its own threshold, is escalated as a tenant"
fctl ${HA} report complaint web-1 >/dev/null
fctl ${HB} report complaint db-1 >/dev/null
assert_eq "$(fctl ${HC} vm show app-1 | json tier)" ok "app-1 before its tenant crosses"
fctl ${HC} report complaint app-1 >/dev/null  # 3 x 200 = 600 >= 500, each 200 < 500
fleet_wait_tier ${HA} web-1 throttled 15
fleet_wait_tier ${HB} db-1 throttled 15
fleet_wait_tier ${HC} app-1 throttled 15
assert_eq "$(fctl ${HC} vm show solo | json tier)" ok "another tenant's VM on the same host"
assert_eq "$(fctl ${HC} vm show app-1 | json score | cut -d. -f1)" 199 "app-1's own score (under its threshold)"

log "a pin written through etcd from another machine holds on the VM's host; cleared the same way"
fleetctl fleet vm set-tier solo blocked --for 600 --wait 10 >"$SG_TMP/pin.out" ||
    { cat "$SG_TMP/pin.out"; fail "fleet vm set-tier solo blocked"; }
log "$(cat "$SG_TMP/pin.out")"
assert_eq "$(fctl ${HC} vm show solo | json tier)" blocked "solo's tier on host c after fleet vm set-tier"
before=$("$SG_SRC/deploy/testbed.sh" --prefix ${HC} syncount)
sg_flood --netns ${HC}-vm2 syn --dst "$inet" --rate 200 --count 50 --json >/dev/null
sleep 0.5
assert_eq "$(( $("$SG_SRC/deploy/testbed.sh" --prefix ${HC} syncount) - before ))" 0 "solo's SYNs through while pinned"
assert_eq "$(fleetctl fleet vm list --json --tenant other | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["updated_by"])')" \
    ${HC} "solo's record written back by its own host"
if fleetctl fleet vm set-tier nosuch blocked 2>"$SG_TMP/pin.err"; then fail "fleet vm set-tier of an unknown VM succeeded"; fi
grep -q "no VM nosuch in the fleet policy" "$SG_TMP/pin.err" || fail "unknown VM: $(cat "$SG_TMP/pin.err")"
if fctl ${HA} vm set-tier solo blocked 2>"$SG_TMP/pin.err"; then fail "host a pinned a VM it does not enforce"; fi
grep -q "fleet vm set-tier" "$SG_TMP/pin.err" || fail "no pointer to fleet vm set-tier: $(cat "$SG_TMP/pin.err")"
fleetctl fleet vm clear solo --wait 10 >/dev/null || fail "fleet vm clear solo"
assert_eq "$(fctl ${HC} vm show solo | json tier)" ok "solo's tier on host c after fleet vm clear"

log "an invalid policy stored behind the CLI's back is refused by every host; the old one stays"
good=$serial
fleet_etcdctl put "$FLEET_PREFIX/policy/global" \
    "{\"defaults\": {\"rate\": -5}, \"fleet\": {\"serial\": 999, \"hosts\": {}}}" >/dev/null
for h in ${HA} ${HB} ${HC}; do
    for ((i = 0; i < 100; i++)); do [[ $(fleet_status_of "$h" refused.serial) == 999 ]] && break; sleep 0.1; done
    ((i < 100)) || fail "host $h did not report refusing serial 999"
    assert_eq "$(fleet_status_of "$h" policy_serial)" "$good" "serial in force on $h after the refusal"
done
grep -q '"fleet_policy_refused"' "$SG_TMP/${HB}/state/events.jsonl" || fail "no fleet_policy_refused event on host b"
assert_eq "$(ids ${HB})" "db-1 mover" "VMs on host b after the refusal"
fleetctl fleet policy apply "$SG_TMP/p2.json" --wait 20 >/dev/null || fail "apply after the refused one"
serial=$(fleetctl fleet status --json | json serial)

log "the etcd leader killed: a policy change still reaches every host after the election"
leader=$(fleet_etcd_leader)
fleet_etcd_kill "$leader"
t0=$(date +%s%N)
fleet_etcd_wait  # the election
log "member $leader (the leader) killed: writes taken again after $((($(date +%s%N) - t0) / 1000000)) ms"
fleet_policy "$SG_TMP/p3.json" ${HB} ${HB}v2 12
fleetctl fleet policy apply "$SG_TMP/p3.json" --wait 30 >/dev/null || fail "apply with the leader dead"
serial=$(fleetctl fleet status --json | json serial)
for h in ${HA} ${HB} ${HC}; do fleet_wait_serial "$h" "$serial" 30; done
assert_eq "$(fctl ${HC} vm show solo | json limits.rate)" 12 "the new default rate on host c"
fleet_etcd_start "$leader"

log "every etcd member killed: enforcement unchanged, a reputation change queued and written later"
for i in 0 1 2; do fleet_etcd_kill "$i"; done
before=$("$SG_SRC/deploy/testbed.sh" --prefix ${HB} syncount)
sg_flood --netns ${HB}-vm2 syn --dst "$inet" --rate 200 --count 50 --json >/dev/null
sleep 0.5
assert_eq "$(( $("$SG_SRC/deploy/testbed.sh" --prefix ${HB} syncount) - before ))" 0 "mover's SYNs through while etcd is down"
assert_eq "$(fctl ${HB} vm show mover | json tier)" blocked "mover's tier while etcd is down"
fctl ${HC} report complaint solo --count 3 >/dev/null  # 600: throttled on its own
fleet_wait_tier ${HC} solo throttled 10
sleep 1
for i in 0 1 2; do fleet_etcd_start "$i"; done
fleet_etcd_wait
for ((i = 0; i < 300; i++)); do
    [[ $(fleet_etcdctl get --print-value-only "$FLEET_PREFIX/tenants/other/vms/solo" 2>/dev/null | json tier 2>/dev/null) == throttled ]] && break
    sleep 0.1
done
((i < 300)) || fail "solo's record was not written after etcd came back"
log "solo's queued record written after etcd came back"
for h in ${HA} ${HB} ${HC}; do
    kill -0 "$(cat "$SG_TMP/$h/pid")" || fail "smtpgovd of $h died"
done
