#!/usr/bin/env bash
# Address history shared through etcd (issue 13, the fleet half): two smtpgovd in
# namespaces of their own (no testbed: no traffic is needed), one etcd member.
#  - a complaint (report arf on host a) about VM va's address X, and a DNSBL listing of
#    its address L that host a recorded: `ip check` on host b exits 3 for both, and
#    `ip show --json` on b names host a as the recorder and the holder; IPv6 too;
#  - vb's address in the same /24 bucket, and a never-governed address: clean (0);
#  - a record no host could have written (garbage; a complaint outside the bucket its key
#    names) is ignored and named in ip show, and taints nothing;
#  - report arf on host b about an address that va held on host a: recorded on b (exit
#    0, the answer names host a), tainted on a too, charged to nobody; an address no
#    host held: exit 1;
#  - nothing read from the fleet charges a VM: vb's score stays 0 on its host;
#  - etcd stopped: `ip check` on b exits 1 (fleet history unavailable) where its own
#    history says clean, 3 on a where its own says tainted; ip show says the fleet's part
#    is missing; a complaint taken on a meanwhile is written when etcd is back.
# The DNSBL listing is seeded in host a's dnsbl.json (what dnsbl.sh makes with
# rbldnsd): the record path from the listing state to etcd is the one under test here.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init sgfad
fleet_etcd_up "$SG_PREFIX-etcd" 1

X=203.0.113.10 L=203.0.113.11 X2=203.0.113.12 C=203.0.113.20 V6=2001:db8:a::25 NOBODY=198.51.100.77
now=$(date +%s)
day=86400
hosts=(ha hb)

# af_host_up H I: namespace $SG_PREFIX-H with lo, one veth pair, and the management link
af_host_up() {
    local ns=$SG_PREFIX-$1
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    sg_on_exit "ip netns del $ns 2>/dev/null"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add "${1}v0" type veth peer name "${1}v1"
    ip -n "$ns" link set "${1}v0" up
    ip -n "$ns" link set "${1}v1" up
    fleet_etcd_attach "$ns" "$2"
}

# af_daemon_start H: smtpgovd of host H in its namespace, state under $SG_TMP/H
af_daemon_start() {
    local h=$1 dir=$SG_TMP/$1
    mkdir -p "$dir/state"
    rm -rf "$SG_BPFFS-$h"
    cat >"$dir/config.json" <<JSON
{"interfaces": ["${h}v0"], "xdp_mode": "generic", "bpffs": "$SG_BPFFS-$h", "state_dir": "$dir/state",
 "socket": "$dir/ctl.sock", "metrics_listen": "", "policy_service_listen": "", "sweep_interval_ms": 200,
 "fleet": {"etcd": ["$(fleet_etcd_endpoints)"], "host": "$h", "prefix": "$FLEET_PREFIX"}}
JSON
    nsenter --net="/run/netns/$SG_PREFIX-$h" "$SG_BIN/smtpgovd" --config "$dir/config.json" >>"$dir/smtpgovd.log" 2>&1 &
    echo $! >"$dir/pid"
    sg_on_exit "fleet_daemon_stop $h; rm -rf $SG_BPFFS-$h"
    fleet_daemon_wait "$h"
}

# rc H ARGS...: smtpgovctl's exit status on host H (stdout in $SG_TMP/out, stderr in $SG_TMP/err)
rc() {
    local r=0
    fctl "$@" >"$SG_TMP/out" 2>"$SG_TMP/err" || r=$?
    echo "$r"
}

# expect_rc WANT WHAT H ARGS...: the command exits WANT (else its output in the failure)
expect_rc() {
    local want=$1 what=$2 got
    shift 2
    got=$(rc "$@")
    [[ $got == "$want" ]] || fail "$what: expected exit $want, got $got: $(head -c 400 "$SG_TMP/err") $(head -c 400 "$SG_TMP/out")"
    log "ok: $what: exit $got"
}

# wait_rc WANT TIMEOUT_S H ARGS...: until the command exits WANT
wait_rc() {
    local want=$1 t=$2 i
    shift 2
    for ((i = 0; i < t * 10; i++)); do
        [[ $(rc "$@") == "$want" ]] && return 0
        sleep 0.1
    done
    fail "$* did not exit $want within $t s (last: $(rc "$@"): $(head -c 300 "$SG_TMP/err") $(head -c 300 "$SG_TMP/out"))"
}

