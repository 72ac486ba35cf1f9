#!/usr/bin/env bash
# What remote servers answer feeds the governor: a VM whose SMTP sessions are refused by
# a blocklisting server (real replies from ../shared/data/smtp-rejections.tsv) gets its
# 5xx replies counted by the TC return-path program, earns a reputation from them alone
# (it never exceeds its rate), is escalated, and the ticket carries the sampled reply
# lines as evidence; the ticket is also POSTed to the configured webhook.
source "$(dirname "$(readlink -f "$0")")/common.sh"
rejector=203.0.113.99
sgd_rejection_testbed dmrep "$rejector" 5
sgd_rejection_policy "$SG_TMP/policy.json" "[
  {\"id\": \"sender\", \"tenant\": \"acme\", \"interface\": \"$SG_VM1_IF\", \"addresses\": [\"$SG_VM1_V4/32\"], \"rate\": 20, \"burst\": 40},
  {\"id\": \"quiet\", \"tenant\": \"acme\", \"interface\": \"$SG_VM2_IF\", \"addresses\": [\"$SG_VM2_V4/32\"]}]"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sgd_set_config "$SG_TMP/smtpgovd.json" webhook_url "\"http://127.0.0.1:$hook_port/tickets\""
sg_daemon_start "$SG_TMP/smtpgovd.json"

sessions=$(sg_flood --netns "$SG_VM1_NS" smtp --dst "$rejector" --rate 10 --count 30 --timeout 3 --json)
log "sessions: $sessions"
assert_eq "$(json rejected <<<"$sessions")" 30 "sessions refused by the blocklisting MX"

vm=$(sg_vm_wait sender replies.5xx 30 5)
log "sender: $vm"
assert_eq "$(json replies.5xx <<<"$vm")" 30 "5xx replies counted on the return path"
assert_eq "$(json replies.synack <<<"$vm")" 30 "SYN-ACKs counted on the return path"
assert_eq "$(json syn.throttle <<<"$vm")" 0 "SYNs throttled (the VM stayed within its rate)"
sgd_wait_tier sender steered 5 || fail "remote rejections did not escalate the VM: $(sg_vm sender)"
assert_eq "$(json tier <<<"$(sg_vm quiet)")" ok "the other VM's tier"

ticket=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["type"] == "ticket" and e["vm"] == "sender" and e["to"] == "steered": print(json.dumps(e)); break' \
    "$SG_TMP/state/events.jsonl")
[[ -n $ticket ]] || fail "no ticket for the escalation to steered"
log "ticket: $ticket"
assert_eq "$(json tenant <<<"$ticket")" acme "ticket tenant"
samples=$(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])["evidence"]["samples"]))' "$ticket")
grep -q "^554 " <<<"$samples" || fail "ticket evidence has no sampled 554 reply: $samples"
grep -q "$SG_VM1_V4" <<<"$samples" || fail "sampled replies do not name the VM's address: $samples"
lists=$(python3 -c 'import json,sys; print(",".join(json.loads(sys.argv[1])["evidence"]["blocklists"]))' "$ticket")
log "blocklists named in the ticket: $lists"
[[ $lists == *"Spamhaus XBL"* || $lists == *"Spamhaus PBL"* || $lists == *"Trend Micro RBL+"* ]] ||
    fail "the ticket names no blocklist: $lists"

# and Prometheus hears that the host is being blocklisted
metrics=$(nsenter --net="/run/netns/$SG_NS_HV" curl -sf "http://$SG_METRICS/metrics" | grep '^smtpgov_remote_blocklist_samples_total')
log "metrics: $(tr '\n' ' ' <<<"$metrics")"
grep -qE 'blocklist="(Spamhaus XBL|Spamhaus PBL|Trend Micro RBL\+)"} [1-9]' <<<"$metrics" ||
    fail "smtpgov_remote_blocklist_samples_total counts no blocklist"

# the webhook got the same ticket (delivered off the sweep thread, with retries)
for ((i = 0; i < 50; i++)); do [[ -s $SG_TMP/hook.jsonl ]] && break; sleep 0.1; done
[[ -s $SG_TMP/hook.jsonl ]] || fail "the webhook received nothing"
hook=$(head -1 "$SG_TMP/hook.jsonl")
log "webhook: $hook"
assert_eq "$(json vm <<<"$hook")" sender "webhook ticket VM"
assert_eq "$(json to <<<"$hook")" steered "webhook ticket tier"
assert_eq "$(json type <<<"$hook")" ticket "webhook event type"

sg_daemon_stop
sg_testbed down
sg_assert_clean
