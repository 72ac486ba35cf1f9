#!/usr/bin/env bash
# The README demo, one command as root on a fresh Debian 12 machine:
#   install the dependencies, build, bring up a private testbed (prefix "demo"),
#   start smtpgovd on the hypervisor's VM interfaces, then
#   - vm1 "mail-server" sends real mail at 5 messages/s: every message is delivered;
#   - vm2 "spammer" bursts 8,000 SMTP SYN/s for 4 s: smtpgov holds it to 20/s (burst 40);
#   print the governor's view once a second, and a summary;
#   - vm3 "quiet-vm" is set to steered: its mail goes through the scanning proxy
#     (deploy/proxy/run.sh: Postfix + rspamd), a clean message is relayed from the
#     quarantine egress address, a GTUBE message is refused and raises its score;
#   tear everything down.
# Environment: SG_DEMO_SECONDS (flood length, default 4), SG_XDP_MODE (default native),
# SMTPGOV_BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
root=$PWD

[[ $EUID -eq 0 ]] || { echo "demo.sh: run as root (XDP, network namespaces)" >&2; exit 1; }

flood_s=${SG_DEMO_SECONDS:-4}
build=${SMTPGOV_BUILD_DIR:-build}
prefix=demo
bpffs=/sys/fs/bpf/smtpgov-demo
tmp=$(mktemp -d /tmp/smtpgov-demo.XXXXXX)
sock=$tmp/ctl.sock
daemon_pid=""
bg_pids=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
testbed() { "$root/deploy/testbed.sh" --prefix "$prefix" "$@"; }
ctl() { "$root/$build/bin/smtpgovctl" --socket "$sock" --json "$@"; }
flood() { "$root/$build/bin/smtpgov-flood" "$@"; }

