#!/usr/bin/env bash
# DNSBL lookups through a faulty resolver (issue 13): a scriptable DNS responder
# (dns_responder.py, UDP and TCP) on 127.0.0.1:5354 in the namespace sgdbf-hv. VM a holds
# X, VM b holds Y; X is listed (and charged) first, then every fault in turn:
#   servfail, truncated (TC bit over UDP: c-ares asks again over TCP, which is closed
#   unanswered), list_refuses (127.255.255.254), outside (198.51.100.80), world (every
#   name listed, RFC 5782's 127.0.0.1 too), timeout (no answer), resolver down (nothing
#   listening).
# During each: the fault is really seen (the responder's log, the query metric), no false
# delisting of X, no false listing of Y, no charge, and the control socket keeps
# answering (`smtpgovctl status` every 0.2 s, each within c-ares' 2 s per try: a status
# that waited on a lookup would take that long). Afterwards the listing
# path still works: X is delisted when the responder says NXDOMAIN again.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init sgdbf
sgd_lone_ns sgdbfv

X=203.0.113.10 Y=203.0.113.20 ZONE=sgdbf.test
CONTROL=$SG_TMP/dns-control.json QLOG=$SG_TMP/dns-queries.log
mode() {  # mode MODE [LISTED...]
    local listed
    listed=$(printf '"%s",' "${@:2}")
    echo "{\"mode\": \"$1\", \"listed\": [${listed%,}]}" >"$CONTROL.tmp"
    mv "$CONTROL.tmp" "$CONTROL"
}
responder_start() {
    nsenter --net="/run/netns/$NS" python3 "$SG_SRC/tests/integration/daemon/dns_responder.py" \
        127.0.0.1 5354 "$CONTROL" "$QLOG" &
    DNS_PID=$!
    sleep 0.3
}
responder_stop() { kill "$DNS_PID" 2>/dev/null; wait "$DNS_PID" 2>/dev/null || true; }
sg_on_exit 'responder_stop'
: >"$QLOG"
mode normal
responder_start

cat >"$SG_TMP/policy.json" <<JSON
{"reputation": {"half_life_s": 3600},
 "vms": [{"id": "a", "tenant": "acme", "addresses": ["$X"]},
         {"id": "b", "tenant": "beta", "addresses": ["$Y"]}]}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" sgdbfv0
sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_listen '""'
sgd_set_config "$SG_TMP/smtpgovd.json" dnsbl "{\"zones\": [\"$ZONE\"], \"resolver\": \"127.0.0.1:5354\", \"interval_s\": 2}"

metric() {  # metric NAME_WITH_LABELS: its value (an integer), 0 when absent
    nsenter --net="/run/netns/$NS" curl -sf "http://$SG_METRICS/metrics" |
        awk -v m="$1" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'
}
queries() { metric "smtpgov_dnsbl_queries_total{result=\"$1\"}"; }
events() {  # events TYPE ADDRESS: how many such events events.jsonl holds
    python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) for e in [json.loads(l)]
          if e["type"] == sys.argv[2] and e["evidence"].get("address") == sys.argv[3]))' \
        "$SG_TMP/state/events.jsonl" "$1" "$2"
}
score() { json score <<<"$(sg_vm "$1")"; }
# responsive: smtpgovctl status answers in less than one c-ares try (2 s), so it did not
# wait on a lookup (fails the test otherwise)
responsive() {
    local t0 ms
    t0=$(date +%s%N)
    sgctl status >/dev/null || fail "smtpgovctl status failed"
    ms=$((($(date +%s%N) - t0) / 1000000))
    ((ms < 2000)) || fail "smtpgovctl status took $ms ms: as long as a DNS try"
    ((ms > SLOWEST)) && SLOWEST=$ms
    return 0
}
SLOWEST=0
# until 'COND' holds, checking the control socket every 0.2 s meanwhile
wait_for() {  # wait_for SECONDS WHAT 'COND'
    local t=$1 what=$2 cond=$3 i
    for ((i = 0; i < t * 5; i++)); do
        responsive
        eval "$cond" && { log "ok: $what (after $((i / 5)).$((i % 5 * 2)) s)"; return 0; }
        sleep 0.2
    done
    nsenter --net="/run/netns/$NS" curl -sf "http://$SG_METRICS/metrics" | grep '^smtpgov_dnsbl' >&2 || true
    tail -5 "$QLOG" >&2
    grep dnsbl "$SG_TMP/smtpgovd.log" | tail -5 >&2
    fail "$what: not within $t s"
}
LISTED_VM="smtpgov_dnsbl_listed_addresses{holder=\"vm\",zone=\"$ZONE\"}"

