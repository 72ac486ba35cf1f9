#!/usr/bin/env bash
# DNSBL monitoring with a real smtpgovd and a real rbldnsd (issue 13). Both run in one
# namespace (sgdb-hv); rbldnsd serves the zone sgdb.test on 127.0.0.1:5353 and smtpgovd
# looks up every governed address there every 2 s:
#   VM a holds X, VM b holds Y, the proxy's quarantine egress is Q (listed from the start).
#  - first round: X and Y clean; Q listed: a quarantine listing, charging nobody;
#  - X listed (with a TXT reason) in the zone: within two intervals a's score rises, an
#    event and a ticket name the zone and the reason, the metric counts one VM address,
#    ip show / vm show list it, ip check X exits 3; b is untouched;
#  - a restart charges nothing twice;
#  - X delisted: a dnsbl_delisted event, the metric drops to 0, ip check X still exits 3
#    (listed within address_taint_days).
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init sgdb
sgd_lone_ns sgdbv

X=203.0.113.10 Y=203.0.113.20 Q=198.51.100.25 ZONE=sgdb.test
REASON="sgdb test listing: spam seen from"

# the zone, served by rbldnsd as user rbldns: a directory it can read
ZDIR=$SG_TMP/zone
mkdir -p "$ZDIR"
chmod 711 "$SG_TMP"
chmod 755 "$ZDIR"
zone() {  # zone ADDR...: the listed addresses (A 127.0.0.2, TXT "$REASON <addr>"), and RFC 5782's 127.0.0.2
    {
        echo '$SOA 1 ns.sgdb.test hostmaster.sgdb.test 0 60 60 600 1'
        echo "\$TTL 1"
        echo ":127.0.0.2:$REASON \$"
        printf '%s\n' 127.0.0.2 "$@"
    } >"$ZDIR/zone.tmp"
    chmod 644 "$ZDIR/zone.tmp"
    mv "$ZDIR/zone.tmp" "$ZDIR/zone"
    # rbldnsd reloads a file whose mtime changed; a HUP makes it look at once
    touch -d "@$(($(date +%s) + ${ZONE_GEN:=1}))" "$ZDIR/zone"
    ZONE_GEN=$((ZONE_GEN + 1))
    [[ -n ${RBL_PID:-} ]] && kill -HUP "$RBL_PID"
    return 0
}
zone $Q
nsenter --net="/run/netns/$NS" rbldnsd -n -q -b 127.0.0.1/5353 -c 1 -w "$ZDIR" "$ZONE:ip4set:zone" \
    >"$SG_TMP/rbldnsd.log" 2>&1 &
RBL_PID=$!
sg_on_exit 'kill $RBL_PID 2>/dev/null'
sleep 0.3
kill -0 $RBL_PID 2>/dev/null || { cat "$SG_TMP/rbldnsd.log" >&2; fail "rbldnsd did not start"; }

cat >"$SG_TMP/policy.json" <<JSON
{"reputation": {"half_life_s": 3600},
 "proxy": {"address": ["192.0.2.10:25"], "egress": ["$Q"]},
 "vms": [{"id": "a", "tenant": "acme", "addresses": ["$X"]},
         {"id": "b", "tenant": "beta", "addresses": ["$Y"]}]}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" sgdbv0
sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_listen '""'
sgd_set_config "$SG_TMP/smtpgovd.json" dnsbl "{\"zones\": [\"$ZONE\"], \"resolver\": \"127.0.0.1:5353\", \"interval_s\": 2}"

metrics() { nsenter --net="/run/netns/$NS" curl -sf "http://$SG_METRICS/metrics"; }
metric() {  # metric NAME_WITH_LABELS: its value, 0 when absent
    metrics | awk -v m="$1" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'
}
# events TYPE [FIELD=VALUE of the evidence]: how many events of that type events.jsonl holds
events() {
    python3 - "$SG_TMP/state/events.jsonl" "$@" <<'PY'
import json, sys
path, typ = sys.argv[1], sys.argv[2]
want = dict(a.split("=", 1) for a in sys.argv[3:])
n = 0
for line in open(path):
    e = json.loads(line)
    if e["type"] == typ and all(str(e["evidence"].get(k)) == v for k, v in want.items()):
        n += 1
print(n)
PY
}
wait_for() {  # wait_for SECONDS WHAT 'COMMAND': until the command (evaluated anew) succeeds
    local t=$1 what=$2 cond=$3 i
    for ((i = 0; i < t * 10; i++)); do
        eval "$cond" && { log "ok: $what (after $((i / 10)).$((i % 10)) s)"; return 0; }
        sleep 0.1
    done
    fail "$what: not within $t s"
}
score() { json score <<<"$(sg_vm "$1")"; }
ctl_rc() { local rc=0; sgctl "$@" >"$SG_TMP/out" 2>"$SG_TMP/err" || rc=$?; echo "$rc"; }
gt0() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$1"; }
LISTED_VM="smtpgov_dnsbl_listed_addresses{holder=\"vm\",zone=\"$ZONE\"}"
LISTED_Q="smtpgov_dnsbl_listed_addresses{holder=\"quarantine\",zone=\"$ZONE\"}"

