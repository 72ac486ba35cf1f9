#!/usr/bin/env bash
# Helpers of the smtpgovd integration tests, on top of tests/integration/lib.sh.
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"

# sgd_policy FILE [PORTS_JSON]: the two-VM policy used by these tests: "sender" (vm1)
# rate 20 burst 40, "spammer" (vm2) rate 20 burst 40; fast reputation (2 s half-life)
sgd_policy() {
    local file=$1 ports=${2:-[25, 465, 587]}
    cat >"$file" <<JSON
{
  "smtp_ports": $ports,
  "defaults": {"rate": 10, "burst": 20, "over_limit": "drop"},
  "reputation": {"half_life_s": 2, "min_dwell_s": 1, "hysteresis": 0.5},
  "vms": [
    {"id": "sender", "tenant": "test", "interface": "$SG_VM1_IF",
     "addresses": ["$SG_VM1_V4/32", "$SG_VM1_V6/128"], "rate": 20, "burst": 40},
    {"id": "spammer", "tenant": "test", "interface": "$SG_VM2_IF",
     "addresses": ["$SG_VM2_V4/32", "$SG_VM2_V6/128"], "rate": 20, "burst": 40}
  ]
}
JSON
}

# sgd_field JSON_FILE_OR_- PATH (jq-like dotted path)
sgd_iface() {  # sgd_iface NAME FIELD: a field of the interface in `status`
    sgctl status | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(next((i[sys.argv[2]] for i in s["interfaces"] if i["name"] == sys.argv[1]), ""))' "$1" "$2"
}

