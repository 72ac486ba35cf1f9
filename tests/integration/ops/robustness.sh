#!/usr/bin/env bash
# Issue 10 against a running smtpgovd (items 4 and 5, the control-socket and /metrics
# parts): a 100,001-VM policy with addresses (max_vms raised) is applied through
# smtpgovctl; then 1,000 idle TCP connections from an unprivileged user on /metrics,
# slow, garbage and 100 MB clients on both, and 1,000 connections on the control socket:
# a scrape and a `status` still answer within 2 s; no request on the metrics port
# changes anything.
source "$(dirname "$0")/../lib.sh"
sg_init rb
sg_testbed up --vms 1 >/dev/null
eval "$(sg_testbed env)"
CTL=$SG_BIN/smtpgovctl
hv() { nsenter --net="/run/netns/$SG_NS_HV" "$@"; }

policy=$SG_TMP/policy.json
small=$SG_TMP/small.json
cat >"$small" <<JSON
{"defaults": {"rate": 10, "burst": 20},
 "vms": [{"id": "vm1", "tenant": "acme", "interface": "$SG_VM1_IF", "addresses": ["$SG_VM1_V4"]}]}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$small" "$SG_VM1_IF"
python3 - "$SG_TMP/smtpgovd.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["max_vms"] = 131072
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF
sg_daemon_start "$SG_TMP/smtpgovd.json"

# ---- a fleet-size policy through the CLI ----
python3 - "$policy" "$SG_VM1_IF" "$SG_VM1_V4" <<'EOF'
import json, sys
path, if1, v4 = sys.argv[1:]
vms = [{"id": "vm1", "tenant": "acme", "interface": if1, "addresses": [v4]}]
for i in range(100000):
    vms.append({"id": "fleet-%06d" % i, "tenant": "t%03d" % (i % 500), "interface": "fx%06d" % i,
                "addresses": ["10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255),
                              "2001:db8:%x:%x::/64" % (i >> 16, i & 0xffff)],
                "rate": 10 + i % 7, "burst": 20 + i % 11})
json.dump({"defaults": {"rate": 10, "burst": 20}, "vms": vms}, open(path, "w"))
EOF
log "policy: $(python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]) // 1000000)' "$policy") MB, 100,001 VMs"
t0=$(date +%s.%N)
"$CTL" --socket "$SG_SOCKET" --json policy apply "$policy" >"$SG_TMP/apply.json" 2>"$SG_TMP/apply.err" ||
    fail "policy apply of 100,001 VMs: exit $?: $(cat "$SG_TMP/apply.err")"
log "ok: 100,001-VM policy applied through smtpgovctl in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
assert_eq "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["added"]))' "$SG_TMP/apply.json")" \
    100000 "VMs added"
assert_eq "$(sgctl status | json vms)" 100001 "VMs in status"

# ---- hostile clients ----
# 1,000 idle/partial/garbage TCP connections to /metrics from uid 65534, held open
# (its stdout is a file root opened: the test's temp dir is root's alone)
hv setpriv --reuid=65534 --regid=65534 --clear-groups -- /usr/bin/python3 - "${SG_METRICS##*:}" \
    >"$SG_TMP/held" <<'EOF' &
import os, socket, sys, time
port = int(sys.argv[1])
assert os.getuid() == 65534
held = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    if i % 3 == 1: s.send(b"GET /metr")
    if i % 3 == 2: s.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    held.append(s)
print("ready", flush=True)
time.sleep(600)
EOF
holder=$!
sg_on_exit "kill $holder 2>/dev/null"
# uid 65534 cannot even connect to the control socket: its mode is 0600 (SO_PEERCRED
# refuses it behind that, tests/unit control_server_test). The temp dir is opened for
# traversal meanwhile, so that the socket's mode is what refuses.
chmod 0711 "$SG_TMP"
hv setpriv --reuid=65534 --regid=65534 --clear-groups -- /usr/bin/python3 -c '
import socket, sys
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1]); sys.exit(1)
except PermissionError:
    pass' "$SG_SOCKET" || fail "uid 65534 could connect to the control socket"
chmod 0700 "$SG_TMP"
log "ok: uid 65534 cannot connect to the control socket"
# root on the control socket: 1,000 idle connections, a trickle, garbage, a 100 MB request
python3 - "$SG_SOCKET" <<'EOF' &
import socket, sys, threading, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); return s
idle = [conn() for _ in range(1000)]
g = conn(); g.sendall(b"\x00\xff garbage\n")
def trickle():
    s = conn()
    for _ in range(200):
        try: s.send(b"{"); time.sleep(0.05)
        except OSError: return
def hundred():
    s = conn()
    try: s.sendall(b'{"cmd":"status","pad":"' + b"p" * 100_000_000 + b'"}\n'); s.recv(100)
    except OSError: pass
ts = [threading.Thread(target=f) for f in (trickle, hundred)]
for t in ts: t.start()
for t in ts: t.join()
time.sleep(5)
EOF
rooted=$!
sg_on_exit "kill $rooted 2>/dev/null"
# 100 MB to the metrics port, twice
hv python3 - "${SG_METRICS##*:}" <<'EOF' &
import socket, sys
for head in (b"", b"POST /metrics HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n"):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(head + b"A" * 100_000_000)
    except OSError: pass
EOF
flooder=$!
sg_on_exit "kill $flooder 2>/dev/null"

worst_scrape=0 worst_status=0
slower() { python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$1" "$2"; }
for ((i = 0; i < 40; i++)); do
    t=$(hv curl -s -o "$SG_TMP/scrape" -w '%{time_total}' --max-time 5 "http://$SG_METRICS/metrics") ||
        fail "scrape $i failed (curl exit $?)"
    grep -q '^smtpgov_build_info' "$SG_TMP/scrape" || fail "scrape $i has no smtpgov_build_info"
    worst_scrape=$(slower "$worst_scrape" "$t")
    t0=$(date +%s.%N)
    sgctl status >/dev/null || fail "status $i failed"
    worst_status=$(slower "$worst_status" "$(python3 -c "print($(date +%s.%N) - $t0)")")
    sleep 0.1
done
grep -q ready "$SG_TMP/held" || fail "the unprivileged holder did not open its 1,000 connections"
log "slowest scrape ${worst_scrape} s, slowest status ${worst_status} s (40 each, under hostile clients)"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 2 else 1)" "$worst_scrape" || fail "a scrape took >= 2 s"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 2 else 1)" "$worst_status" || fail "a status took >= 2 s"
log "ok: scrape and status within 2 s"

# ---- no state change via /metrics ----
before=$(sgctl vm show vm1 | json tier)
for m in POST PUT DELETE PATCH; do
    code=$(hv curl -s -o /dev/null -w '%{http_code}' -X "$m" -d '{"cmd":"vm.set_tier","id":"vm1","tier":"blocked"}' \
        "http://$SG_METRICS/metrics")
    assert_eq "$code" 405 "$m /metrics"
    code=$(hv curl -s -o /dev/null -w '%{http_code}' -X "$m" -d '{"cmd":"policy.apply","policy":{"vms":[]}}' \
        "http://$SG_METRICS/policy")
    assert_eq "$code" 404 "$m /policy"
done
assert_eq "$(sgctl vm show vm1 | json tier)" "$before" "vm1's tier after requests on the metrics port"
assert_eq "$(sgctl status | json vms)" 100001 "VMs after requests on the metrics port"
