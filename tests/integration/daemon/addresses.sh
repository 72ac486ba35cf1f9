#!/usr/bin/env bash
# Address history and ARF complaints with a real smtpgovd (issue 13, host-local half).
# The state dir starts with a history in which VM "a" has held 203.0.113.10 (X) and
# 203.0.113.20 (Y) for 200 days; a policy change moves X to VM "b". Then:
#  - an ARF report about X dated 10 days ago counts against a (score and complaints
#    rise), b is untouched, and `ip check X` exits 3 (tainted);
#  - a report about Y dated 150 days ago counts against a, yet `ip check Y` exits 0
#    (outside address_taint_days = 90), and 3 once the daemon is restarted with 200;
#  - a report without Source-IP/Arrival-Date is attributed by its Received header;
#  - a report for an address nobody held then exits 1, a non-ARF message exits 2;
#  - the history and complaints survive a restart.
# No testbed: the daemon runs in a namespace of its own (sgaddr-hv) on one veth.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init sgaddr
sgd_lone_ns sgav

X=203.0.113.10 Y=203.0.113.20 B0=198.51.100.5
now=$(date +%s)
day=86400

policy() {  # policy FILE A_ADDRS B_ADDRS
    cat >"$1" <<JSON
{"reputation": {"half_life_s": 600},
 "vms": [{"id": "a", "tenant": "acme", "addresses": $2},
         {"id": "b", "tenant": "beta", "addresses": $3}]}
JSON
}

# arf FILE SOURCE_IP ARRIVAL_UNIX: an RFC 5965 report ("-" for either leaves the field
# out; the original message's Received header names SOURCE and the date either way)
arf() {
    python3 - "$@" <<'PY'
import sys, email.utils
path, src, t = sys.argv[1], sys.argv[2], int(sys.argv[3])
date = email.utils.formatdate(t, usegmt=True)
fb = "Feedback-Type: abuse\nUser-Agent: sgaddr-test/1\nVersion: 1\nReporting-MTA: dns; fbl.isp.example\n"
if src != "-" and "nosource" not in path:
    fb += f"Source-IP: {src}\n"
if "nosource" not in path:
    fb += f"Arrival-Date: {date}\n"
open(path, "w").write(f"""From: fbl@isp.example
To: fbl@hoster.example
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

A user said this is spam.
--B
Content-Type: message/feedback-report

{fb}--B
Content-Type: message/rfc822

Received: from vm.hoster.example (vm.hoster.example [{src}])
\tby mx.isp.example with ESMTP; {date}
From: x@vm.hoster.example
Subject: offer

buy
--B--
""")
PY
}

# ctl_rc ARGS...: smtpgovctl's exit status (stdout to $SG_TMP/out, stderr to $SG_TMP/err)
ctl_rc() {
    local rc=0
    sgctl "$@" >"$SG_TMP/out" 2>"$SG_TMP/err" || rc=$?
    echo "$rc"
}

# the history of a daemon that has run for 200 days: a has held X and Y since then
mkdir -p "$SG_TMP/state"
cat >"$SG_TMP/state/address_history.json" <<JSON
{"version": 1, "complaints": [], "holdings": [
  {"prefix": "$X", "vm": "a", "tenant": "acme", "from_unix": $((now - 200 * day)), "to_unix": null},
  {"prefix": "$Y", "vm": "a", "tenant": "acme", "from_unix": $((now - 200 * day)), "to_unix": null},
  {"prefix": "$B0", "vm": "b", "tenant": "beta", "from_unix": $((now - 200 * day)), "to_unix": null}]}
JSON
policy "$SG_TMP/p1.json" "[\"$X\", \"$Y\"]" "[\"$B0\"]"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/p1.json" sgav0
sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_listen '""'
sg_daemon_start "$SG_TMP/smtpgovd.json"

