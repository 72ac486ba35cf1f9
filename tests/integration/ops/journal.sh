#!/usr/bin/env bash
# smtpgovd's structured journal entries, as the real daemon sends them. The test runs in
# a private mount namespace with a tmpfs on /run, where no journald runs and the host's
# /run is untouched; journal_receiver.py listens on /run/systemd/journal/socket and
# parses the native protocol (plain, binary-safe and memfd forms).
#   - log_target journal: a tier change of vm-101 (smtpgovctl vm set-tier) arrives as a
#     tier_change and a ticket entry with exactly the documented fields; start, stop, an
#     applied and a refused policy have their MESSAGE_IDs; a message with a newline
#     (a damaged state file) arrives whole (binary-safe form); nothing goes to stderr.
#   - log_target auto: the journal when JOURNAL_STREAM names stderr's device:inode,
#     plain lines when it names something else.
#   - log_target stderr: "<N>" prefixed lines on a journal stream, nothing on the socket.
#   - log_target journal with no journal socket: every line still reaches stderr.
set -euo pipefail
if [[ -z ${SG_JOURNAL_NS:-} ]]; then
    exec unshare --mount --propagation private env SG_JOURNAL_NS=1 bash "$(readlink -f "$0")" "$@"
fi
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
sg_init jrnl
here=$(dirname "$(readlink -f "$0")")

mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal
JSOCK=/run/systemd/journal/socket
entries=$SG_TMP/entries.jsonl
: >"$entries"
RECEIVER_PID=""
receiver_start() {
    rm -f "$JSOCK" "$SG_TMP/ready"
    python3 "$here/journal_receiver.py" "$JSOCK" "$entries" "$SG_TMP/ready" &
    RECEIVER_PID=$!
    for ((i = 0; i < 50; i++)); do [[ -e $SG_TMP/ready ]] && return 0; sleep 0.1; done
    fail "journal receiver did not start"
}
receiver_stop() {
    [[ -n $RECEIVER_PID ]] || return 0
    kill "$RECEIVER_PID" 2>/dev/null || true
    wait "$RECEIVER_PID" 2>/dev/null || true
    RECEIVER_PID=""
    rm -f "$JSOCK"
}
sg_on_exit 'receiver_stop'
sg_on_exit '"$SG_BIN/smtpgovd" --bpffs "$SG_BPFFS" --remove >/dev/null 2>&1; rm -rf "$SG_BPFFS"'
sg_on_exit 'sg_daemon_stop'

cat >"$SG_TMP/policy.json" <<'JSON'
{"vms": [{"id": "vm-101", "tenant": "acme", "addresses": ["203.0.113.7/32"]},
         {"id": "vm-102", "tenant": "acme", "addresses": ["203.0.113.8/32"]}]}
JSON
SG_SOCKET=$SG_TMP/ctl.sock
# config TARGET: no interfaces, no TCP listeners (nothing of the host is used)
config() {
    python3 - "$1" "$SG_TMP" "$SG_BPFFS" "$SG_SOCKET" "$SG_BIN/smtpgovd" >"$SG_TMP/smtpgovd.json" <<'PY'
import json, subprocess, sys
target, tmp, bpffs, sock, daemon = sys.argv[1:]
cfg = {"bpffs": bpffs, "state_dir": tmp + "/state", "socket": sock, "metrics_listen": "",
       "policy": tmp + "/policy.json", "log_target": target}
if "--policy-service-listen" in subprocess.run([daemon, "--help"], capture_output=True, text=True).stdout:
    cfg["policy_service_listen"] = ""
print(json.dumps(cfg))
PY
}

# start TARGET [JOURNAL_STREAM]: smtpgovd with stderr to $SG_TMP/stderr.N; "match" makes
# JOURNAL_STREAM name that file's device:inode, as systemd does for a journal stream
run=0
start() {
    local target=$1 stream=${2:-}
    run=$((run + 1))
    STDERR=$SG_TMP/stderr.$run
    : >"$STDERR"
    [[ $stream == match ]] && stream=$(stat -c '%d:%i' "$STDERR")
    config "$target"
    if [[ -n $stream ]]; then
        JOURNAL_STREAM=$stream "$SG_BIN/smtpgovd" --config "$SG_TMP/smtpgovd.json" 2>>"$STDERR" &
    else
        env -u JOURNAL_STREAM "$SG_BIN/smtpgovd" --config "$SG_TMP/smtpgovd.json" 2>>"$STDERR" &
    fi
    SG_DAEMON_PID=$!
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SG_DAEMON_PID" 2>/dev/null || { cat "$STDERR" >&2; fail "smtpgovd exited"; }
        sgctl status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "smtpgovd did not answer within 30 s"
}
stop() {
    kill "$SG_DAEMON_PID"
    wait "$SG_DAEMON_PID" || fail "smtpgovd exited with $?"
    SG_DAEMON_PID=""
}
# wait_entry EVENT [N]: until N entries (default 1) with that SMTPGOV_EVENT arrived
count_entries() {
    python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get("SMTPGOV_EVENT") == sys.argv[2]))' "$entries" "$1"
}
wait_entry() {
    for ((i = 0; i < 50; i++)); do (($(count_entries "$1") >= ${2:-1})) && return 0; sleep 0.1; done
    fail "no $1 entry in the journal within 5 s: $(cat "$entries")"
}

# ---- log_target journal ------------------------------------------------------
receiver_start
start journal
wait_entry daemon_start
sgctl vm set-tier vm-101 blocked >/dev/null
wait_entry ticket
echo '{"vms": [{"id": "bad", "rate": -1}]}' >"$SG_TMP/bad.json"
rc=0; sgctl policy apply "$SG_TMP/bad.json" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of an invalid policy apply"
sgctl policy apply "$SG_TMP/policy.json" >/dev/null
wait_entry policy_refused
wait_entry policy_applied
stop
wait_entry daemon_stop
[[ ! -s $STDERR ]] || fail "log_target journal wrote to stderr: $(cat "$STDERR")"
log "ok: with log_target journal nothing went to stderr"