# arf FILE SOURCE_IP ARRIVAL_UNIX: a minimal RFC 5965 report
arf() {
    local date
    date=$(date -u -R -d "@$3")
    printf '%s\n' "From: fbl@isp.example" "To: fbl@hoster.example" "Subject: complaint" "MIME-Version: 1.0" \
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"' "" "--B" \
        "Content-Type: text/plain" "" "A user said this is spam." "--B" "Content-Type: message/feedback-report" "" \
        "Feedback-Type: abuse" "User-Agent: sgfad/1" "Version: 1" "Source-IP: $2" "Arrival-Date: $date" "" "--B" \
        "Content-Type: message/rfc822" "" "From: x@vm.hoster.example" "Subject: offer" "" "buy" "--B--" >"$1"
}

af_host_up ha 0
af_host_up hb 1
# host a has seen L listed in bl.test while va held it (dnsbl.sh makes this with rbldnsd)
mkdir -p "$SG_TMP/ha/state"
cat >"$SG_TMP/ha/state/dnsbl.json" <<JSON
{"version": 1, "past": [], "states": [
 {"address": "$L", "zone": "bl.test", "holder": "vm:va", "clean_seen": true, "listed": true,
  "since_unix": $((now - day)), "checked_unix": $((now - 60)), "codes": ["127.0.0.2"],
  "reason": "sgfad test listing", "charged": true, "predates_holder": false}]}
JSON
for h in "${hosts[@]}"; do af_daemon_start "$h"; done

cat >"$SG_TMP/policy.json" <<JSON
{"reputation": {"half_life_s": 3600},
 "vms": [{"id": "va", "tenant": "acme", "host": "ha", "addresses": ["$X", "$L", "$X2", "2001:db8:a::/64"]},
         {"id": "vb", "tenant": "beta", "host": "hb", "addresses": ["$C"]}]}
JSON
fleetctl fleet policy apply "$SG_TMP/policy.json" --wait 20 >"$SG_TMP/apply.out" || { cat "$SG_TMP/apply.out"; fail "fleet policy apply"; }
serial=$(fleetctl fleet status --json | json serial)
for h in "${hosts[@]}"; do fleet_wait_serial "$h" "$serial" 20; done

log "a complaint about va's address taken on host a taints it on host b"
expect_rc 0 "ip check $X on b before any complaint" hb ip check $X
arf "$SG_TMP/x.eml" $X $(date +%s)  # after the apply that gave X to va
expect_rc 0 "report arf about $X on host a" ha report arf "$SG_TMP/x.eml"
assert_eq "$(json attributed.vm <"$SG_TMP/out")" va "the complaint is attributed to"
wait_rc 3 10 hb ip check $X
assert_eq "$(json fleet.hosts <"$SG_TMP/out")" "['ha', 'hb']" "hosts whose records b read"
show=$(fctl hb ip show $X)
assert_eq "$(json complaints.0.host <<<"$show")" ha "host that recorded the complaint (ip show on b)"
assert_eq "$(json complaints.0.vm <<<"$show")" va "VM the complaint was attributed to (ip show on b)"
assert_eq "$(json holder.vm <<<"$show")" va "holder of $X (ip show on b)"
assert_eq "$(json holder.host <<<"$show")" ha "host of the holder of $X (ip show on b)"
assert_eq "$(json history.0.host <<<"$show")" ha "host that recorded the holding"
"$SG_BIN/smtpgovctl" --socket "$SG_TMP/hb/ctl.sock" ip show $X | grep -q "recorded by host ha" ||
    fail "ip show text on b does not name host a"

log "a DNSBL listing recorded on host a taints the address on host b"
expect_rc 3 "ip check $L on b" hb ip check $L
assert_eq "$(json dnsbl.0.host <"$SG_TMP/out")" ha "host that recorded the listing"
assert_eq "$(json dnsbl.0.zone <"$SG_TMP/out")" bl.test "zone of the listing"
assert_eq "$(json dnsbl.0.listed_now <"$SG_TMP/out")" True "listed now"

