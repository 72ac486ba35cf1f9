#!/usr/bin/env bash
# smtpgovd's steering controls against real traffic (issue 9, the controller's half):
# - proxy health: the proxy (proxy.address ...:2525, nothing listening at first) fails its
#   check: proxy_down for IPv4 and IPv6; the steered VM then gets fail_mode block (its
#   SYN is reset, vm show: tier steered, enforced blocked). A greeter starts on :2525:
#   proxy_up for both, in that order, and steering resumes (the VM's session to an
#   internet address is greeted by the proxy).
# - the policy service on policy_service_listen (reached as an unprivileged user):
#   Postfix's request for the steered client ADDR:PORT -> FILTER smtp:[ORIGINAL]:25 (IPv4
#   and IPv6), an unknown client -> DUNNO, garbage -> DEFER_IF_PERMIT and closed; a
#   spam verdict for the steered connection raises that VM's score by spam_report, one
#   for the ok VM's direct connection is refused and changes nothing; with
#   policy_service_token_file set, a report without the token or with a wrong one is
#   refused and changes nothing.
# - smtpgovctl flow original-dst, status (proxy, connections) and the metrics.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init sgbps
sg_testbed --vms 2 --no-proxy-sink up
eval "$(sg_testbed env)"
svc=127.0.0.1:10040

cat >"$SG_TMP/policy.json" <<JSON
{
  "smtp_ports": [25, 465, 587],
  "defaults": {"rate": 50, "burst": 100},
  "tiers": {"throttled": {"rate": 50, "burst": 100}, "steered": {"rate": 50, "burst": 100},
            "blocked": {"action": "reset"}},
  "proxy": {"address": ["$SG_PROXY_V4:2525", "[$SG_PROXY_V6]:2525"], "fail_mode": "block",
            "check_interval_s": 1},
  "reputation": {"half_life_s": 3600, "weights": {"spam_report": 50}},
  "vms": [
    {"id": "steered-vm", "interface": "$SG_VM1_IF", "addresses": ["$SG_VM1_V4/32", "$SG_VM1_V6/128"], "tier": "steered"},
    {"id": "ok-vm", "interface": "$SG_VM2_IF", "addresses": ["$SG_VM2_V4/32", "$SG_VM2_V6/128"], "tier": "ok"}
  ]
}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_listen "\"$svc\""
token=$(python3 -c "import secrets; print(secrets.token_hex(32))")
(umask 077 && echo "$token" >"$SG_TMP/policy-service.token")
sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_token_file "\"$SG_TMP/policy-service.token\""
# a token any user may read is no secret: refused by --check-config (and at start)
chmod 0644 "$SG_TMP/policy-service.token"
rc=0; out=$("$SG_BIN/smtpgovd" --check-config --config "$SG_TMP/smtpgovd.json" 2>&1) || rc=$?
assert_eq "$rc" 2 "--check-config with a world-readable token file (exit status)"
[[ $out == *"policy_service_token_file: $SG_TMP/policy-service.token: readable by every user"* ]] ||
    fail "--check-config did not name the token file: $out"
chmod 0600 "$SG_TMP/policy-service.token"
"$SG_BIN/smtpgovd" --check-config --config "$SG_TMP/smtpgovd.json" >/dev/null || fail "--check-config refused a good token"
sg_daemon_start "$SG_TMP/smtpgovd.json"

# proxy_events TYPE FAMILY: how many such events the log holds
proxy_events() {
    python3 - "$SG_TMP/state/events.jsonl" "$1" "$2" <<'PY'
import json, sys
print(sum(1 for l in open(sys.argv[1]) if (e := json.loads(l))["type"] == sys.argv[2]
          and e["evidence"].get("family") == sys.argv[3]))
PY
}
wait_proxy_event() {  # TYPE FAMILY: within 30 s (a guard; checks run every second)
    local i
    for ((i = 0; i < 300; i++)); do (($(proxy_events "$1" "$2") >= 1)) && return 0; sleep 0.1; done
    fail "no $1 event for $2 within 30 s: $(cat "$SG_TMP/state/events.jsonl")"
}