# sgd_wait_tier ID TIER TIMEOUT_S: until `vm show ID` reports TIER
sgd_wait_tier() {
    local id=$1 want=$2 t=$3 i
    for ((i = 0; i < t * 10; i++)); do
        [[ $(json tier <<<"$(sg_vm "$id")") == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

# sgd_events_of ID TYPE: number of events of that type for the VM in events.jsonl
sgd_events_of() {
    python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    n += e["vm"] == sys.argv[2] and e["type"] == sys.argv[3]
print(n)' "$SG_TMP/state/events.jsonl" "$1" "$2"
}

# sgd_rejector ADDR N: a blocklisting MX on ADDR:25 in the internet namespace, refusing
# every client in its greeting with the first N replies of the rejection corpus
sgd_rejector() {
    ip -n "$SG_NS_INET" addr add "$1/32" dev eth0
    cut -f2 "$SG_SRC/tests/data/smtp-rejections.tsv" | grep -v '^#' | head -"$2" >"$SG_TMP/replies.txt"
    ip netns exec "$SG_NS_INET" python3 - "$1" "$SG_TMP/replies.txt" <<'PY' &
import socket, sys
lines = [l.strip() for l in open(sys.argv[2]) if l.strip()]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 25))
srv.listen(64)
srv.settimeout(60)                       # bounded: the test is over long before
n = 0
while True:
    try:
        c, (peer, _) = srv.accept()
    except socket.timeout:
        break
    text = lines[n % len(lines)].replace("1.2.3.4", peer)
    c.sendall(("554 " + text + "\r\n").encode())
    c.close()
    n += 1
PY
    sg_on_exit "kill $! 2>/dev/null"
}

# sgd_webhook_receiver PORT FILE: an HTTP receiver on the hypervisor's loopback (where
# smtpgovd runs) appending each POSTed body as one line of FILE
sgd_webhook_receiver() {
    nsenter --net="/run/netns/$SG_NS_HV" python3 - "$1" "$2" <<'PY' &
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
s.timeout = 1
end = time.time() + 120                  # bounded: the test is over long before
while time.time() < end:
    s.handle_request()
PY
    sg_on_exit "kill $! 2>/dev/null"
}

# sgd_set_config FILE KEY JSON_VALUE: one key of a daemon config file
sgd_set_config() {
    python3 - "$@" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c[sys.argv[2]] = json.loads(sys.argv[3])
json.dump(c, open(sys.argv[1], "w"))
PY
}

# ---- mixed load: floods and legitimate mail at once (kill9.sh, soak.sh) ----------
# sgd_mixed_policy FILE: three VMs on a `--vms 3` testbed, fast reputation:
#   "sender"    (vm1) rate 50 burst 100: legitimate mail
#   "spammer"   (vm2) rate 20 burst 40, pinned to ok: it runs at its limit all along, so
#               the receiver's bound (burst + rate x duration) is tight
#   "escalator" (vm3) rate 20 burst 40, unpinned: escalates and decays while it floods
sgd_mixed_policy() {
    cat >"$1" <<JSON
{
  "smtp_ports": [25, 465, 587],
  "defaults": {"rate": 10, "burst": 20, "over_limit": "drop"},
  "reputation": {"half_life_s": 2, "min_dwell_s": 1, "hysteresis": 0.5},
  "vms": [
    {"id": "sender", "tenant": "test", "interface": "$SG_VM1_IF",
     "addresses": ["$SG_VM1_V4/32", "$SG_VM1_V6/128"], "rate": 50, "burst": 100},
    {"id": "spammer", "tenant": "test", "interface": "$SG_VM2_IF",
     "addresses": ["$SG_VM2_V4/32", "$SG_VM2_V6/128"], "rate": 20, "burst": 40, "tier": "ok"},
    {"id": "escalator", "tenant": "test", "interface": "$SG_VM3_IF",
     "addresses": ["$SG_VM3_V4/32", "$SG_VM3_V6/128"], "rate": 20, "burst": 40}
  ]
}
JSON
}

# sgd_load_start MAX_S [SPAM_RATE] [MAIL_RATE]: in the background until sgd_load_stop (or
# MAX_S): "spammer" floods SYNs to IPv4 port 25 (default 4,000/s), "escalator" to IPv6
# port 25 (a quarter of that), "sender" sends real mail to the MX on 587 (default 3/s).
# The receiver's counters are read first, so each flood is told apart by family.
sgd_load_start() {
    local max=$1 rate=${2:-4000} mail=${3:-3}
    SGD_LOAD_V4=$(sg_syncount --family 4 --port 25)
    SGD_LOAD_V6=$(sg_syncount --family 6 --port 25)
    SGD_LOAD_MAIL=$(sg_delivered)
    "$SG_FLOOD" --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate "$rate" \
        --duration "$max" --json >"$SG_TMP/load-spammer.json" 2>"$SG_TMP/load-spammer.err" &
    SGD_LOAD_PIDS=($!)
    "$SG_FLOOD" --netns "$SG_VM3_NS" syn --dst "${SG_INET_V6[0]}" --rate $((rate / 4)) \
        --duration "$max" --json >"$SG_TMP/load-escalator.json" 2>"$SG_TMP/load-escalator.err" &
    SGD_LOAD_PIDS+=($!)
    "$SG_FLOOD" --netns "$SG_VM1_NS" smtp --dst "${SG_INET_V4[2]}" --dport 587 --rate "$mail" \
        --duration "$max" --json >"$SG_TMP/load-sender.json" 2>"$SG_TMP/load-sender.err" &
    SGD_LOAD_PIDS+=($!)
    sg_on_exit 'sgd_load_kill'
    log "load started: spammer $rate SYN/s (v4), escalator $((rate / 4)) SYN/s (v6), sender $mail msg/s (587)"
}
sgd_load_kill() { local p; for p in "${SGD_LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null; done; SGD_LOAD_PIDS=(); }

# sgd_load_stop: SIGINT to the generators (they finish the sessions in flight and print
# their summaries), then wait for them; fails if one failed.
sgd_load_stop() {
    local p
    for p in "${SGD_LOAD_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${SGD_LOAD_PIDS[@]}"; do
        wait "$p" || { cat "$SG_TMP"/load-*.err >&2; fail "a load generator failed"; }
    done
    SGD_LOAD_PIDS=()
    log "spammer:   $(cat "$SG_TMP/load-spammer.json")"
    log "escalator: $(cat "$SG_TMP/load-escalator.json")"
    log "sender:    $(cat "$SG_TMP/load-sender.json")"
}

# sgd_load_check: after sgd_load_stop, at the receiver: each flood's SYNs within what
# its limits in the policy in force allow over its measured duration ((burst + rate x
# duration) x 1.02), each flood ran at (nearly) its rate all along, and every legitimate
# message was accepted and delivered. Sets SGD_SPAM_{RX,BOUND} and SGD_MAIL_OK.
sgd_load_check() {
    local policy vm fam rx bound sent dur target sessions
    policy=$(sgctl policy get)
    for vm in spammer escalator; do
        if [[ $vm == spammer ]]; then fam=4; else fam=6; fi
        sleep 0.2   # the last SYNs in flight
        rx=$(($(sg_syncount --family $fam --port 25) - $([[ $fam == 4 ]] && echo "$SGD_LOAD_V4" || echo "$SGD_LOAD_V6")))
        sent=$(json sent <"$SG_TMP/load-$vm.json")
        dur=$(json duration_s <"$SG_TMP/load-$vm.json")
        target=$(json target_rate <"$SG_TMP/load-$vm.json")
        bound=$(python3 -c '
import json, sys
v = next(v for v in json.loads(sys.argv[1])["vms"] if v["id"] == sys.argv[2])
print(int((v["burst"] + v["rate"] * float(sys.argv[3])) * 1.02))' "$policy" "$vm" "$dur")
        log "$vm: $sent SYNs sent in ${dur} s, $rx at the receiver, bound $bound"
        assert_ge "$sent" "$(python3 -c "print(int($target * $dur * 0.95))")" "$vm SYNs sent (95% of rate x duration)"
        assert_le "$rx" "$bound" "$vm SYNs at the receiver, (burst + rate x ${dur} s) x 1.02"
        [[ $vm == spammer ]] && SGD_SPAM_RX=$rx SGD_SPAM_BOUND=$bound
    done
    sessions=$(json sessions <"$SG_TMP/load-sender.json")
    SGD_MAIL_OK=$(json ok <"$SG_TMP/load-sender.json")
    assert_ge "$sessions" 1 "legit sessions started"
    assert_eq "$SGD_MAIL_OK" "$sessions" "legit messages accepted (of $sessions sessions)"
    wait_delivered $((SGD_LOAD_MAIL + sessions)) 20 || true
    assert_eq $(($(sg_delivered) - SGD_LOAD_MAIL)) "$sessions" "legit messages delivered at the sink"
}

# sgd_counters ID...: one JSON object {ID: {counter: N}} of the VMs' counters that must
# never go backwards (syn.*, replies.*, spoofed, rst_sent), from `vm show`
sgd_counters() {
    local id out="{"
    for id in "$@"; do out+="\"$id\": $(sg_vm "$id"),"; done
    python3 -c '
import json, sys
vms = json.loads(sys.argv[1])
out = {}
for id, v in vms.items():
    c = {f"syn.{k}": n for k, n in v["syn"].items()}
    c.update({f"replies.{k}": n for k, n in v.get("replies", {}).items()})
    for k in ("spoofed", "rst_sent"):
        if k in v:
            c[k] = v[k]
    out[id] = c
print(json.dumps(out))' "${out%,}}"
}

# sgd_assert_monotonic BEFORE AFTER WHAT: no counter of sgd_counters went backwards
sgd_assert_monotonic() {
    python3 - "$1" "$2" "$3" <<'PY' || fail "a counter went backwards ($3)"
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
bad = [f"{id}.{k}: {n} -> {b.get(id, {}).get(k)}" for id, c in a.items() for k, n in c.items()
       if b.get(id, {}).get(k) is None or b[id][k] < n]
if bad:
    print("; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

# sgd_rejection_testbed PREFIX REJECTOR N: a 2-VM testbed with a blocklisting MX on
# REJECTOR (first N corpus replies) and a webhook receiver (port in $hook_port, bodies
# in $SG_TMP/hook.jsonl)
sgd_rejection_testbed() {
    sg_init "$1"
    sg_testbed --vms 2 up
    eval "$(sg_testbed env)"
    sgd_rejector "$2" "$3"
    hook_port=$((20000 + RANDOM % 20000))
    sgd_webhook_receiver "$hook_port" "$SG_TMP/hook.jsonl"
}

# sgd_rejection_policy FILE VMS_JSON: remote rejections alone escalate (2 points each,
# steered at 40); the tiers keep the VM's own limits so that escalation does not stop
# the sessions under test
sgd_rejection_policy() {
    cat >"$1" <<JSON
{
  "tiers": {"throttled": {"rate": 100, "burst": 100}, "steered": {"rate": 100, "burst": 100}},
  "reputation": {"half_life_s": 600, "thresholds": {"throttled": 20, "steered": 40, "blocked": 100000},
                 "weights": {"remote_reject": 2}},
  "vms": $2
}
JSON
}

# sgd_lone_ns IF: no testbed, a namespace of its own ($SG_PREFIX-hv, removed on exit)
# with lo up and one veth pair IF0/IF1 inside it (the daemon attaches IF0). Sets NS.
sgd_lone_ns() {
    NS=$SG_PREFIX-hv
    ip netns add "$NS"
    sg_on_exit 'ip netns del "$NS" 2>/dev/null'
    ip -n "$NS" link set lo up
    ip -n "$NS" link add "${1}0" type veth peer name "${1}1"
    ip -n "$NS" link set "${1}0" up
    ip -n "$NS" link set "${1}1" up
}
