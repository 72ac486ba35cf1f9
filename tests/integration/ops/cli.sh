#!/usr/bin/env bash
# smtpgovctl against a running smtpgovd on the testbed: every command of the CLI
# contract, human and --json output, and the exit codes of the error paths
# (0 ok, 1 runtime/not found/daemon down, 2 usage/validation).
source "$(dirname "$0")/../lib.sh"
sg_init opscli
sg_testbed up --vms 3 >/dev/null
eval "$(sg_testbed env)"
CTL=$SG_BIN/smtpgovctl
[[ -x $CTL ]] || fail "$CTL not built"

policy=$SG_TMP/policy.json
cat >"$policy" <<JSON
{"defaults": {"rate": 10, "burst": 20},
 "vms": [{"id": "vm1", "tenant": "acme", "interface": "$SG_VM1_IF", "addresses": ["$SG_VM1_V4"]},
         {"id": "vm2", "tenant": "acme", "interface": "$SG_VM2_IF", "rate": 50, "burst": 100},
         {"id": "vm3", "tenant": "globex", "interface": "$SG_VM3_IF"}]}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$policy" "$SG_VM1_IF" "$SG_VM2_IF" "$SG_VM3_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

out=$SG_TMP/out err=$SG_TMP/err
# expect RC CMD...: runs CMD with stdout in $out and stderr in $err, checks its exit status
expect() {
    local want=$1 rc=0
    shift
    "$@" >"$out" 2>"$err" || rc=$?
    if ((rc != want)); then
        log "stdout: $(head -c 2000 "$out")"
        log "stderr: $(cat "$err")"
        fail "exit $rc, expected $want: $*"
    fi
    log "ok: exit $rc: ${*#"$CTL"}"
}
ctl() { "$CTL" --socket "$SG_SOCKET" "$@"; }
# py EXPR: evaluates a Python expression over j = the JSON on stdout of the last command
py() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); r=($1); print(r); sys.exit(0 if r not in (False, None) else 1)" "$out"; }
contains() { grep -qF -- "$1" "${2:-$out}" || fail "output lacks '$1': $(head -c 2000 "${2:-$out}")"; }
one_line_err() { (($(wc -l <"$err") == 1)) || fail "stderr is not one line: $(cat "$err")"; }

# ---- status ------------------------------------------------------------------
expect 0 ctl status
contains "version"
contains "$SG_VM1_IF"
expect 0 ctl --json status
py 'j["vms"] >= 3 and all(i["attached"] for i in j["interfaces"]) and "tiers" in j' >/dev/null

# ---- policy ------------------------------------------------------------------
expect 0 ctl policy get --json
py 'sorted(v["id"] for v in j["vms"]) == ["vm1", "vm2", "vm3"]' >/dev/null
expect 0 ctl policy get
contains '"vms"'
expect 0 ctl policy validate "$policy"
contains "valid policy (3 VMs)"

bad=$SG_TMP/bad.json
echo '{"vms": [{"id": "vm1", "interface": "x", "rate": -5}], "defaults": {"over_limit": "maybe"}}' >"$bad"
expect 2 ctl policy validate "$bad"
contains "/vms/0/rate: " "$err"
contains "/defaults/over_limit: " "$err"
expect 2 ctl policy apply "$bad"
contains "/vms/0/rate: " "$err"
expect 0 ctl --json policy get
py 'len(j["vms"]) == 3' >/dev/null   # the running policy stayed

changed=$SG_TMP/changed.json
python3 - "$policy" "$changed" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["vms"][1]["rate"] = 60
p["vms"] = [v for v in p["vms"] if v["id"] != "vm3"] + [{"id": "vm4", "addresses": ["198.18.200.0/24"]}]
json.dump(p, open(sys.argv[2], "w"))
PY
expect 0 ctl policy apply "$changed"
contains "added    vm4"
contains "removed  vm3"
contains "changed  vm2 (rate"
expect 0 ctl --json policy apply "$policy"
py 'j["added"] == ["vm3"] and j["removed"] == ["vm4"] and j["ports_changed"] is False' >/dev/null

