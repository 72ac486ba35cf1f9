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
