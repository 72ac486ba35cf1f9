#!/usr/bin/env python3
"""Stand-ins for smtpgovd fleet agents, for the smtpgovctl fleet tests (cli.sh).

    fake_hosts.py ENDPOINT PREFIX MODEFILE

MODEFILE is re-read every 100 ms; one line per host: `HOST live|lost apply|refuse|silent [REASON]`.
A `live` host holds <prefix>/hosts/<host>/live under a lease (TTL 5 s, kept alive);
a `lost` one has none. On every new global value (<prefix>/policy/global) a host in
mode `apply` writes its status with policy_serial = the global's serial, `refuse` writes
refused = {serial, reason} and keeps its previous serial, `silent` writes nothing.
Talks to etcd's v3 JSON gateway, like smtpgovd; the status is core/fleet.h HostStatus.
"""
import base64
import json
import sys
import time
import urllib.request
from urllib.parse import quote

EP, PREFIX, MODEFILE = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]


def b64(s):
    return base64.b64encode(s.encode()).decode()


def call(path, body):
    req = urllib.request.Request(EP + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as r:
        return json.load(r)


def get(key):
    kvs = call("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def put(key, value, lease=None):
    body = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = lease
    call("/v3/kv/put", body)


def esc(h):
    return quote(h, safe="._-")


leases = {}     # host -> lease id
status = {}     # host -> the status last written
seen = {}       # host -> the last serial it acted on
last_keepalive = 0.0

while True:
    try:
        modes = {}
        with open(MODEFILE) as f:
            for line in f:
                w = line.split(None, 3)
                if len(w) >= 3:
                    modes[w[0]] = (w[1], w[2], w[3].strip() if len(w) > 3 else "refused by the test")
        now = time.time()
        for h, (live, mode, reason) in modes.items():
            if live == "live" and h not in leases:
                leases[h] = call("/v3/lease/grant", {"TTL": "5"})["ID"]
                put(f"{PREFIX}/hosts/{esc(h)}/live", json.dumps({"host": h}), leases[h])
            elif live != "live" and h in leases:
                call("/v3/lease/revoke", {"ID": leases.pop(h)})
        if now - last_keepalive > 1:
            for h, lid in leases.items():
                call("/v3/lease/keepalive", {"ID": lid})
            last_keepalive = now
        g = get(f"{PREFIX}/policy/global")
        serial = json.loads(g)["fleet"]["serial"] if g else 0
        for h, (live, mode, reason) in modes.items():
            if mode == "silent" or serial == 0 or seen.get(h) == serial:
                continue
            st = status.get(h) or {"host": h, "version": "fake", "policy_serial": 0, "policy_revision": 0,
                                   "applied_at_ms": 0, "refused": None, "vms": 0,
                                   "tiers": {"ok": 0, "throttled": 0, "steered": 0, "blocked": 0},
                                   "last_sweep_ms": 0, "last_seen_ms": 0}
            if mode == "apply":
                st["policy_serial"] = serial
                st["applied_at_ms"] = int(now * 1000)
                st["vms"] = 2
                st["tiers"] = {"ok": 2, "throttled": 0, "steered": 0, "blocked": 0}
            else:
                st["refused"] = {"serial": serial, "reason": reason}
            st["last_seen_ms"] = int(now * 1000)
            put(f"{PREFIX}/hosts/{esc(h)}/status", json.dumps(st))
            status[h] = st
            seen[h] = serial
    except Exception as e:  # etcd restarting, a mode file being rewritten: next round
        print(f"fake_hosts: {e}", file=sys.stderr)
    time.sleep(0.1)
