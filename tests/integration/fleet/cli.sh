#!/usr/bin/env bash
# smtpgovctl fleet ... against a real etcd cluster (FLEET_MEMBERS members, default 3) in a
# namespace of this test's own; stand-in hosts (fake_hosts.py) write status and live keys
# as smtpgovd's fleet agent does. Covers: apply to three hosts, get round trip, status,
# vm list, an invalid policy (exit 2, nothing written), a second apply rewriting only
# the changed host, a dropped host's key deleted, the lock held by someone else (exit 1,
# nothing written), real concurrent applies (one wins, the other is told, the store
# holds exactly the winner's), --wait reporting refused / no answer, usage and runtime
# exit codes.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/etcd.sh"

[[ $EUID -eq 0 ]] || fail "integration tests need root (network namespaces)"
[[ -x $SG_BIN/smtpgovctl ]] || fail "$SG_BIN/smtpgovctl not built"
SG_PREFIX=sgccli
SG_TMP=$(mktemp -d "/tmp/sg-$SG_PREFIX.XXXXXX")
trap _sg_exit EXIT
trap 'exit 130' INT TERM
sg_on_exit 'rm -rf "$SG_TMP"'

NS=${SG_NS_TAG:-}sgccli$$
fleet_etcd_up "$NS" "${FLEET_MEMBERS:-3}"
EP=$(fleet_etcd_endpoints)
P=/sgt
HERE=$(cd "$(dirname "$0")" && pwd)

ctl() { nsenter --net="/run/netns/$NS" "$SG_BIN/smtpgovctl" "$@"; }
fctl() { ctl "$@" --etcd "$EP" --prefix "$P"; }
etcdget() { fleet_etcdctl get "$@"; }
# mod_revision of a key (0 when absent)
modrev() {
    fleet_etcdctl get "$1" -w json | python3 -c 'import json,sys; k=json.load(sys.stdin).get("kvs",[]); print(k[0]["mod_revision"] if k else 0)'
}
# py EXPR FILE: evaluates EXPR with the JSON document in FILE as d
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[2])); r=eval(sys.argv[1]); print(r)" "$@"; }

# make_policy OUT RATE HOST:VM,VM HOST:VM ... (two addresses-free VMs per host, by interface)
make_policy() {
    local out=$1 rate=$2
    shift 2
    python3 - "$out" "$rate" "$@" <<'EOF'
import json, sys
out, rate, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
vms = []
for spec in specs:
    host, ids = spec.split(":")
    for i in ids.split(","):
        vms.append({"id": i, "tenant": "acme", "host": host, "interface": "vnet-" + i, "rate": rate})
json.dump({"defaults": {"rate": 10, "burst": 20}, "reputation": {"half_life_s": 600}, "vms": vms}, open(out, "w"))
EOF
}

modes() { printf '%s\n' "$@" >"$SG_TMP/modes"; }
modes "hv-a live apply" "hv-b live apply" "hv-c lost apply"
nsenter --net="/run/netns/$NS" python3 "$HERE/fake_hosts.py" "${EP%%,*}" "$P" "$SG_TMP/modes" \
    2>"$SG_TMP/fake_hosts.log" &
FAKE=$!
sg_on_exit "kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null"