policy "$SG_TMP/p2.json" "[\"$Y\"]" "[\"$B0\", \"$X\"]"
sgctl policy apply "$SG_TMP/p2.json" >/dev/null
moved=$(date +%s)
show=$(sgctl ip show $X)
log "ip show $X: $show"
assert_eq "$(json holder.vm <<<"$show")" b "holder of $X now"
assert_eq "$(json history.0.vm <<<"$show")" a "first holder of $X"
assert_eq "$(json history.0.from_unix <<<"$show")" $((now - 200 * day)) "a held $X from"
assert_le "$(json history.0.to_unix <<<"$show")" "$moved" "a held $X until the move"
assert_eq "$(json history.1.tenant <<<"$show")" beta "tenant of the second holder"
assert_eq "$(ctl_rc ip check $X)" 0 "ip check $X before any complaint"

# a complaint about X dated while a held it counts against a, not b
arf "$SG_TMP/x.eml" $X $((now - 10 * day))
assert_eq "$(ctl_rc report arf "$SG_TMP/x.eml")" 0 "report arf about $X (10 days ago)"
log "report arf: $(cat "$SG_TMP/out")"
assert_eq "$(json attributed.vm <"$SG_TMP/out")" a "the report is attributed to"
a=$(sg_vm a) b=$(sg_vm b)
python3 -c "import sys; assert float(sys.argv[1]) > 0" "$(json score <<<"$a")" || fail "a's score did not rise"
log "ok: a's score = $(json score <<<"$a")"
assert_eq "$(json complaints <<<"$a")" 1 "complaints against a"
assert_eq "$(json score <<<"$b")" 0 "b's score"
assert_eq "$(json complaints <<<"$b")" 0 "complaints against b"
assert_eq "$(ctl_rc ip check $X)" 3 "ip check $X after the complaint (tainted)"
assert_eq "$(json tainted <"$SG_TMP/out")" True "ip check --json tainted"

# dated 150 days ago: counted against a, outside the 90-day taint window
arf "$SG_TMP/y.eml" $Y $((now - 150 * day))
assert_eq "$(ctl_rc report arf - <"$SG_TMP/y.eml")" 0 "report arf about $Y (150 days ago, stdin)"
assert_eq "$(json attributed.vm <"$SG_TMP/out")" a "the old report is attributed to"
assert_eq "$(ctl_rc ip check $Y)" 0 "ip check $Y with a complaint 150 days old (clean)"
assert_eq "$(json complaints.0.arrival_unix <<<"$(sgctl ip show $Y)")" $((now - 150 * day)) "ip show $Y lists the old complaint"

# no Source-IP, no Arrival-Date: the Received header names X, 5 days ago (a held it)
arf "$SG_TMP/nosource.eml" $X $((now - 5 * day))
assert_eq "$(ctl_rc report arf "$SG_TMP/nosource.eml")" 0 "report arf without Source-IP/Arrival-Date"
assert_eq "$(json attributed.vm <"$SG_TMP/out")" a "the Received fallback is attributed to"
assert_eq "$(json complaints <<<"$(sg_vm a)")" 3 "complaints against a"

# nobody held the address then: exit 1 with a reason; nothing counted
arf "$SG_TMP/nobody.eml" 192.0.2.99 $((now - day))
assert_eq "$(ctl_rc report arf "$SG_TMP/nobody.eml")" 1 "report arf for an address nobody held"
grep -q "no VM held 192.0.2.99" "$SG_TMP/err" || fail "no reason given: $(cat "$SG_TMP/err")"
arf "$SG_TMP/before.eml" $X $((now - 300 * day))
assert_eq "$(ctl_rc report arf "$SG_TMP/before.eml")" 1 "report arf about $X before anyone held it"
# not an ARF report: exit 2
assert_eq "$(ctl_rc report arf "$SG_SRC/tests/data/arf/not_arf.eml")" 2 "report arf of a plain message"
assert_eq "$(ctl_rc report arf - <"$SG_SRC/tests/data/arf/dsn_bounce.eml")" 2 "report arf of a bounce (stdin)"
grep -q "not an ARF report" "$SG_TMP/err" || fail "no reason given: $(cat "$SG_TMP/err")"
assert_eq "$(json complaints <<<"$(sg_vm a)")" 3 "complaints against a after the refusals"
assert_eq "$(json score <<<"$(sg_vm b)")" 0 "b's score after everything"