log "IPv6: a complaint about an address of va's /64, asked about on b by address and by prefix"
arf "$SG_TMP/v6.eml" $V6 $(date +%s)
expect_rc 0 "report arf about $V6 on host a" ha report arf "$SG_TMP/v6.eml"
wait_rc 3 10 hb ip check $V6
expect_rc 3 "ip check 2001:db8:a::/64 on b" hb ip check 2001:db8:a::/64
expect_rc 0 "ip check of another address of the /64 on b" hb ip check 2001:db8:a::26
keys=$(fleet_etcdctl get --keys-only --prefix "$FLEET_PREFIX/addresses/" | grep . | tr '\n' ' ')
log "address records in etcd: $keys"
log "host a's record of 203.0.113.0/24: $(fleet_etcdctl get --print-value-only "$FLEET_PREFIX/addresses/v4/203.000.113/hosts/ha")"
# one record per host per bucket it has history in: vb's address shares va's /24
assert_eq "$keys" "$FLEET_PREFIX/addresses/v4/203.000.113/hosts/ha $FLEET_PREFIX/addresses/v4/203.000.113/hosts/hb $FLEET_PREFIX/addresses/v6/2001:0db8:000a/hosts/ha " "address records in etcd"

log "clean addresses stay clean: vb's in the same bucket, and one nobody held"
expect_rc 0 "ip check $C (vb, same /24) on b" hb ip check $C
expect_rc 0 "ip check $C on a" ha ip check $C
expect_rc 0 "ip check $NOBODY on b" hb ip check $NOBODY

log "report arf on host b about an address va held on host a: recorded on b, tainted fleet-wide, charged to nobody"
complaints_va=$(fctl ha vm show va | json complaints)
score_va=$(fctl ha vm show va | json score)
arf "$SG_TMP/b6.eml" 2001:db8:a::26 $(date +%s)
expect_rc 0 "report arf on b about 2001:db8:a::26" hb report arf "$SG_TMP/b6.eml"
assert_eq "$(json attributed.holder_host <"$SG_TMP/out")" ha "host that held it (report arf on b)"
assert_eq "$(json attributed.vm <"$SG_TMP/out")" va "VM that held it (report arf on b)"
assert_eq "$(json attributed.scored <"$SG_TMP/out")" False "scored (report arf on b)"
wait_rc 3 10 ha ip check 2001:db8:a::26
assert_eq "$(json complaints.0.host <<<"$(fctl ha ip show 2001:db8:a::26)")" hb "host that recorded it (ip show on a)"
assert_eq "$(fctl ha vm show va | json complaints)" "$complaints_va" "complaints against va on its host"
assert_le "$(fctl ha vm show va | json score | cut -d. -f1)" "${score_va%%.*}" "va's score on its host (not raised)"
arf "$SG_TMP/nobody.eml" $NOBODY $(date +%s)
expect_rc 1 "report arf on b about an address no host held" hb report arf "$SG_TMP/nobody.eml"
grep -q "nor did any other host" "$SG_TMP/err" || fail "no reason given: $(cat "$SG_TMP/err")"

log "records no host could write are ignored, named, and taint nothing"
fleet_etcdctl put "$FLEET_PREFIX/addresses/v4/203.000.113/hosts/evil" '{not json' >/dev/null
fleet_etcdctl put "$FLEET_PREFIX/addresses/v4/198.051.100/hosts/evil2" "{\"version\": 1, \"host\": \"evil2\",
  \"holdings\": [], \"listings\": [], \"complaints\": [{\"address\": \"$C\", \"arrival_unix\": $now,
  \"received_unix\": $now, \"vm\": \"vb\", \"tenant\": \"\", \"feedback_type\": \"abuse\", \"reporting_mta\": \"\"}]}" >/dev/null
expect_rc 0 "ip check $C with a garbage record in its bucket" hb ip check $C
expect_rc 0 "ip check 198.51.100.0/23 (a complaint outside its key's bucket)" hb ip check 198.51.100.0/23
refused=$(fctl hb ip show $C | json fleet.refused.0.key)
assert_eq "$refused" "$FLEET_PREFIX/addresses/v4/203.000.113/hosts/evil" "refused record named by ip show"
expect_rc 3 "ip check $X beside the garbage record" hb ip check $X
grep -q "address record $FLEET_PREFIX/addresses/v4/203.000.113/hosts/evil" "$SG_TMP/hb/smtpgovd.log" ||
    fail "the refused record is not in b's log"
