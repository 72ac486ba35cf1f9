#!/usr/bin/env python3
"""The smtpgov policy of a tools/bench/run.sh row: a realistic one with VMS registered VMs.

  policy.py --vms N --rate R --burst B --flood-if IF --flood-addr A [--gateway PREFIX]
            [--legit-if IF --legit-addr A] > policy.json

The flooding VM ("flood": hypervisor mode, named by its interface; or, with --gateway,
"gateway": every source in PREFIX on a gateway interface) has rate R / burst B and is
pinned to `ok`, so its bucket alone decides what passes (expected = burst + rate x s).
The legitimate VM ("legit") gets 10x that. The rest are ordinary tenants' VMs with one
IPv4 address each (172.16.0.0/12), limits as operators set them (10-59/s), unpinned.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--burst", type=int, required=True)
    ap.add_argument("--flood-if")
    ap.add_argument("--flood-addr")
    ap.add_argument("--gateway")
    ap.add_argument("--legit-if")
    ap.add_argument("--legit-addr")
    a = ap.parse_args()
    vms = []
    if a.gateway:
        vms.append({"id": "gateway", "tenant": "bench", "addresses": [a.gateway],
                    "rate": a.rate, "burst": a.burst, "tier": "ok"})
    else:
        vms.append({"id": "flood", "tenant": "bench", "interface": a.flood_if,
                    "addresses": [a.flood_addr + "/32"], "rate": a.rate, "burst": a.burst, "tier": "ok"})
    if a.legit_if:
        vms.append({"id": "legit", "tenant": "bench", "interface": a.legit_if,
                    "addresses": [a.legit_addr + "/32"], "rate": a.rate * 10, "burst": a.burst * 10, "tier": "ok"})
    if a.vms < len(vms):
        sys.exit(f"policy.py: --vms {a.vms} is fewer than the {len(vms)} VMs the scenario needs")
    for i in range(a.vms - len(vms)):
        vms.append({"id": f"vm-{i}", "tenant": f"t{i % 100}",
                    "addresses": [f"172.{16 + (i >> 16 & 15)}.{i >> 8 & 255}.{i & 255}/32"],
                    "rate": 10 + i % 50, "burst": 20 + i % 100})
    json.dump({"smtp_ports": [25, 465, 587],
               "defaults": {"rate": a.rate, "burst": a.burst, "over_limit": "drop"},
               "vms": vms}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