# session NS DST NAME: an SMTP client in a VM that connects to DST:25, reads the greeting,
# writes {"local", "greeting"} or {"error"} to $SG_TMP/NAME.json, and holds the session
# until $SG_TMP/NAME.go exists
session() {
    ip netns exec "$1" python3 - "$2" "$SG_TMP/$3.json" "$SG_TMP/$3.go" <<'PY' &
import json, os, socket, sys, time
dst, out, gate = sys.argv[1:4]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect((dst, 25))
    greeting = s.recv(512).decode(errors="replace").strip()
    local = s.getsockname()
    host = f"[{local[0]}]" if fam == socket.AF_INET6 else local[0]
    json.dump({"local": f"{host}:{local[1]}", "port": local[1], "greeting": greeting}, open(out + ".tmp", "w"))
except OSError as e:
    json.dump({"error": str(e)}, open(out + ".tmp", "w"))
    os.rename(out + ".tmp", out)
    sys.exit(0)
os.rename(out + ".tmp", out)
end = time.time() + 60
while not os.path.exists(gate) and time.time() < end:
    time.sleep(0.05)
s.sendall(b"QUIT\r\n")
s.recv(512)
PY
    sg_on_exit "kill $! 2>/dev/null"
    local i
    for ((i = 0; i < 150; i++)); do [[ -s $SG_TMP/$3.json ]] && return 0; sleep 0.1; done
    fail "session $3 did not report"
}

# ask [ATTR=VALUE...]: one policy request from an unprivileged user on the hypervisor;
# prints the answer's action
ask() {
    printf '%s\n' "$@" "" | nsenter --net="/run/netns/$SG_NS_HV" setpriv --reuid=65534 --regid=65534 --clear-groups \
        /usr/bin/python3 -c '
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(sys.stdin.buffer.read())
buf = b""
while not buf.endswith(b"\n\n"):
    d = s.recv(4096)
    if not d: break
    buf += d
print(buf.decode().strip())' "$svc"
}
access() { ask request=smtpd_access_policy protocol_state=RCPT "client_address=$1" "client_port=$2" recipient=x@example.net; }
# report ADDR PORT [VERDICT [TOKEN]]: the right token by default; "" for none
report() {
    local t=${4-$token}
    ask request=smtpgov_report "client_address=$1" "client_port=$2" "verdict=${3:-spam}" ${t:+"token=$t"}
}

# ---- the proxy is down (nothing on :2525): fail_mode block -----------------------------------
wait_proxy_event proxy_down ipv4
wait_proxy_event proxy_down ipv6
vm=$(sg_vm steered-vm)
assert_eq "$(json tier <<<"$vm")" steered "steered-vm's tier while the proxy is down"
assert_eq "$(json enforced <<<"$vm")" blocked "steered-vm's enforced tier (fail_mode block)"
session "$SG_VM1_NS" "${SG_INET_V4[0]}" down
grep -qi "refused" "$SG_TMP/down.json" || fail "the steered VM's connection was not reset: $(cat "$SG_TMP/down.json")"
assert_ge "$(json syn.block <<<"$(sg_vm_wait steered-vm syn.block 1 5)")" 1 "steered-vm SYNs blocked"

# ---- the proxy comes up: steering resumes -----------------------------------------------------
ip netns exec "$SG_NS_PROXY" python3 - "$SG_PROXY_V4" "$SG_PROXY_V6" <<'PY' &
import socket, sys, threading, time
def serve(c):
    try:
        c.sendall(b"220 sgb-greeter ESMTP\r\n")
        f = c.makefile("rb")
        for line in f:
            if line.upper().startswith(b"QUIT"):
                c.sendall(b"221 bye\r\n")
                break
            c.sendall(b"250 ok\r\n")
    except OSError:
        pass
    c.close()
def listen(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 2525))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
for fam, addr in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    threading.Thread(target=listen, args=(fam, addr), daemon=True).start()
time.sleep(120)                          # bounded: the test is over long before
PY
sg_on_exit "kill $! 2>/dev/null"
wait_proxy_event proxy_up ipv4
wait_proxy_event proxy_up ipv6
python3 - "$SG_TMP/state/events.jsonl" <<'PY' || fail "proxy events out of order"
import json, sys
evs = [e for e in map(json.loads, open(sys.argv[1])) if e["type"] in ("proxy_down", "proxy_up")]
for fam in ("ipv4", "ipv6"):
    order = [e["type"] for e in evs if e["evidence"]["family"] == fam]
    print(fam, order, file=sys.stderr)
    assert order == ["proxy_down", "proxy_up"], order
PY
assert_eq "$(json enforced <<<"$(sg_vm steered-vm)")" steered "steered-vm's enforced tier with the proxy up"

session "$SG_VM1_NS" "${SG_INET_V4[0]}" s4
session "$SG_VM1_NS" "${SG_INET_V6[0]}" s6
session "$SG_VM2_NS" "${SG_INET_V4[0]}" direct
log "sessions: $(cat "$SG_TMP/s4.json") $(cat "$SG_TMP/s6.json") $(cat "$SG_TMP/direct.json")"
grep -q "sgb-greeter" "$SG_TMP/s4.json" || fail "the steered IPv4 session did not reach the proxy"
grep -q "sgb-greeter" "$SG_TMP/s6.json" || fail "the steered IPv6 session did not reach the proxy"
! grep -q "sgb-greeter" "$SG_TMP/direct.json" || fail "the ok VM was steered"
p4=$(json port <"$SG_TMP/s4.json") p6=$(json port <"$SG_TMP/s6.json") pd=$(json port <"$SG_TMP/direct.json")

