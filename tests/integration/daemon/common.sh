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
