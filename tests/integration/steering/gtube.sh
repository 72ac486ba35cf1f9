#!/usr/bin/env bash
# Spam through the scanning proxy (issue 9): a steered VM's GTUBE message is refused
# in-session by rspamd (swaks sees a 5xx, the internet never gets it); rspamd's verdict
# reaches smtpgovd's policy service by client ADDR:PORT (deploy/proxy/verdicts.py) and
# raises the VM's score; repeated GTUBE takes the VM to `blocked`, after which its SYNs
# are refused (reset). A bystander VM is untouched.
source "$(dirname "$(readlink -f "$0")")/common.sh"
st_testbed sgcgt 2
# one operator spam report (50) takes "spammer" to steered (20); each proxy verdict adds
# a spam report's weight; blocked at 200
st_policy "$SG_TMP/policy.json" "[$(st_vm spammer 1), $(st_vm bystander 2)]" \
    '"reputation": {"half_life_s": 3600, "min_dwell_s": 1, "hysteresis": 0.5,
                    "thresholds": {"throttled": 10, "steered": 20, "blocked": 200},
                    "weights": {"spam_report": 50}}'
st_proxy_start
st_daemon "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sink=${SG_INET_V4[0]}

sgctl report spam spammer --count 1 >/dev/null || fail "report spam spammer failed"
sgd_wait_tier spammer steered 10 || fail "one spam report did not steer the VM: $(sg_vm spammer)"
score0=$(json score <<<"$(sg_vm spammer)")
log "spammer steered, score $score0"

# a clean message first: the proxy relays it (the VM is really steered)
out=$(st_swaks "$SG_VM1_NS" "$sink" --header "Message-Id: <gt-clean@customer.example>") ||
    { echo "$out" >&2; fail "the steered VM's clean message failed"; }
client=$(st_wait_relayed gt-clean 30) || fail "the clean message never reached the sink"
assert_eq "$client" "$SG_EGRESS_V4" "the sink's client for the clean steered message"

# GTUBE: refused in-session
gtube() { # gtube N: one GTUBE message; prints swaks' transcript, fails unless 5xx at DATA
    local out
    out=$(st_swaks "$SG_VM1_NS" "$sink" --header "Message-Id: <gt-spam-$1@customer.example>" \
        --body "a steered VM sends spam $ST_GTUBE") && { echo "$out" >&2; fail "GTUBE message $1 was accepted"; }
    grep -qE '^<\*\* +5[0-9][0-9] ' <<<"$out" || { echo "$out" >&2; fail "GTUBE message $1: no 5xx"; }
    log "GTUBE $1: $(grep -E '^<\*\*' <<<"$out" | head -1)"
}
gtube 1
st_proxy_log | grep -q "milter-reject: END-OF-MESSAGE from unknown\[$SG_VM1_V4\].*Gtube" ||
    fail "the proxy's log has no rspamd rejection of the VM's GTUBE message"

# the verdict raises the score (the report goes out asynchronously: wait for it)
end=$((SECONDS + 15))
while :; do
    score1=$(json score <<<"$(sg_vm spammer)")
    python3 -c "import sys; sys.exit(0 if $score1 > $score0 else 1)" && break
    ((SECONDS < end)) || { cat "$ST_STATE/verdicts.log" >&2; fail "the GTUBE verdict did not raise the score ($score0 -> $score1)"; }
    sleep 0.2
done
log "score after one GTUBE: $score0 -> $score1"
grep -q "reject (Gtube pattern)" "$ST_STATE/verdicts.log" || fail "verdicts.log does not show the report"
log "reporter: $(grep 'Gtube' "$ST_STATE/verdicts.log" | tail -1)"

# repeated GTUBE: blocked
for n in 2 3 4 5 6; do
    [[ $(json tier <<<"$(sg_vm spammer)") == blocked ]] && break
    gtube "$n"
    sleep 0.5
done
sgd_wait_tier spammer blocked 15 || fail "repeated GTUBE did not block the VM: $(sg_vm spammer)"
log "spammer: $(sg_vm spammer | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["tier"], "score", round(v["score"]), "syn", v["syn"])')"
[[ -z $(st_sink_client_of gt-spam) ]] || fail "a GTUBE message reached the sink"

# blocked: its SYNs are reset, swaks fails at connect
out=$(st_swaks "$SG_VM1_NS" "$sink" --header "Message-Id: <gt-blocked@customer.example>") &&
    fail "the blocked VM still sent mail"
grep -qiE "connection refused|connect.*(fail|refused)" <<<"$out" || { echo "$out" >&2; fail "the blocked VM's connection was not refused"; }
vm=$(sg_vm_wait spammer syn.block 1 5)
assert_ge "$(json syn.block <<<"$vm")" 1 "spammer SYNs blocked"

by=$(sg_vm bystander)
assert_eq "$(json tier <<<"$by")" ok "bystander tier"
assert_eq "$(json score <<<"$by")" 0 "bystander score"

sg_daemon_stop
st_proxy_stop
sg_testbed down
sg_assert_clean
