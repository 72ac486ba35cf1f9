#!/usr/bin/env bash
# Forged evidence moves nothing (issue 9; DESIGN "Connections the datapath tracks").
# From the internet, raw sockets send a VM that dialled nobody 1,500 bare RSTs (and
# RST+ACKs) from port 25, 500 SYN-ACKs and 300 unsolicited rejection segments ("554
# 5.7.1 ... blocked using Trend Micro RBL+", a 421, a Spamhaus XBL 554), over IPv4 and
# IPv6. They reach the VM (counted at its NIC), but its score, reply counters, tier,
# tickets, the webhook and the blocklist samples do not move. Then the same VM dials a
# blocklisting MX itself: those rejections, on its own connections, still count and
# name their blocklist.
source "$(dirname "$(readlink -f "$0")")/common.sh"
rejector=203.0.113.99
sgd_rejection_testbed sgcfg "$rejector" 5
sgd_rejection_policy "$SG_TMP/policy.json" "[$(st_vm victim 1), $(st_vm other 2)]"
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sgd_set_config "$SG_TMP/smtpgovd.json" webhook_url "\"http://127.0.0.1:$hook_port/tickets\""
sg_daemon_start "$SG_TMP/smtpgovd.json"

# what arrives at the victim's NIC from port 25 (after smtpgov's TC program)
ip netns exec "$SG_VM1_NS" nft -f - <<'NFT'
table netdev sgforge {
	counter from25 { }
	chain ingress {
		type filter hook ingress device "eth0" priority -500; policy accept;
		tcp sport 25 counter name "from25"
	}
}
NFT
arrived() {
    ip netns exec "$SG_VM1_NS" nft list counter netdev sgforge from25 |
        awk '/packets/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}'
}

# snapshot: what forged evidence must not move
snapshot() {
    local vm
    vm=$(sg_vm victim)
    python3 - "$vm" "$(st_events_of ticket victim)" "$(st_events_of tier_change victim)" \
        "$(st_metric smtpgov_remote_blocklist_samples_total)" "$(cat "$SG_TMP/hook.jsonl" 2>/dev/null | wc -l)" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
print(json.dumps({"score": v["score"], "tier": v["tier"], "replies": v.get("replies", {}),
                  "tickets": int(sys.argv[2]), "tier_changes": int(sys.argv[3]),
                  "blocklist_samples": int(sys.argv[4]), "webhook": int(sys.argv[5])}, sort_keys=True))
PY
}
before=$(snapshot)
log "before: $before"

v4=$(ip netns exec "$SG_NS_INET" python3 "$ST_DIR/forge.py" --src "${SG_INET_V4[0]}" --dst "$SG_VM1_V4") ||
    fail "forging over IPv4 failed"
log "forged over IPv4: $v4"
v6=$(ip netns exec "$SG_NS_INET" python3 "$ST_DIR/forge.py" --src "${SG_INET_V6[0]}" --dst "$SG_VM1_V6" \
    --rst 300 --synack 100 --reply 100) || fail "forging over IPv6 failed"
log "forged over IPv6: $v6"
total=$(python3 -c 'import json,sys; print(sum(sum(json.loads(a).values()) for a in sys.argv[1:]))' "$v4" "$v6")
sleep 1
got=$(arrived)
log "forged segments sent: $total, arrived at the VM's NIC: $got"
# (the proof that the test reached the TC program: nearly all of them got through)
assert_ge "$got" $((total * 9 / 10)) "forged segments that reached the VM"

sleep 2   # two sweeps at least
after=$(snapshot)
log "after:  $after"
[[ $after == "$before" ]] || fail "forged evidence moved something: before $before, after $after"
log "ok: forged RSTs, SYN-ACKs and replies moved nothing"

# the victim's own connections to a blocklisting MX still count and name the blocklist
samples0=$(st_metric smtpgov_remote_blocklist_samples_total)
sessions=$(sg_flood --netns "$SG_VM1_NS" smtp --dst "$rejector" --rate 10 --count 10 --timeout 3 --json)
log "victim's own sessions: $sessions"
assert_eq "$(json rejected <<<"$sessions")" 10 "sessions refused by the blocklisting MX"
vm=$(sg_vm_wait victim replies.5xx 10 5)
assert_eq "$(json replies.5xx <<<"$vm")" 10 "5xx replies counted on the victim's own connections"
assert_eq "$(json replies.synack <<<"$vm")" 10 "SYN-ACKs counted on the victim's own connections"
python3 -c "import sys; sys.exit(0 if $(json score <<<"$vm") > 0 else 1)" || fail "real rejections did not raise the score"
end=$((SECONDS + 5))
while (($(st_metric smtpgov_remote_blocklist_samples_total) <= samples0)) && ((SECONDS < end)); do sleep 0.2; done
lists=$(nsenter --net="/run/netns/$SG_NS_HV" curl -sf "http://$SG_METRICS/metrics" |
    grep '^smtpgov_remote_blocklist_samples_total' | grep -v ' 0$' || true)
log "blocklist samples: $(tr '\n' ' ' <<<"$lists")"
grep -qE 'blocklist="(Spamhaus XBL|Spamhaus PBL|Trend Micro RBL\+|Yahoo BL21 \(Spamhaus PBL\))"' <<<"$lists" ||
    fail "the real rejections name no blocklist"
assert_eq "$(json score <<<"$(sg_vm other)")" 0 "the other VM's score"

sg_daemon_stop
sg_testbed down
sg_assert_clean