# ---- vm list / show with traffic -------------------------------------------
sg_flood --netns "$SG_VM1_NS" syn --dst "${SG_INET_V4[0]}" --rate 300 --duration 3 --json >"$SG_TMP/flood.json"
sleep 1.5  # one sweep after the flood
expect 0 ctl --json vm list
py 'j[0]["id"] == "vm1" and all(k in v for v in j for k in ("id","tenant","tier","score","rate","syn","spoofed"))' >/dev/null
py '[v["rate"] for v in j] == sorted((v["rate"] for v in j), reverse=True)' >/dev/null
py 'set(j[0]["syn"]) >= {"pass","throttle","steer","block"} and j[0]["syn"]["pass"] > 0 and j[0]["syn"]["throttle"] > 0' >/dev/null
expect 0 ctl vm list
contains "THROTTLE"
head -2 "$out" | tail -1 | grep -q '^vm1 ' || fail "vm1 is not the first row: $(cat "$out")"
expect 0 ctl --json vm list --tenant globex
py '[v["id"] for v in j] == ["vm3"]' >/dev/null
expect 0 ctl --json vm list --tier blocked
py 'all(v["tier"] == "blocked" for v in j)' >/dev/null

expect 0 ctl --json vm show vm1
py 'j["id"] == "vm1" and j["tenant"] == "acme" and isinstance(j["tickets"], list) and "limits" in j' >/dev/null
expect 0 ctl vm show vm1
contains "VERDICT"
contains "acme"
expect 1 ctl vm show no-such-vm
one_line_err

# ---- pins, reports, events ---------------------------------------------------
"$CTL" --socket "$SG_SOCKET" events --follow >"$SG_TMP/follow.jsonl" 2>"$SG_TMP/follow.err" &
follower=$!
sg_on_exit "kill $follower 2>/dev/null || true"
sleep 0.5

expect 0 ctl --json vm set-tier vm2 blocked --for 120
py 'j["tier"] == "blocked" and j["pin"]["tier"] == "blocked"' >/dev/null
expect 0 ctl --json vm list --tier blocked
py '"vm2" in [v["id"] for v in j]' >/dev/null
expect 0 ctl vm set-tier vm3 steered
contains "pinned to steered"
expect 0 ctl --json vm clear vm2
py 'j["pin"] is None' >/dev/null
expect 0 ctl vm clear vm3
contains "pin cleared"
expect 2 ctl vm set-tier vm2 purple
one_line_err
expect 1 ctl vm set-tier no-such-vm blocked
expect 2 ctl vm set-tier vm2 blocked --for soon

expect 0 ctl --json report spam vm3 --count 3
py 'j["id"] == "vm3" and j["score"] > 0' >/dev/null
expect 0 ctl report complaint vm3
contains "complaint report(s) recorded"
expect 1 ctl report spam no-such-vm
expect 2 ctl report ham vm3

expect 0 ctl events --limit 50
python3 -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert any(e.get("vm") == "vm2" and e.get("type") in ("tier_change", "ticket") for e in ev), ev
' "$out" || fail "events lacks vm2's tier change"
expect 0 ctl events --limit 1
(($(wc -l <"$out") <= 1)) || fail "events --limit 1 printed $(wc -l <"$out") lines"

for ((i = 0; i < 50; i++)); do grep -q '"vm2"' "$SG_TMP/follow.jsonl" && break; sleep 0.1; done
grep -q '"vm2"' "$SG_TMP/follow.jsonl" || fail "events --follow did not stream vm2's change: $(cat "$SG_TMP/follow.jsonl")"
kill -INT "$follower"
rc=0
wait "$follower" || rc=$?
assert_eq "$rc" 0 "events --follow exit status after SIGINT"

# ---- flow, top ------------------------------------------------------------------
expect 1 ctl flow original-dst "$SG_VM1_V4:40000"
one_line_err
expect 2 ctl flow original-dst not-an-address

expect 0 ctl top --iterations 2 --interval 0.2
(($(grep -c 'smtpgov top' "$out") == 2)) || fail "top did not draw 2 frames: $(cat "$out")"
contains "vm1"
expect 0 ctl --json top --iterations 1
py 'isinstance(j, list) and len(j) >= 3' >/dev/null

# ---- usage errors and a stopped daemon ---------------------------------------------
expect 2 ctl frobnicate
one_line_err
expect 2 ctl vm show
expect 0 ctl vm list --help
contains "--tenant NAME"
sg_daemon_stop
expect 1 ctl status
one_line_err
contains "cannot reach smtpgovd" "$err"
expect 0 ctl policy validate "$policy"   # offline