# smtpgov-fbl-deliver (deploy/fbl) with fbl.conf naming who may report: a report our
# MTA's DKIM check did not vouch for (none at all, or a pass for a domain that is no
# reporter) is kept for people and not counted; the same report vouched for counts.
printf 'FBL_AUTHSERV_ID=mx.hoster.example\nFBL_REPORTERS=isp.example\n' >"$SG_TMP/fbl.conf"
deliver() {  # deliver [AUTHENTICATION-RESULTS VALUE] < REPORT: the script's exit status
    local rc=0
    { [[ -z ${1:-} ]] || echo "Authentication-Results: $1"; cat; } |
        FBL_CONF="$SG_TMP/fbl.conf" FBL_KEEP="$SG_TMP/keep" SMTPGOVCTL="$SG_BIN/smtpgovctl --socket $SG_SOCKET" \
            "$SG_SRC/deploy/fbl/smtpgov-fbl-deliver" 2>>"$SG_TMP/deliver.err" || rc=$?
    echo "$rc"
}
arf "$SG_TMP/fbl.eml" $X $((now - 4 * day))
assert_eq "$(deliver <"$SG_TMP/fbl.eml")" 0 "smtpgov-fbl-deliver of an unsigned report"
assert_eq "$(deliver "mx.hoster.example; dkim=pass header.d=attacker.example" <"$SG_TMP/fbl.eml")" 0 \
    "smtpgov-fbl-deliver of a report signed by no reporter"
assert_eq "$(deliver "mx.attacker.example; dkim=pass header.d=isp.example" <"$SG_TMP/fbl.eml")" 0 \
    "smtpgov-fbl-deliver of a report vouched for by another MTA"
assert_eq "$(find "$SG_TMP/keep/new" -type f | wc -l)" 3 "untrusted reports kept for people"
assert_eq "$(json complaints <<<"$(sg_vm a)")" 3 "complaints against a after three untrusted reports"
assert_eq "$(deliver "mx.hoster.example; dkim=pass (good) header.d=fbl.isp.example" <"$SG_TMP/fbl.eml")" 0 \
    "smtpgov-fbl-deliver of a report our MTA vouched for"
assert_eq "$(json complaints <<<"$(sg_vm a)")" 4 "complaints against a after it"
assert_eq "$(find "$SG_TMP/keep/new" -type f | wc -l)" 3 "reports kept for people after it"

# a restart keeps history and complaints; address_taint_days is the daemon's
sg_daemon_stop
sgd_set_config "$SG_TMP/smtpgovd.json" address_taint_days 200
sg_daemon_start "$SG_TMP/smtpgovd.json"
show=$(sgctl ip show $X)
assert_eq "$(json holder.vm <<<"$show")" b "holder of $X after the restart"
assert_eq "$(json history.0.vm <<<"$show")" a "first holder of $X after the restart"
assert_eq "$(ctl_rc ip check $X)" 3 "ip check $X after the restart"
assert_eq "$(ctl_rc ip check $Y)" 3 "ip check $Y with address_taint_days 200"
assert_eq "$(ctl_rc ip check $B0)" 0 "ip check $B0 (never complained about)"
assert_eq "$(json complaints <<<"$(sg_vm a)")" 4 "complaints against a after the restart"
# the daemon gone: ip check cannot answer (1, not clean)
sg_daemon_stop
assert_eq "$(ctl_rc ip check $X)" 1 "ip check without a daemon"

sg_testbed down >/dev/null
ip netns del "$SG_PREFIX-hv" 2>/dev/null || true
sg_assert_clean