fleet_etcdctl del --prefix "$FLEET_PREFIX/addresses/v4/198.051.100/" >/dev/null
log "nothing read from the fleet charges a VM"
assert_eq "$(fctl hb vm show vb | json score)" 0 "vb's score on host b"
assert_eq "$(fctl hb vm show vb | json complaints)" 0 "complaints against vb on host b"

log "etcd stopped: ip check on b cannot say clean (exit 1); a complaint on a is queued"
fleet_etcd_kill 0
expect_rc 1 "ip check $C on b with etcd down" hb ip check $C
grep -q "fleet history unavailable" "$SG_TMP/err" || fail "no reason given: $(cat "$SG_TMP/err")"
expect_rc 1 "ip check $X on b with etcd down" hb ip check $X
expect_rc 0 "ip show $X on b with etcd down" hb ip show $X
grep -q "fleet history unavailable" <<<"$(json fleet.error <"$SG_TMP/out")" || fail "ip show does not say the fleet's part is missing"
expect_rc 3 "ip check $X on a with etcd down (its own complaint: tainted either way)" ha ip check $X
arf "$SG_TMP/x2.eml" $X2 $(date +%s)
expect_rc 0 "report arf about $X2 on a with etcd down" ha report arf "$SG_TMP/x2.eml"
sleep 0.5
fleet_etcd_start 0
fleet_etcd_wait
wait_rc 3 15 hb ip check $X2
log "the complaint taken while etcd was down reached host b"
expect_rc 0 "ip check $C on b after etcd is back" hb ip check $C
for h in "${hosts[@]}"; do kill -0 "$(cat "$SG_TMP/$h/pid")" || fail "smtpgovd of $h died"; done

log "host a loses its state dir and its pins (a rebuilt machine): its history comes back from its own records"
X_FROM=$(fctl ha ip show $X | json history.0.from_unix)
REC=$FLEET_PREFIX/addresses/v4/203.000.113/hosts/ha
fleet_daemon_stop ha
sleep 1  # the restart's second differs from every holding's start
t_restart=$(date +%s)
rm -rf "$SG_TMP/ha/state"
af_daemon_start ha
fleet_wait_serial ha "$serial" 20
wait_rc 3 15 ha ip check $X
log "ok: $X tainted on a again (its complaint)"
expect_rc 3 "ip check $X2 on a (the complaint taken while etcd was down)" ha ip check $X2
expect_rc 3 "ip check $L on a (the listing, back as ended at the restart)" ha ip check $L
assert_eq "$(fctl ha ip show $X | json history.0.from_unix)" "$X_FROM" "va held $X on a since (not since the restart)"
grep -q "recovered from this host's address records in etcd" "$SG_TMP/ha/smtpgovd.log" || fail "the recovery is not logged"
# a rewrites its record only once it has its history back: L's listing now ended, the
# complaints and va's tenure as before (a shorter history never reaches the fleet)
for ((i = 0; i < 50; i++)); do
    rec=$(fleet_etcdctl get --print-value-only "$REC")
    [[ $(json listings.0.until_unix <<<"$rec") != None ]] && break
    sleep 0.2
done
assert_ge "$(json listings.0.until_unix <<<"$rec")" "$t_restart" "end of L's listing in a's record"
assert_eq "$(json listings.0.since_unix <<<"$rec")" "$((now - day))" "start of L's listing in a's record"
assert_eq "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(sorted(c["address"] for c in r["complaints"]))' "$rec")" \
    "['$X', '$X2']" "complaints in a's record"
assert_eq "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(min(h["from_unix"] for h in r["holdings"]))' "$rec")" \
    "$X_FROM" "va's tenure in a's record"
expect_rc 3 "ip check $X on b after a's rebuild" hb ip check $X
expect_rc 0 "ip check $C on a after its rebuild" ha ip check $C
assert_eq "$(fctl ha vm show va | json complaints)" 3 "complaints against va on a after its rebuild"
