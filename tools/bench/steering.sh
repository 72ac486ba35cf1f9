#!/usr/bin/env bash
# Steered SMTP sessions per second, through the scanning proxy versus direct (issue 9).
#
#   tools/bench/steering.sh [--quick] [--rounds R] [--sessions N] [--concurrency C]
#   (root; SG_BIN, default build/bin; SG_NS_TAG is prepended to the testbed's prefix)
#
# One VM of the netns testbed (deploy/testbed.sh --no-proxy-sink) sends N complete SMTP
# sessions (greeting, EHLO, MAIL, RCPT, DATA with a small clean message, QUIT) with C
# parallel clients (smtp_sessions.py) to the internet namespace's Postfix sink, in rounds
# that alternate the VM's tier: `ok` (direct: smtpgov passes the SYNs) and `steered`
# (smtpgov rewrites them to the reference scanning proxy, deploy/proxy/run.sh: Postfix +
# rspamd as milter, which asks smtpgovd's policy service for the original destination
# and relays from the quarantine egress address). Every round is checked: smtpgovd's
# SYN counters moved by the sessions under `pass` (direct) or `steer` (steered) and not
# the other, and the sink received every ok session's message, from the VM's own address
# (direct) or from the quarantine egress address (steered). A session's latency is the
# client's, from connect to the reply to QUIT (steered: the proxy answers the end of
# DATA after rspamd's scan; its relay to the sink happens after the session).
# Default: 5 rounds of each mode, 300 sessions, 16 clients; --quick: 3 rounds, 60, 8.
source "$(dirname "$(readlink -f "$0")")/../../tests/integration/steering/common.sh"

rounds=5 sessions=300 conc=16
while (($#)); do
    case $1 in
        --quick) rounds=3 sessions=60 conc=8; shift ;;
        --rounds) rounds=$2; shift 2 ;;
        --sessions) sessions=$2; shift 2 ;;
        --concurrency) conc=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "steering.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
((rounds >= 1 && sessions >= 1 && conc >= 1)) || { echo "steering.sh: rounds, sessions, concurrency >= 1" >&2; exit 2; }
# bounds: a round's sessions finish within this or count as failed; the sink gets them within that
round_deadline_s=$((60 + sessions / 2)) relay_wait_s=$((60 + sessions / 5))

st_testbed sgbst 1
sink=${SG_INET_V4[0]}
cat >"$SG_TMP/policy.json" <<JSON
{
  "smtp_ports": [25, 465, 587],
  "defaults": {"rate": 100000, "burst": 100000, "over_limit": "drop"},
  "tiers": {"throttled": {"rate": 100000, "burst": 100000}, "steered": {"rate": 100000, "burst": 100000}},
  "proxy": {"address": ["$SG_PROXY_V4:25", "[$SG_PROXY_V6]:25"], "fail_mode": "block",
            "ports": [25], "check_interval_s": 1, "egress": ["$SG_EGRESS_V4", "$SG_EGRESS_V6"]},
  "vms": [$(st_vm bench-vm 1 '"rate": 100000, "burst": 100000')]
}
JSON
st_proxy_start
st_daemon "$SG_TMP/policy.json" "$SG_VM1_IF"

syn_of() { json "syn.$2" <<<"$1"; }

# sink_clients TAG: "COUNT CLIENT_ADDR" per client of the sink's messages whose Message-ID has TAG-
sink_clients() {
    python3 - "$SG_STATE/inet/maillog" "$1" <<'PY'
import collections, re, sys
qid_client, per = {}, collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"\]: ([0-9A-F]+): client=\S*\[([^\]]+)\]", line)
    if m:
        qid_client[m.group(1)] = m.group(2)
    m = re.search(r"\]: ([0-9A-F]+): message-id=<([^>]*)>", line)
    if m and m.group(2).startswith(sys.argv[2] + "-"):
        per[qid_client.get(m.group(1), "?")] += 1
for client, n in per.items():
    print(n, client)
PY
}