t0=$(date +%s)
sg_daemon_start "$SG_TMP/smtpgovd.json"
wait_for 6 "X, Y and 127.0.0.1 looked up clean" '(($(queries not_listed) >= 3))'
mode normal $X
wait_for 6 "X listed and charged" '[[ $(events dnsbl_listed $X) == 1 ]]'
charged=$(score a)
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$charged" || fail "a not charged"
assert_eq "$(metric "$LISTED_VM")" 1 "VM addresses listed"

# every fault: seen by the daemon, and nothing changes
check_unchanged() {  # check_unchanged FAULT
    assert_eq "$(events dnsbl_delisted $X)" 0 "$1: delistings of X"
    assert_eq "$(events dnsbl_listed $Y)" 0 "$1: listings of Y"
    assert_eq "$(events dnsbl_listed $X)" 1 "$1: listings of X"
    assert_eq "$(metric "$LISTED_VM")" 1 "$1: VM addresses listed"
    assert_eq "$(score b)" 0 "$1: b's score"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$(score a)" "$charged" ||
        fail "$1: a charged again"
    local rc=0
    sgctl ip check $Y >/dev/null || rc=$?
    assert_eq "$rc" 0 "$1: ip check $Y"
}
# answers counted under any of these results (LABEL[+LABEL...])
results() { local l n=0; for l in ${1//+/ }; do n=$((n + $(queries "$l"))); done; echo $n; }
fault() {  # fault MODE RESULTS SECONDS: both addresses answered with MODE, counted under RESULTS
    local m=$1 label=$2 t=$3 before
    before=$(results "$label")
    mode "$m"
    wait_for "$t" "$m: X and Y both got it" \
        "[[ \$(grep -c '^$m udp 1 10.113.0.203' \"$QLOG\") -ge 1 && \$(grep -c '^$m udp 1 20.113.0.203' \"$QLOG\") -ge 1 ]]"
    wait_for "$t" "$m: counted as $label" "(( \$(results $label) >= before + 2 ))"
    check_unchanged "$m"
}
# c-ares tries a SERVFAIL again, then (1.18) reports the server as refusing: unreachable
fault servfail servfail+unreachable 8
fault truncated unreachable+timeout 14
grep -q '^truncated tcp 1 10.113.0.203' "$QLOG" || fail "truncated: c-ares did not retry over TCP"
log "ok: truncated UDP answers were retried over TCP"
fault list_refuses list_refuses 8
grep -q "the list refuses this resolver" "$SG_TMP/smtpgovd.log" || fail "list_refuses: not logged plainly"
assert_eq "$(grep -c 'the list refuses this resolver' "$SG_TMP/smtpgovd.log")" 1 "list_refuses: logged once"
fault outside outside_127 8
# a zone that lists the world (127.0.0.1 too, RFC 5782): no listing believed
fault world lists_the_world 8
grep -q '^world udp 1 1.0.0.127' "$QLOG" || fail "world: the zone's 127.0.0.1 was not asked"
# X's and Y's answers are refused at once (each listing asks 127.0.0.1 beside it); the
# zone itself is judged, and logged, when its scheduled 127.0.0.1 lookup answers
wait_for 6 "world: logged" 'grep -q "lists its test entry 127.0.0.1" "$SG_TMP/smtpgovd.log"'
# last before the resolver goes down: lookups still timing out then count as timeout
fault timeout timeout 20

# the resolver down: nothing listens (ICMP port unreachable)
responder_stop
before=$(queries unreachable)
wait_for 12 "resolver down: lookups fail" "(( \$(queries unreachable) >= before + 2 ))"
check_unchanged down

# back: still listed (nothing announced), then a real delisting comes through
mode normal $X
before=$(grep -c '^normal udp 1 10.113.0.203' "$QLOG")
responder_start
wait_for 8 "resolver back: X answered listed" "(( \$(grep -c '^normal udp 1 10.113.0.203' \"$QLOG\") > before ))"
sleep 0.5
check_unchanged back
mode normal
wait_for 8 "X delisted" '[[ $(events dnsbl_delisted $X) == 1 ]]'
assert_eq "$(metric "$LISTED_VM")" 0 "VM addresses listed after the delisting"
log "slowest smtpgovctl status: $SLOWEST ms; took $(($(date +%s) - t0)) s"

sg_daemon_stop
responder_stop
sg_testbed down >/dev/null
ip netns del "$NS" 2>/dev/null || true
sg_assert_clean