# ---- usage and runtime failures ------------------------------------------------------
rc=0; ctl fleet status --config /nonexistent.json 2>"$SG_TMP/err" || rc=$?
assert_eq "$rc" 2 "fleet status with an unreadable config"
rc=0; ctl fleet status --etcd ftp://x 2>"$SG_TMP/err" || rc=$?
assert_eq "$rc" 2 "fleet status with a bad endpoint"
rc=0; ctl fleet status --etcd http://127.0.0.1:1 2>"$SG_TMP/err" || rc=$?
assert_eq "$rc" 1 "fleet status with etcd unreachable"
rc=0; fctl fleet policy get 2>"$SG_TMP/err" || rc=$?
assert_eq "$rc" 1 "fleet policy get with nothing stored"
# the endpoints from a daemon config
echo "{\"fleet\": {\"etcd\": [\"${EP%%,*}\"], \"prefix\": \"$P\", \"host\": \"x\"}}" >"$SG_TMP/smtpgovd.json"
ctl fleet status --config "$SG_TMP/smtpgovd.json" --json >"$SG_TMP/st0.json"
assert_eq "$(py 'd["serial"]' "$SG_TMP/st0.json")" 0 "serial before any apply (endpoints from --config)"
echo '{"fleet": {"etcd": ["http://10.254.0.1:2379"], "etcd_typo": 1}}' >"$SG_TMP/bad-config.json"
rc=0; ctl fleet status --config "$SG_TMP/bad-config.json" 2>"$SG_TMP/err" || rc=$?
assert_eq "$rc" 2 "fleet status with a config whose fleet object the daemon would refuse"
grep -q 'fleet/etcd_typo: unknown key' "$SG_TMP/err" || fail "config error: $(cat "$SG_TMP/err")"

# ---- 1. apply to three hosts ---------------------------------------------------------
make_policy "$SG_TMP/p1.json" 100 hv-a:vm-a1,vm-a2 hv-b:vm-b1,vm-b2 hv-c:vm-c1,vm-c2
fctl fleet policy apply "$SG_TMP/p1.json" --wait 20 --json >"$SG_TMP/a1.json" 2>"$SG_TMP/err" ||
    fail "first apply: $(cat "$SG_TMP/err" "$SG_TMP/a1.json")"
assert_eq "$(py 'd["serial"]' "$SG_TMP/a1.json")" 1 "first apply's serial"
assert_eq "$(py '",".join(h["host"]+"="+h["result"] for h in d["hosts"])' "$SG_TMP/a1.json")" \
    "hv-a=applied,hv-b=applied,hv-c=applied" "every host applied serial 1"
assert_eq "$(etcdget --prefix --keys-only "$P/policy/hosts/" | grep -c .)" 3 "host values stored"
assert_eq "$(etcdget --keys-only "$P/policy/lock" | grep -c . || true)" 0 "no lock left behind"

# ---- 2. get round-trips it -----------------------------------------------------------
fctl fleet policy get >"$SG_TMP/got.json"
python3 - "$SG_TMP/p1.json" "$SG_TMP/got.json" <<'EOF' || fail "fleet policy get differs from what was applied"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
key = lambda v: v["id"]
assert sorted(a["vms"], key=key) == sorted(b["vms"], key=key), (a["vms"], b["vms"])
assert {k: v for k, v in a.items() if k != "vms"} == {k: v for k, v in b.items() if k != "vms"}, b
EOF
log "ok: fleet policy get round-trips the applied policy"
# re-applying what get printed rewrites no host value
before=$(modrev "$P/policy/hosts/hv-a"),$(modrev "$P/policy/hosts/hv-b"),$(modrev "$P/policy/hosts/hv-c")
fctl fleet policy apply "$SG_TMP/got.json" --wait 20 >/dev/null 2>"$SG_TMP/err" || fail "re-apply: $(cat "$SG_TMP/err")"
after=$(modrev "$P/policy/hosts/hv-a"),$(modrev "$P/policy/hosts/hv-b"),$(modrev "$P/policy/hosts/hv-c")
assert_eq "$after" "$before" "host values after re-applying the same policy"

# ---- 3. status -----------------------------------------------------------------------
fctl fleet status --json >"$SG_TMP/st.json"
assert_eq "$(py 'd["serial"]' "$SG_TMP/st.json")" 2 "fleet status serial"
assert_eq "$(py '",".join(h["host"]+":"+str(h["live"])+":"+str(h["policy_serial"]) for h in d["hosts"])' "$SG_TMP/st.json")" \
    "hv-a:True:2,hv-b:True:2,hv-c:False:2" "fleet status hosts (live, serial)"
