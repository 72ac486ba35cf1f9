#!/usr/bin/env bash
# A real Prometheus (Debian's prometheus, on 127.0.0.1 with a temporary TSDB and
# deploy/prometheus's config pointed at the test daemon's metrics port; both run in the
# testbed's hypervisor namespace, whose loopback the daemon listens on) scrapes smtpgovd
# during a testbed flood. Through its HTTP API the test finds smtpgov_smtp_syn_total
# rising for the flooding VM, smtpgov_vm_tier showing its escalation while the quiet VM
# stays ok, the alert rules loaded and healthy, and every dashboard query valid.
source "$(dirname "$0")/../lib.sh"
sg_init opsprom
command -v prometheus >/dev/null || fail "prometheus not installed (deploy/install-deps.sh)"
sg_testbed up --vms 2 >/dev/null
eval "$(sg_testbed env)"

policy=$SG_TMP/policy.json
cat >"$policy" <<JSON
{"defaults": {"rate": 10, "burst": 20},
 "vms": [{"id": "vm1", "tenant": "acme", "interface": "$SG_VM1_IF"},
         {"id": "vm2", "tenant": "acme", "interface": "$SG_VM2_IF"}]}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$policy" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

# deploy/'s scrape config, pointed at this daemon and scraping every second
prom_port=$((40000 + RANDOM % 20000))
mkdir -p "$SG_TMP/prom/data"
cp "$SG_SRC/deploy/prometheus/smtpgov.rules.yml" "$SG_TMP/prom/"
sed -e "s/127.0.0.1:9464/$SG_METRICS/" -e 's/scrape_interval: 5s/scrape_interval: 1s/' \
    -e 's/evaluation_interval: 5s/evaluation_interval: 1s/' -e 's/scrape_timeout: 4s/scrape_timeout: 900ms/' \
    "$SG_SRC/deploy/prometheus/prometheus.yml" >"$SG_TMP/prom/prometheus.yml"
grep -q "$SG_METRICS" "$SG_TMP/prom/prometheus.yml" || fail "scrape target not rewritten"
promtool check config "$SG_TMP/prom/prometheus.yml" >/dev/null
hv() { nsenter --net="/run/netns/$SG_NS_HV" "$@"; }
hv prometheus --config.file="$SG_TMP/prom/prometheus.yml" --storage.tsdb.path="$SG_TMP/prom/data" \
    --web.listen-address="127.0.0.1:$prom_port" >"$SG_TMP/prom/log" 2>&1 &
prom_pid=$!
sg_on_exit "kill $prom_pid 2>/dev/null; wait $prom_pid 2>/dev/null"
PROM=http://127.0.0.1:$prom_port

# q PROMQL: prints the first sample's value ("" when the result is empty)
q() {
    hv curl -sfG "$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "success", r
res = r["data"]["result"]
print(res[0]["value"][1] if res else "")'
}
# wait_for PROMQL SECONDS: until the query returns a non-empty result
wait_for() {
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        [[ -n $(q "$1" 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    fail "Prometheus: no result for $1 within $2 s"
}

wait_for 'up{job="smtpgov"} == 1' 30
log "ok: Prometheus scrapes smtpgovd at $SG_METRICS"
wait_for 'smtpgov_vm_tier{vm="vm1",tier="ok"} == 1' 20
wait_for 'smtpgov_build_info == 1' 5
before=$(q 'sum(smtpgov_smtp_syn_total{vm="vm1"})')
before=${before:-0}

log "flooding from vm1 for 15 s"
sg_flood --netns "$SG_VM1_NS" syn --dst "${SG_INET_V4[0]}" --rate 3000 --duration 15 --json >"$SG_TMP/flood.json"
sleep 4  # a few more sweeps and scrapes

after=$(q 'sum(smtpgov_smtp_syn_total{vm="vm1"})')
log "smtpgov_smtp_syn_total{vm=vm1}: $before -> $after"
python3 -c "import sys; sys.exit(0 if float('$after') >= float('$before') + 10000 else 1)" ||
    fail "smtpgov_smtp_syn_total for vm1 did not rise by 10000 ($before -> $after)"
[[ -n $(q 'increase(smtpgov_smtp_syn_total{vm="vm1",verdict=~"throttle|block"}[1m]) > 0') ]] ||
    fail "no refused SYNs of vm1 seen by Prometheus"
[[ -n $(q 'max_over_time(smtpgov_smtp_syn_total{vm="vm1"}[1m]) >= 0') ]] || fail "no syn series"

escalated=$(q 'max(max_over_time(smtpgov_vm_tier{vm="vm1",tier=~"throttled|steered|blocked"}[2m]))')
assert_eq "$escalated" 1 "vm1 escalated above tier ok (max_over_time smtpgov_vm_tier)"
log "vm1 tiers seen: $(hv curl -sfG "$PROM/api/v1/query" --data-urlencode \
    'query=max_over_time(smtpgov_vm_tier{vm="vm1"}[2m]) == 1' | python3 -c '
import json, sys; print(sorted(r["metric"]["tier"] for r in json.load(sys.stdin)["data"]["result"]))')"
assert_eq "$(q 'min_over_time(smtpgov_vm_tier{vm="vm2",tier="ok"}[2m])')" 1 "vm2 stayed at tier ok"
[[ -n $(q 'increase(smtpgov_smtp_syn_total{vm="vm2"}[2m]) == 0') ]] || fail "vm2 was charged for vm1's flood"

# the alert rules are loaded and evaluate without errors
n_rules=$(grep -c -- '- alert:' "$SG_SRC/deploy/prometheus/smtpgov.rules.yml")
hv curl -sf "$PROM/api/v1/rules" | python3 -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
assert len(rules) == int(sys.argv[1]), [r["name"] for r in rules]
bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
assert not bad, bad
print("rules healthy:", ", ".join(r["name"] for r in rules))' "$n_rules" || fail "alert rules not healthy"

# every dashboard query parses and runs against the real data
hv python3 - "$SG_SRC/deploy/grafana/smtpgov.json" "$PROM" <<'PY' || fail "dashboard queries failed"
import json, sys, urllib.parse, urllib.request
d = json.load(open(sys.argv[1]))
n = 0
for p in d["panels"]:
    for t in p["targets"]:
        expr = (t["expr"].replace("$instance", ".*").replace("$vm", ".*")
                .replace("$__rate_interval", "1m"))
        url = sys.argv[2] + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        r = json.load(urllib.request.urlopen(url))
        assert r["status"] == "success", (p["title"], expr, r)
        n += 1
print(f"{n} dashboard queries ok")
PY
log "ok: real Prometheus saw the flood and the escalation"