python3 - "$entries" <<'PY' || fail "the entries are not as documented"
import json, sys
ids = {"daemon_start": "3f8a46eae63940f08b472535cbbb2f1e", "daemon_stop": "33bd9dce318b4b40bd7e81a11cd2ea76",
       "tier_change": "e09964c0351a4dd3923448f014bf1177", "ticket": "69ec82900ec54347a103ed936e0cba5c",
       "policy_applied": "c673214bd17d4ae59cafa699f75261e8", "policy_refused": "68a8e7ae331b48549429bd12ea118324"}
entries = [json.loads(l) for l in open(sys.argv[1])]
bad = [e for e in entries if "_PARSE_ERROR" in e]
assert not bad, bad
for e in entries:
    assert e["SYSLOG_IDENTIFIER"] == "smtpgovd" and e["PRIORITY"] in "34567", e
    if "SMTPGOV_EVENT" in e:
        assert e["MESSAGE_ID"] == ids.get(e["SMTPGOV_EVENT"], e["MESSAGE_ID"]), e
    else:
        assert "MESSAGE_ID" not in e, e
by = {}
for e in entries:
    by.setdefault(e.get("SMTPGOV_EVENT"), []).append(e)
vm_fields = {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE_ID", "SMTPGOV_EVENT", "SMTPGOV_VM",
             "SMTPGOV_TENANT", "SMTPGOV_TIER", "SMTPGOV_FROM_TIER", "SMTPGOV_REASON", "SMTPGOV_SCORE",
             "_TRANSPORT_FORM"}
(change,) = [e for e in by["tier_change"] if e["SMTPGOV_VM"] == "vm-101"]
assert set(change) == vm_fields, sorted(change)
assert (change["PRIORITY"], change["SMTPGOV_TENANT"], change["SMTPGOV_TIER"], change["SMTPGOV_FROM_TIER"],
        change["SMTPGOV_SCORE"]) == ("5", "acme", "blocked", "ok", "0"), change
expect = "vm vm-101: ok -> blocked (%s, score 0)" % change["SMTPGOV_REASON"]
assert change["MESSAGE"] == expect, (change["MESSAGE"], expect)
(ticket,) = by["ticket"]
assert set(ticket) == vm_fields | {"SMTPGOV_BLOCKLISTS"}, sorted(ticket)
assert (ticket["SMTPGOV_VM"], ticket["SMTPGOV_TENANT"], ticket["SMTPGOV_TIER"], ticket["PRIORITY"]) == \
    ("vm-101", "acme", "blocked", "5"), ticket
assert ticket["MESSAGE"].startswith("ticket: vm vm-101 ok -> blocked ("), ticket
for kind in ("daemon_start", "daemon_stop", "policy_applied", "policy_refused"):
    (e,) = by[kind]
    assert not any(k.startswith("SMTPGOV_V") for k in e), e
assert by["policy_refused"][0]["PRIORITY"] == "4", by["policy_refused"]
assert by["daemon_start"][0]["MESSAGE"].startswith("ready: 2 VMs"), by["daemon_start"]
print("tier_change:", json.dumps(change, sort_keys=True))
PY
log "ok: tier_change and ticket of vm-101 with exactly the documented fields; start, stop, policy applied and refused"

# a message with a newline: the persisted policy damaged, then moved aside on start
echo 'not json' >"$SG_TMP/state/policy.json"
start journal
wait_entry daemon_start 2
python3 - "$entries" <<'PY' || fail "the two-line message did not arrive whole"
import json, sys
multi = [json.loads(l) for l in open(sys.argv[1])]
multi = [e for e in multi if "\n" in e["MESSAGE"] and "corrupt" in e["MESSAGE"]]
assert len(multi) == 1 and multi[0]["PRIORITY"] == "3", multi
print("binary-safe MESSAGE:", json.dumps(multi[0]["MESSAGE"]))
PY
log "ok: a message with a newline arrives whole (binary-safe form)"
stop

# ---- log_target auto ---------------------------------------------------------
before=$(count_entries daemon_start)
start auto match
wait_entry daemon_start $((before + 1))
stop
[[ ! -s $STDERR ]] || fail "log_target auto with stderr as the journal stream wrote to stderr: $(cat "$STDERR")"
log "ok: auto + JOURNAL_STREAM naming stderr: entries on the journal socket"

before=$(wc -l <"$entries")
start auto 1:1
stop
grep -q '^smtpgovd: notice: ready: ' "$STDERR" || fail "auto + another JOURNAL_STREAM: no plain lines: $(cat "$STDERR")"
assert_eq "$(wc -l <"$entries")" "$before" "journal entries with auto and JOURNAL_STREAM naming another file"

# ---- log_target stderr -------------------------------------------------------
start stderr match
stop
grep -q '^<5>ready: ' "$STDERR" || fail "stderr target on a journal stream: no <5> prefix: $(cat "$STDERR")"
assert_eq "$(wc -l <"$entries")" "$before" "journal entries with log_target stderr"

# ---- log_target journal, no journal socket -----------------------------------
receiver_stop
start journal
stop
grep -q '^smtpgovd: warning: journal: send to /run/systemd/journal/socket: ' "$STDERR" ||
    fail "no warning about the missing journal: $(cat "$STDERR")"
grep -q '^smtpgovd: notice: stopping; ' "$STDERR" || fail "lines lost without a journal: $(cat "$STDERR")"
log "ok: without a journal every line still reaches stderr"