fctl fleet status >"$SG_TMP/st.txt"
grep -qE '^hv-c +LOST' "$SG_TMP/st.txt" || fail "hv-c not shown as LOST: $(cat "$SG_TMP/st.txt")"
grep -qE '^HOST +LIVE +LAST-SEEN +POLICY-SERIAL +VMS' "$SG_TMP/st.txt" || fail "status table header: $(cat "$SG_TMP/st.txt")"

# ---- 4. vm list with a reputation record ----------------------------------------------
now_ms=$(($(date +%s%3N)))
fleet_etcdctl put "$P/tenants/acme/vms/vm-b2" \
    "{\"vm\":\"vm-b2\",\"tenant\":\"acme\",\"score\":2500,\"score_at_ms\":$now_ms,\"earned\":\"blocked\",\"since_ms\":$now_ms,\"tier\":\"blocked\",\"pin\":null,\"updated_by\":\"hv-b\",\"updated_at_ms\":$now_ms}" >/dev/null
fctl fleet vm list --json >"$SG_TMP/vms.json"
assert_eq "$(py 'len(d)' "$SG_TMP/vms.json")" 6 "fleet vm list: every VM"
assert_eq "$(py 'd[0]["id"]+"@"+d[0]["host"]+":"+d[0]["tier"]+":"+d[0]["updated_by"]' "$SG_TMP/vms.json")" \
    "vm-b2@hv-b:blocked:hv-b" "the VM with a record, first"
fctl fleet vm list --tier blocked --json >"$SG_TMP/vms.json"
assert_eq "$(py '[v["id"] for v in d]' "$SG_TMP/vms.json")" "['vm-b2']" "fleet vm list --tier blocked"
fctl fleet vm list --tier ok --tenant acme >"$SG_TMP/vms.txt"
assert_eq "$(grep -c '^vm-' "$SG_TMP/vms.txt")" 5 "fleet vm list --tier ok --tenant acme (table rows)"

# ---- 5. an invalid policy: exit 2, every problem, nothing written ----------------------
python3 - "$SG_TMP/p1.json" "$SG_TMP/bad.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
p["vms"][0]["rate"] = "fast"
del p["vms"][3]["host"]
json.dump(p, open(sys.argv[2], "w"))
EOF
g0=$(modrev "$P/policy/global")
rc=0; fctl fleet policy apply "$SG_TMP/bad.json" 2>"$SG_TMP/err" >/dev/null || rc=$?
assert_eq "$rc" 2 "an invalid fleet policy's exit status"
grep -q '^/vms/0/rate: ' "$SG_TMP/err" || fail "no /vms/0/rate problem: $(cat "$SG_TMP/err")"
grep -q '^/vms/3/host: ' "$SG_TMP/err" || fail "no /vms/3/host problem: $(cat "$SG_TMP/err")"
assert_eq "$(modrev "$P/policy/global")" "$g0" "global revision after the invalid policy"
rc=0; fctl fleet policy apply "$SG_TMP/nonexistent.json" 2>/dev/null || rc=$?
assert_eq "$rc" 2 "a missing policy file"

# ---- 6. change one host: only its value is rewritten -----------------------------------
make_policy "$SG_TMP/p2.json" 100 hv-a:vm-a1,vm-a2 hv-b:vm-b1,vm-b2,vm-b3 hv-c:vm-c1,vm-c2
ra=$(modrev "$P/policy/hosts/hv-a"); rb=$(modrev "$P/policy/hosts/hv-b"); rc_=$(modrev "$P/policy/hosts/hv-c")
fctl fleet policy apply "$SG_TMP/p2.json" --wait 20 >"$SG_TMP/a2.txt" 2>"$SG_TMP/err" || fail "apply p2: $(cat "$SG_TMP/err")"
assert_eq "$(modrev "$P/policy/hosts/hv-a")" "$ra" "hv-a's value untouched"
assert_eq "$(modrev "$P/policy/hosts/hv-c")" "$rc_" "hv-c's value untouched"
(($(modrev "$P/policy/hosts/hv-b") > rb)) || fail "hv-b's value was not rewritten"
log "ok: hv-b's value rewritten"
grep -q '1 host value(s) written' "$SG_TMP/a2.txt" || fail "apply output: $(cat "$SG_TMP/a2.txt")"