t0=$(date +%s.%N)
sg_daemon_start "$SG_TMP/smtpgovd.json"
# first round: X and Y looked up clean, Q listed as quarantine
# (each zone's RFC 5782 test entries are looked up too: 127.0.0.1 clean, 127.0.0.2 listed)
wait_for 5 "X, Y and 127.0.0.1 looked up clean" '(($(metric "smtpgov_dnsbl_queries_total{result=\"not_listed\"}") >= 3))'
wait_for 5 "the quarantine egress listed" '[[ $(metric "$LISTED_Q") == 1 ]]'
assert_eq "$(events dnsbl_listed holder=quarantine address=$Q)" 1 "dnsbl_listed events of the quarantine egress"
assert_eq "$(events ticket address=$Q)" 0 "tickets for the quarantine egress (a listing there is expected)"
assert_eq "$(metric "$LISTED_VM")" 0 "VM addresses listed"
assert_eq "$(score a)" 0 "a's score before any listing"

# X listed: a is charged, within two intervals (4 s) of the zone's reload
zone $Q $X
listed_at=$(date +%s.%N)
wait_for 5 "a's score rises" 'gt0 "$(score a)"'
log "a charged $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$listed_at" "$(date +%s.%N)") s after the zone listed X"
assert_eq "$(events dnsbl_listed address=$X zone=$ZONE holder=vm charged=True)" 1 "dnsbl_listed events for X (charged)"
assert_eq "$(events ticket address=$X zone=$ZONE "reason=$REASON $X")" 1 "tickets naming the zone and the reason"
assert_eq "$(metric "$LISTED_VM")" 1 "VM addresses listed in $ZONE"
assert_eq "$(score b)" 0 "b's score"
assert_eq "$(json dnsbl.0.zone <<<"$(sg_vm a)")" "$ZONE" "vm show a: listed zone"
assert_eq "$(json dnsbl.0.reason <<<"$(sg_vm a)")" "$REASON $X" "vm show a: reason"
assert_eq "$(json dnsbl <<<"$(sg_vm b)")" "[]" "vm show b: listings"
assert_eq "$(ctl_rc ip check $X)" 3 "ip check $X (listed now)"
assert_eq "$(ctl_rc ip check $Y)" 0 "ip check $Y (never listed)"
show=$(sgctl ip show $X)
assert_eq "$(json dnsbl.0.charged <<<"$show")" True "ip show $X: charged"
"$SG_BIN/smtpgovctl" --socket "$SG_SOCKET" ip show $X | grep -q "$ZONE.*listed now.*vm:a.*yes" ||
    fail "ip show $X (text) has no listing row"
charged=$(score a)

# a restart: the listing is known, nothing is charged twice
sg_daemon_stop
sg_daemon_start "$SG_TMP/smtpgovd.json"
wait_for 6 "X, Q and 127.0.0.2 looked up again after the restart" \
    '(($(metric "smtpgov_dnsbl_queries_total{result=\"listed\"}") >= 3))'
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$(score a)" "$charged" ||
    fail "a charged again after the restart: $(score a) > $charged"
assert_eq "$(events dnsbl_listed address=$X)" 1 "dnsbl_listed events for X after the restart"
assert_eq "$(metric "$LISTED_VM")" 1 "VM addresses listed after the restart"

# X delisted: an event, the metric drops, the address stays tainted for taint_days
zone $Q
wait_for 6 "X delisted" '[[ $(events dnsbl_delisted address=$X) == 1 ]]'
wait_for 2 "the metric drops" '[[ $(metric "$LISTED_VM") == 0 ]]'
assert_eq "$(metric "$LISTED_Q")" 1 "quarantine addresses listed"
assert_eq "$(ctl_rc ip check $X)" 3 "ip check $X (listed within address_taint_days)"
grep -q "was listed in $ZONE" "$SG_TMP/out" || fail "ip check gives no reason: $(cat "$SG_TMP/out")"
log "took $(python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$t0") s"

sg_daemon_stop
kill $RBL_PID 2>/dev/null
wait $RBL_PID 2>/dev/null || true
! pgrep -f "rbldnsd.*$ZDIR" >/dev/null || fail "rbldnsd left running"
sg_testbed down >/dev/null
ip netns del "$NS" 2>/dev/null || true
sg_assert_clean