# ---- flow original-dst and the policy service --------------------------------------------------
od=$(sgctl flow original-dst "$SG_VM1_V4:$p4")
log "flow original-dst: $od"
assert_eq "$(json original <<<"$od")" "${SG_INET_V4[0]}:25" "flow original-dst (IPv4)"
assert_eq "$(json vm <<<"$od")" steered-vm "flow original-dst's VM"
assert_eq "$(json original <<<"$(sgctl flow original-dst "[$SG_VM1_V6]:$p6")")" "[${SG_INET_V6[0]}]:25" \
    "flow original-dst (IPv6)"
rc=0; sgctl flow original-dst "$SG_VM2_V4:$pd" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 1 "flow original-dst of a direct connection (exit status)"

assert_eq "$(access "$SG_VM1_V4" "$p4")" "action=FILTER smtp:[${SG_INET_V4[0]}]:25" "policy answer (IPv4)"
assert_eq "$(access "$SG_VM1_V6" "$p6")" "action=FILTER smtp:[${SG_INET_V6[0]}]:25" "policy answer (IPv6)"
assert_eq "$(access "$SG_VM2_V4" "$pd")" "action=DUNNO" "policy answer for a direct connection"
assert_eq "$(access 192.0.2.99 4242)" "action=DUNNO" "policy answer for an unknown client"
garbage=$(ask "this is no attribute")
[[ $garbage == action=DEFER_IF_PERMIT* ]] || fail "garbage was answered: $garbage"
log "ok: garbage -> $garbage"

score0=$(json score <<<"$(sg_vm steered-vm)")
for t in "" "${token:0:63}" "${token}0" "${token:0:63}$([[ ${token: -1} == a ]] && echo b || echo a)"; do
    assert_eq "$(report "$SG_VM1_V4" "$p4" spam "$t")" \
        "action=REJECT smtpgov: a report needs the policy service's token" "a report with token '$t'"
done
score_t=$(json score <<<"$(sg_vm steered-vm)")
python3 -c "import sys; sys.exit(0 if abs($score_t - $score0) < 1 else 1)" ||
    fail "reports without the token changed steered-vm's score: $score0 -> $score_t"
assert_eq "$(report "$SG_VM1_V4" "$p4")" "action=OK" "spam verdict for the steered connection"
score1=$(json score <<<"$(sg_vm steered-vm)")
python3 -c "import sys; sys.exit(0 if abs($score1 - $score0 - 50) < 1 else 1)" ||
    fail "the verdict did not add spam_report (50): $score0 -> $score1"
log "ok: steered-vm score $score0 -> $score1"
refused=$(report "$SG_VM2_V4" "$pd")
[[ $refused == "action=REJECT no live steered connection"* ]] || fail "a verdict on a direct connection: $refused"
assert_eq "$(json score <<<"$(sg_vm ok-vm)")" 0 "ok-vm's score after a refused verdict"
assert_eq "$(report "$SG_VM1_V6" "$p6" ham)" "action=OK" "ham verdict"

# ---- what reads show ----------------------------------------------------------------------------
sleep 2  # a whole pass of the connection table (one sweep for a table this small)
st=$(sgctl status)
assert_eq "$(json proxy.families.0.up <<<"$st")" True "status: IPv4 proxy up"
assert_eq "$(json proxy.fail_mode <<<"$st")" block "status: fail mode"
assert_ge "$(json connections.steered <<<"$st")" 2 "status: steered connections"
assert_eq "$(json connections.tracked <<<"$(sg_vm steered-vm)")" 2 "steered-vm's tracked connections"
m=$(nsenter --net="/run/netns/$SG_NS_HV" curl -sf "http://$SG_METRICS/metrics")
grep -qx 'smtpgov_proxy_up{family="ipv4"} 1' <<<"$m" || fail "smtpgov_proxy_up: $(grep proxy_up <<<"$m")"
grep -qx 'smtpgov_proxy_fail_mode_transitions_total{to="block"} 2' <<<"$m" ||
    fail "transitions: $(grep transitions <<<"$m")"
grep -qE '^smtpgov_connections_steered [2-9]' <<<"$m" || fail "smtpgov_connections_steered: $(grep connections <<<"$m")"
log "ok: metrics $(grep -E '^smtpgov_(proxy|connections)' <<<"$m" | tr '\n' ' ')"

touch "$SG_TMP"/{s4,s6,direct}.go
sg_daemon_stop
sg_testbed down
sg_assert_clean