# ---- 7. drop a host: its key is deleted -----------------------------------------------
make_policy "$SG_TMP/p3.json" 100 hv-a:vm-a1,vm-a2 hv-b:vm-b1,vm-b2,vm-b3
fctl fleet policy apply "$SG_TMP/p3.json" --wait 20 --json >"$SG_TMP/a3.json" 2>"$SG_TMP/err" ||
    fail "apply p3: $(cat "$SG_TMP/err")"
assert_eq "$(modrev "$P/policy/hosts/hv-c")" 0 "the dropped host's value"
assert_eq "$(py 'len(d["hosts"])' "$SG_TMP/a3.json")" 2 "hosts waited for after dropping hv-c"
fctl fleet status --json >"$SG_TMP/st.json"
assert_eq "$(py '[h["in_policy"] for h in d["hosts"] if h["host"]=="hv-c"][0]' "$SG_TMP/st.json")" False \
    "hv-c still listed (its status key) but not in the policy"

# ---- 8. the lock held by another apply: exit 1, nothing written -------------------------
lease=$(fleet_etcdctl lease grant 60 | awk '{print $2}')
fleet_etcdctl put --lease="$lease" "$P/policy/lock" '{"by":"someone@else","serial":99}' >/dev/null
g0=$(modrev "$P/policy/global"); hb=$(modrev "$P/policy/hosts/hv-b")
rc=0; fctl fleet policy apply "$SG_TMP/p1.json" --wait 1 2>"$SG_TMP/err" >/dev/null || rc=$?
assert_eq "$rc" 1 "apply while another holds the lock"
grep -q 'the fleet policy changed since it was read (or another apply is running): nothing written' "$SG_TMP/err" ||
    fail "race message: $(cat "$SG_TMP/err")"
assert_eq "$(modrev "$P/policy/global")" "$g0" "global revision while locked"
assert_eq "$(modrev "$P/policy/hosts/hv-b")" "$hb" "hv-b's value while locked"
assert_eq "$(modrev "$P/policy/hosts/hv-c")" 0 "hv-c not written while locked"
fleet_etcdctl lease revoke "$lease" >/dev/null

