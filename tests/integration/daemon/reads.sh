#!/usr/bin/env bash
# Reads are reads: while a VM's refused sessions wait for the next sweep (60 s away),
# vm show, vm list, status, policy get and events show the fresh counters but decide
# nothing: no tier change, no event, no ticket, no webhook. (smtpgovd used to run a
# mini-sweep and an evaluation on vm show, so a read could escalate a VM.)
source "$(dirname "$(readlink -f "$0")")/common.sh"
rejector=203.0.113.98
sgd_rejection_testbed dmrd "$rejector" 3
# 30 refusals x 2 points = 60: enough for steered (40) at the next evaluation
sgd_rejection_policy "$SG_TMP/policy.json" "[{\"id\": \"sender\", \"tenant\": \"acme\", \"interface\": \"$SG_VM1_IF\",
  \"addresses\": [\"$SG_VM1_V4/32\"], \"rate\": 50, \"burst\": 60}]"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sgd_set_config "$SG_TMP/smtpgovd.json" webhook_url "\"http://127.0.0.1:$hook_port/tickets\""
sgd_set_config "$SG_TMP/smtpgovd.json" sweep_interval_ms 60000
sg_daemon_start "$SG_TMP/smtpgovd.json"

sessions=$(sg_flood --netns "$SG_VM1_NS" smtp --dst "$rejector" --rate 20 --count 30 --timeout 3 --json)
assert_eq "$(json rejected <<<"$sessions")" 30 "sessions refused by the blocklisting MX"
for ((i = 0; i < 10; i++)); do
    vm=$(sg_vm sender)
    sgctl vm list >/dev/null
    sgctl vm list --tier ok >/dev/null
    sgctl status >/dev/null
    sgctl policy get >/dev/null
    sgctl events >/dev/null
done
log "sender after the reads: $vm"
assert_eq "$(json replies.5xx <<<"$vm")" 30 "5xx replies in vm show (a fresh reading)"
assert_eq "$(json tier <<<"$vm")" ok "tier after the reads"
assert_eq "$(json score <<<"$vm")" 0 "score after the reads"
assert_eq "$(sgd_events_of sender tier_change)" 0 "tier changes written by reads"
assert_eq "$(sgd_events_of sender ticket)" 0 "tickets written by reads"
sleep 1  # the webhook posts off the loop thread
[[ ! -s $SG_TMP/hook.jsonl ]] || fail "a read fired the webhook: $(cat "$SG_TMP/hook.jsonl")"
log "ok: no webhook call"

sg_daemon_stop
sg_testbed down
sg_assert_clean
