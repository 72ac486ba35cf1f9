#!/usr/bin/env bash
# deploy/prometheus and deploy/grafana: promtool accepts the config and the alert rules,
# the rules' unit tests pass, and the dashboard is valid JSON with a Prometheus
# datasource variable used by every panel.
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
prom=$src/deploy/prometheus

promtool check config "$prom/prometheus.yml"
promtool check rules "$prom/smtpgov.rules.yml"
(cd "$prom" && promtool test rules smtpgov.rules.test.yml)

python3 - "$src/deploy/grafana/smtpgov.json" "$prom/smtpgov.rules.yml" "$src" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
vars_ = {v["name"]: v for v in d["templating"]["list"]}
ds = vars_.get("datasource")
assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", "no Prometheus datasource variable"
titles = [p["title"] for p in d["panels"]]
for want in ("SYN rate per VM", "Verdicts", "Tier per VM", "Tickets", "Remote rejections", "DNSBL: listed addresses"):
    assert any(want in t for t in titles), f"no panel {want!r}: {titles}"
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
for p in d["panels"]:
    assert p["datasource"]["uid"] == "${datasource}", p["title"]
    assert p["targets"], p["title"]
    for t in p["targets"]:
        assert t["datasource"]["uid"] == "${datasource}", p["title"]
        assert re.search(r"smtpgov_|\bup\b", t["expr"]), t["expr"]
# every metric the rules use is one the exporter serves (or Prometheus' own up)
rules = open(sys.argv[2]).read()
import glob
served = set()
for src in glob.glob(sys.argv[3] + "/controller/metrics/*.cpp"):
    served |= set(re.findall(r'"(smtpgov_[a-z_]+)"', open(src).read()))
assert "smtpgov_smtp_syn_total" in served, "exporter sources not found"
used = set(re.findall(r"smtpgov_[a-z_]+", rules))
assert used <= served, used - served
print(f"dashboard: {len(d['panels'])} panels ok; rules use {sorted(used)}")
PY