# ---- 9. real concurrent applies from two shells ----------------------------------------
make_policy "$SG_TMP/pa.json" 111 hv-a:vm-a1,vm-a2 hv-b:vm-b1,vm-x
make_policy "$SG_TMP/pb.json" 222 hv-a:vm-a1 hv-b:vm-b1,vm-b2,vm-y
races=0 rounds=0
for ((round = 0; round < 30 && races < 5; round++)); do
    rounds=$((round + 1))
    rm -f "$SG_TMP"/go
    pids=()
    for w in a b; do
        (
            while [[ ! -e $SG_TMP/go ]]; do sleep 0.001; done
            rc=0
            fctl fleet policy apply "$SG_TMP/p$w.json" --wait 10 --json >"$SG_TMP/r$w.json" 2>"$SG_TMP/r$w.err" || rc=$?
            echo "$rc" >"$SG_TMP/r$w.rc"
        ) &
        pids+=($!)
    done
    sleep 0.2
    touch "$SG_TMP/go"
    wait "${pids[@]}"
    # each: won (0), raced (1, told it lost: nothing written), superseded (1: written,
    # then replaced by the other one, which read it first)
    declare -A how=()
    for w in a b; do
        rc=$(cat "$SG_TMP/r$w.rc")
        if [[ $rc == 0 ]]; then how[$w]=won
        elif [[ $rc == 1 ]] && grep -q 'the fleet policy changed since it was read' "$SG_TMP/r$w.err"; then how[$w]=raced
        elif [[ $rc == 1 ]] && grep -q 'a later fleet policy apply superseded' "$SG_TMP/r$w.err"; then how[$w]=superseded
        else fail "round $round: apply $w exited $rc: $(cat "$SG_TMP/r$w.err")"
        fi
    done
    rm -f "$SG_TMP"/r?.rc
    fctl fleet policy get --json >"$SG_TMP/now.json"
    rate=$(py 'sorted({v["rate"] for v in d["vms"]})' "$SG_TMP/now.json")
    if [[ ${how[a]} == raced || ${how[b]} == raced ]]; then
        [[ ${how[a]} == raced ]] && win=b || win=a
        assert_eq "${how[$win]}" won "round $round: the other apply than the one told"
        [[ $win == a ]] && want="[111]" || want="[222]"
        assert_eq "$rate" "$want" "round $round: the stored policy is the winner's ($win)"
        python3 - "$SG_TMP/p$win.json" "$SG_TMP/now.json" <<'EOF' || fail "round $round: stored VMs are not exactly the winner's"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert sorted(v["id"] for v in a["vms"]) == sorted(v["id"] for v in b["vms"])
EOF
        races=$((races + 1))
    else
        # one ran after the other had finished (it read the other's policy): the later one
        # (higher revision) is stored, and it is the one that did not see itself superseded
        last=$(python3 -c 'import json,sys; a,b=(json.load(open(f))["revision"] for f in sys.argv[1:]); print("a" if a>b else "b")' \
            "$SG_TMP/ra.json" "$SG_TMP/rb.json")
        [[ $last == a ]] && want="[111]" || want="[222]"
        assert_eq "$rate" "$want" "round $round: both written one after the other; the later one is stored"
        assert_eq "${how[$last]}" won "round $round: the later apply's result"
    fi
    assert_eq "$(etcdget --keys-only "$P/policy/lock" | grep -c . || true)" 0 "round $round: no lock left"
done
assert_ge "$races" 5 "concurrent rounds that raced (one won, one was told), of $rounds"

# ---- 10. --wait: refused and no answer ---------------------------------------------------
modes "hv-a live apply" "hv-b live refuse /vms/1/rate: more than this host allows" "hv-c live silent"
make_policy "$SG_TMP/p4.json" 100 hv-a:vm-a1 hv-b:vm-b1 hv-c:vm-c1
sleep 0.5  # the stand-ins took the new modes (hv-c's live key)
rc=0; fctl fleet policy apply "$SG_TMP/p4.json" --wait 3 >"$SG_TMP/a4.txt" 2>"$SG_TMP/err" || rc=$?
assert_eq "$rc" 1 "apply with a refusing and a silent host"
grep -qE '^hv-a +applied$' "$SG_TMP/a4.txt" || fail "hv-a: $(cat "$SG_TMP/a4.txt")"
grep -qE '^hv-b +refused: /vms/1/rate: more than this host allows$' "$SG_TMP/a4.txt" || fail "hv-b: $(cat "$SG_TMP/a4.txt")"
grep -qE '^hv-c +no answer \(live\)$' "$SG_TMP/a4.txt" || fail "hv-c: $(cat "$SG_TMP/a4.txt")"
grep -q 'the policy is stored and in force on the hosts that applied it' "$SG_TMP/err" || fail "stderr: $(cat "$SG_TMP/err")"
fctl fleet status --json >"$SG_TMP/st.json"
assert_eq "$(py '[h["refused"]["serial"] for h in d["hosts"] if h["host"]=="hv-b"][0] == d["serial"]' "$SG_TMP/st.json")" True \
    "fleet status shows hv-b's refusal of the current serial"