# round MODE R: one round; appends its result (JSON) to $SG_TMP/results.jsonl
round() {
    local mode=$1 r=$2 tag counter other want_client vm before_c before_o out ok after_c after_o got n i
    tag=bench-$mode-$r
    if [[ $mode == direct ]]; then
        sgctl vm set-tier bench-vm ok >/dev/null
        sgd_wait_tier bench-vm ok 10 || fail "bench-vm is not ok"
        counter=pass other=steer want_client=$SG_VM1_V4
    else
        sgctl vm set-tier bench-vm steered >/dev/null
        sgd_wait_tier bench-vm steered 10 || fail "bench-vm is not steered"
        counter=steer other=pass want_client=$SG_EGRESS_V4
    fi
    vm=$(sg_vm bench-vm)
    before_c=$(syn_of "$vm" $counter) before_o=$(syn_of "$vm" $other)
    out=$(ip netns exec "$SG_VM1_NS" timeout $((round_deadline_s + 30)) python3 "$(dirname "$(readlink -f "$0")")/smtp_sessions.py" \
        --dst "$sink" --sessions "$sessions" --concurrency "$conc" --tag "$tag" --deadline-s "$round_deadline_s") ||
        fail "the session client of round $tag failed"
    ok=$(json ok <<<"$out")
    # every ok session's SYN judged under the mode's verdict (retransmitted SYNs count too)
    vm=$(sg_vm_wait bench-vm "syn.$counter" $((before_c + ok)) 10)
    after_c=$(syn_of "$vm" $counter) after_o=$(syn_of "$vm" $other)
    (( after_c - before_c >= ok )) || fail "$tag: $ok sessions ok but syn.$counter moved by $((after_c - before_c))"
    (( after_o == before_o )) || fail "$tag: syn.$other moved by $((after_o - before_o)) (expected 0)"
    # the sink got every ok session's message, each from the expected address
    for ((i = 0; i < relay_wait_s * 5; i++)); do
        got=$(sink_clients "$tag" | awk '{s += $1} END {print s + 0}')
        ((got >= ok)) && break
        sleep 0.2
    done
    ((got >= ok)) || fail "$tag: the sink received $got of $ok messages within ${relay_wait_s} s"
    n=$(sink_clients "$tag" | awk -v c="$want_client" '$2 == c {s += $1} END {print s + 0}')
    ((n == got)) || fail "$tag: the sink's clients for the round were $(sink_clients "$tag" | tr '\n' ' ') (all expected from $want_client)"
    log "$tag: $(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print("%d/%d ok in %.2f s, errors %s" % (d["ok"], d["sessions"], d["elapsed_s"], d["errors"]))' "$out"), syn.$counter +$((after_c - before_c)), syn.$other +0, sink got $got from $want_client"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(mode=sys.argv[2], syn=int(sys.argv[3]), delivered=int(sys.argv[4])); print(json.dumps(d))' \
        "$out" "$mode" $((after_c - before_c)) "$got" >>"$SG_TMP/results.jsonl"
}

log "rounds: $rounds of each mode, $sessions sessions each, $conc clients, VM $SG_VM1_V4 -> $sink:25"
# one warm-up session per mode (rspamd's first scan, the ARP/ND, Postfix's first processes)
for mode in steered direct; do
    [[ $mode == direct ]] && t=ok || t=steered
    sgctl vm set-tier bench-vm $t >/dev/null
    sgd_wait_tier bench-vm $t 10 || fail "bench-vm is not $t"
    ip netns exec "$SG_VM1_NS" timeout 60 python3 "$(dirname "$(readlink -f "$0")")/smtp_sessions.py" \
        --dst "$sink" --sessions 2 --concurrency 1 --tag "warmup-$mode" --deadline-s 50 >/dev/null
done
for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then round direct "$r"; round steered "$r"; else round steered "$r"; round direct "$r"; fi
done

python3 - "$SG_TMP/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def pct(v, p):
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
print()
print("| mode | rounds | sessions | ok | failed | sessions/s min / median / max | latency p50 ms | latency p99 ms |")
print("|---|---|---|---|---|---|---|---|")
for mode in ("direct", "steered"):
    rs = [r for r in rows if r["mode"] == mode]
    rates = sorted(r["ok"] / r["elapsed_s"] for r in rs)
    lat = sorted(x for r in rs for x in r["latency_ms"])
    print(f"| {mode} | {len(rs)} | {sum(r['sessions'] for r in rs)} | {sum(r['ok'] for r in rs)} | "
          f"{sum(r['failed'] for r in rs)} | {rates[0]:.1f} / {statistics.median(rates):.1f} / {rates[-1]:.1f} | "
          f"{pct(lat, 50):.1f} | {pct(lat, 99):.1f} |")
d = statistics.median(sorted(r["ok"] / r["elapsed_s"] for r in rows if r["mode"] == "direct"))
s = statistics.median(sorted(r["ok"] / r["elapsed_s"] for r in rows if r["mode"] == "steered"))
print(f"\nsteered / direct (medians): {s / d:.2f}x")
PY

sg_daemon_stop
st_proxy_stop
sg_testbed down >/dev/null