cleanup() {
    local rc=$?
    set +e
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    if [[ -n $daemon_pid ]]; then
        kill "$daemon_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    [[ -n ${proxy_state:-} ]] && "$root/deploy/proxy/run.sh" stop --netns "$SG_NS_PROXY" --state "$proxy_state" >/dev/null 2>&1
    testbed down >/dev/null 2>&1
    rm -rf "$bpffs"
    ((rc)) && [[ -f $tmp/smtpgovd.log ]] && { echo "--- smtpgovd log (last 20 lines)"; tail -20 "$tmp/smtpgovd.log"; }
    rm -rf "$tmp"
    ((rc)) && echo "demo failed (exit $rc); everything it started is gone" >&2
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "dependencies and build"
deploy/install-deps.sh
tests/ensure-bpffs.sh
echo "building smtpgovd, smtpgovctl and smtpgov-flood into $build/bin (log: $tmp/build.log)"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$build" -j"$(nproc)" --target smtpgovd smtpgovctl smtpgov-flood xdp_pass_bpf_gen; } >"$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log" >&2
    echo "demo: the build failed (full log above: $tmp/build.log)" >&2
    exit 1
fi

say "testbed: hypervisor, 3 VMs, internet (Postfix sink), scanning proxy"
testbed down >/dev/null 2>&1 || true
export SG_FLOOD=$root/$build/bin/smtpgov-flood
testbed --vms 3 --no-proxy-sink up
eval "$(testbed env)"
# the reference scanning proxy in the proxy namespace (rspamd offline: no DNS there);
# smtpgovd's policy service listens on the hypervisor's side of the proxy link
proxy_state=$SG_STATE/scanproxy
# the token the proxy's verdicts must carry: readable by root and the reporter (_rspamd)
token=$SG_STATE/policy-service.token
(umask 077 && python3 -c "import secrets; print(secrets.token_hex(32))" >"$token")
chgrp _rspamd "$token" && chmod 0640 "$token"
"$root/deploy/proxy/run.sh" start --netns "$SG_NS_PROXY" --state "$proxy_state" --name demo-proxy \
    --listen "$SG_PROXY_V4,$SG_PROXY_V6" --policy "$SG_HV_PROXY_V4:10040" \
    --clients 198.18.0.0/16,fd00:5e:0::/48 --egress "$SG_EGRESS_V4,$SG_EGRESS_V6" \
    --hs-cache "$root/$build/proxy-hs-cache" --offline --token-file "$token"

cat >"$tmp/policy.json" <<JSON
{
  "smtp_ports": [25, 465, 587],
  "defaults": {"rate": 10, "burst": 20, "over_limit": "drop"},
  "tiers": {"throttled": {"rate": 2, "burst": 5}, "blocked": {"action": "reset"}},
  "proxy": {"address": ["$SG_PROXY_V4:25", "[$SG_PROXY_V6]:25"], "fail_mode": "throttle",
            "ports": [25], "check_interval_s": 2, "egress": ["$SG_EGRESS_V4", "$SG_EGRESS_V6"]},
  "vms": [
    {"id": "mail-server", "tenant": "acme", "interface": "$SG_VM1_IF",
     "addresses": ["$SG_VM1_V4/32", "$SG_VM1_V6/128"], "rate": 50, "burst": 100},
    {"id": "spammer", "tenant": "mallory", "interface": "$SG_VM2_IF",
     "addresses": ["$SG_VM2_V4/32", "$SG_VM2_V6/128"], "rate": 20, "burst": 40},
    {"id": "quiet-vm", "tenant": "acme", "interface": "$SG_VM3_IF",
     "addresses": ["$SG_VM3_V4/32", "$SG_VM3_V6/128"]}
  ]
}
JSON
cat >"$tmp/smtpgovd.json" <<JSON
{
  "interfaces": ["$SG_VM1_IF", "$SG_VM2_IF", "$SG_VM3_IF"],
  "xdp_mode": "${SG_XDP_MODE:-native}",
  "bpffs": "$bpffs",
  "state_dir": "$tmp/state",
  "socket": "$sock",
  "metrics_listen": "127.0.0.1:$((20000 + RANDOM % 20000))",
  "policy_service_listen": "$SG_HV_PROXY_V4:10040",
  "policy_service_token_file": "$token",
  "policy": "$tmp/policy.json"
}
JSON
mkdir -p "$tmp/state"

say "smtpgovd on $SG_VM1_IF $SG_VM2_IF $SG_VM3_IF (in netns $SG_NS_HV)"
# nsenter switches only the network namespace: the bpffs pins stay on the host's bpffs
nsenter --net="/run/netns/$SG_NS_HV" "$root/$build/bin/smtpgovd" --config "$tmp/smtpgovd.json" \
    >"$tmp/smtpgovd.log" 2>&1 &
daemon_pid=$!
for i in $(seq 100); do
    kill -0 "$daemon_pid" 2>/dev/null || { echo "smtpgovd exited" >&2; exit 1; }
    ctl status >/dev/null 2>&1 && break
    ((i == 100)) && { echo "smtpgovd did not answer within 10 s" >&2; exit 1; }
    sleep 0.1
done
ctl status | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("  xdp mode %s; " % s.get("xdp_mode"), ", ".join(
    "%s%s" % (i["name"], "" if i.get("attached") else " (NOT attached)") for i in s.get("interfaces", [])))'

mail_count=$(((flood_s + 4) * 5))
syn_before=$(testbed syncount --port 25)
mail_before=$(testbed delivered)

say "mail-server: $mail_count real messages at 5/s to ${SG_INET_V4[2]}:587"
flood --netns "$SG_VM1_NS" smtp --dst "${SG_INET_V4[2]}" --dport 587 --rate 5 --count "$mail_count" \
    --json >"$tmp/mail.json" &
mail_pid=$!
bg_pids+=("$mail_pid")
sleep 1

say "spammer: 8,000 SMTP SYN/s for ${flood_s} s to ${SG_INET_V4[0]}:25"
flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --dport 25 --rate 8000 --duration "$flood_s" \
    --json >"$tmp/spam.json" &
spam_pid=$!
bg_pids+=("$spam_pid")

# once a second: one line per VM, then any new tier changes and tickets
watch_once() {
    ctl vm list >"$tmp/vms.json" 2>/dev/null || return 0
    ctl events >"$tmp/events.json" 2>/dev/null || true
    python3 - "$tmp/vms.json" "$tmp/events.json" "$tmp/seen" <<'PY'
import json, os, sys, time
vms = json.load(open(sys.argv[1]))
print(time.strftime("%H:%M:%S"), "  ".join(
    "%s[%s] %5.0f/s score %5.0f pass %d thr %d blk %d" % (v["id"], v["tier"], v.get("rate", 0), v.get("score", 0),
                                                           v["syn"]["pass"], v["syn"]["throttle"], v["syn"]["block"])
    for v in vms))
try:
    raw = open(sys.argv[2]).read().strip()
    events = json.loads(raw) if raw.startswith("[") else [json.loads(l) for l in raw.splitlines() if l]
except (OSError, ValueError):
    events = []
seen = set(open(sys.argv[3]).read().split()) if os.path.exists(sys.argv[3]) else set()
with open(sys.argv[3], "a") as out:
    for e in events:
        key = "%s:%s:%s" % (e.get("ts_ms"), e.get("vm"), e.get("type"))
        if key in seen:
            continue
        out.write(key + "\n")
        ev = e.get("evidence", {})
        # kernel timestamps: the burst event of the first over-limit SYN, and the decision
        took = ("  %.1f ms after the first over-limit SYN" % ((ev["decided_ts_ns"] - ev["trigger_ts_ns"]) / 1e6)
                if "decided_ts_ns" in ev and "trigger_ts_ns" in ev else "")
        print("         %s %s: %s -> %s at score %.0f [%s]%s" % (e.get("type"), e.get("vm"), e.get("from"), e.get("to"),
                                                               e.get("score", 0), e.get("reason", ""), took))
PY
}
while kill -0 "$spam_pid" 2>/dev/null || kill -0 "$mail_pid" 2>/dev/null; do
    watch_once
    sleep 1
done
wait "$spam_pid" || { echo "the flood generator failed" >&2; exit 1; }
wait "$mail_pid" || { echo "the mail generator failed" >&2; exit 1; }
bg_pids=()
watch_once

# deliveries trail the SMTP sessions by the sink's queue manager
mail_ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$tmp/mail.json")
for _ in $(seq 100); do
    (($(testbed delivered) - mail_before >= mail_ok)) && break
    sleep 0.1
done
sleep 0.5
syn_after=$(testbed syncount --port 25)
delivered=$(($(testbed delivered) - mail_before))

say "summary"
ctl vm show spammer >"$tmp/spammer.json"
python3 - "$tmp/spam.json" "$tmp/mail.json" "$tmp/spammer.json" "$((syn_after - syn_before))" "$delivered" <<'PY'
import json, sys
spam, mail, vm = (json.load(open(p)) for p in sys.argv[1:4])
received, delivered = int(sys.argv[4]), int(sys.argv[5])
s = vm["syn"]
print("spammer:     %d SYNs sent in %.1f s (%.0f/s, %s); smtpgov passed %d, throttled %d, blocked %d;"
      % (spam["sent"], spam["duration_s"], spam["rate"], spam["method"], s["pass"], s["throttle"], s["block"]))
print("             %d reached the internet (limit 20/s, burst 40); tier now: %s" % (received, vm["tier"]))
first = next((t for t in vm.get("tickets", []) if "trigger_ts_ns" in t.get("evidence", {})), None)
if first:
    ev = first["evidence"]
    print("             escalated %s -> %s %.1f ms after its first over-limit SYN"
          % (first["from"], first["to"], (ev["decided_ts_ns"] - ev["trigger_ts_ns"]) / 1e6))
print("mail-server: %d messages sent, %d accepted, %d delivered at the sink (reset %d, timed out %d, rejected %d)"
      % (mail["sessions"], mail["ok"], delivered, mail["reset"], mail["timed_out"], mail["rejected"]))
PY
say "quiet-vm set to steered: its port-25 mail goes through the scanning proxy"
ctl vm set-tier quiet-vm steered >/dev/null
sink_log=$SG_STATE/inet/maillog
sink_client() { # the sink's client for the message whose Message-ID has $1
    python3 - "$sink_log" "$1" <<'PY'
import re, sys
qc, found = {}, ""
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"\]: ([0-9A-F]+): client=\S*\[([^\]]+)\]", line)
    if m: qc[m.group(1)] = m.group(2)
    m = re.search(r"\]: ([0-9A-F]+): message-id=<([^>]*)>", line)
    if m and sys.argv[2] in m.group(2): found = qc.get(m.group(1), "?")
print(found)
PY
}
swaks_from_quiet() { # swaks_from_quiet MSGID [swaks args]: the replies it got, one line
    local id=$1
    shift
    ip netns exec "$SG_VM3_NS" timeout 60 swaks --server "${SG_INET_V4[0]}" --from vm@acme.example \
        --to someone@example.net --header "Message-Id: <$id@acme.example>" --hide-informational "$@" 2>&1 |
        grep -E '^(<-|<\*\*|\*\*\*) ' | grep -v '^<-  250-' | sed 's/^/    /' || true
}
echo "  a clean message to ${SG_INET_V4[0]}:25 (the VM sees a normal session with that address):"
swaks_from_quiet demo-clean
for _ in $(seq 100); do [[ -n $(sink_client demo-clean) ]] && break; sleep 0.1; done
echo "  the internet sink got it from $(sink_client demo-clean) (the quarantine egress), not from $SG_VM3_V4"
score0=$(ctl vm show quiet-vm | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["score"]))')
echo "  a GTUBE (test spam) message: rspamd refuses it in the session"
swaks_from_quiet demo-spam --body "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
score1=$score0
for _ in $(seq 50); do
    score1=$(ctl vm show quiet-vm | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["score"]))')
    ((score1 > score0)) && break
    sleep 0.1
done
echo "  rspamd's verdict went back to smtpgovd by client ADDR:PORT: quiet-vm's score $score0 -> $score1"
"$root/deploy/proxy/run.sh" stop --netns "$SG_NS_PROXY" --state "$proxy_state" >/dev/null

say "tearing down"
