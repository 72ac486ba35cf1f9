#!/usr/bin/env bash
# smtpgovd escalates a VM that floods 8,000 SYN/s (ring-buffer fast path), writes a
# ticket with evidence, and lets it recover once the burst stops and the score decays.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmesc
sg_testbed --vms 2 up
eval "$(sg_testbed env)"
sgd_policy "$SG_TMP/policy.json"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

flood=$(sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate 8000 --duration 2 --json)
log "flood: $flood"
vm=$(sg_vm spammer)
log "spammer: $vm"
assert_eq "$(json tier <<<"$vm")" blocked "tier after an 8,000/s burst"
assert_ge "$(sgd_events_of spammer ticket)" 1 "tickets for the spammer"
assert_eq "$(json tier <<<"$(sg_vm sender)")" ok "the quiet VM's tier"
ticket=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["type"] == "ticket" and e["vm"] == "spammer": print(json.dumps(e)); break' "$SG_TMP/state/events.jsonl")
log "ticket: $ticket"
assert_ge "$(json evidence.syn.throttle <<<"$ticket")" 1 "ticket evidence: refused SYNs"
[[ $(json tenant <<<"$ticket") == test ]] || fail "ticket without tenant"
# escalation answered the ring-buffer event, not the next 1 s sweep
first=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["type"] == "tier_change" and e["vm"] == "spammer" and "trigger_ts_ns" in e["evidence"]:
        print((e["evidence"]["decided_ts_ns"] - e["evidence"]["trigger_ts_ns"]) // 1000000); break' "$SG_TMP/state/events.jsonl")
assert_le "$first" 100 "ms from the first over-limit SYN to the first escalation"
# blocked means reset: the VM's own stack gets the RST built by XDP and fails at once
# (an MTA queues the mail instead of waiting for SYN timeouts)
outcome=$(ip netns exec "$SG_VM2_NS" python3 -c '
import socket, sys, time
t = time.monotonic()
try:
    socket.create_connection((sys.argv[1], 25), timeout=3).close(); print("connected")
except ConnectionRefusedError:
    print("refused %d" % ((time.monotonic() - t) * 1000))
except OSError as e:
    print("error %s" % e)' "${SG_INET_V4[0]}")
log "a real connect() from the blocked VM: $outcome"
[[ $outcome == refused* ]] || fail "the blocked VM's connect was not refused by the RST: $outcome"
assert_le "${outcome#refused }" 500 "ms until the blocked VM's connect() is refused"

# recovery: 2 s half-life, 1 s dwell; one tier at a time down to ok
sgd_wait_tier spammer ok 60 || fail "spammer did not recover: $(sg_vm spammer)"
assert_ge "$(sgd_events_of spammer ticket)" 2 "tickets (escalation + recovery)"
policy_tier=$(bpftool map lookup pinned "$SG_BPFFS/maps/sg_vm_policy" key 1 0 0 0 -j 2>/dev/null |
    python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["formatted"]["value"]["tier"] if "formatted" in v else int(v["value"][8], 16))')
assert_eq "$policy_tier" 0 "tier in sg_vm_policy after recovery"
# a recovered VM passes mail again
before=$(json syn.pass <<<"$(sg_vm spammer)")
after=$(sg_flood --netns "$SG_VM2_NS" syn --dst "${SG_INET_V4[0]}" --rate 10 --count 10 --json)
assert_eq "$(json syn.pass <<<"$(sg_vm_wait spammer syn.pass $((before + 10)))")" "$((before + 10))" "SYNs passed after recovery"

sg_daemon_stop
sg_testbed down
sg_assert_clean
