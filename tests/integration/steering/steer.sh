#!/usr/bin/env bash
# Steering to the reference scanning proxy (issue 9), end to end with real mail:
# - a VM pinned `steered` sends mail with swaks to an internet server: swaks completes
#   with 250, the VM's TCP peer is the address it dialled, the proxy (Postfix + rspamd)
#   received the session from the VM's own address, and the internet sink got the mail
#   from the quarantine egress address, not from the VM;
# - while a session is open, `smtpgovctl flow original-dst` names the address the VM
#   dialled; the VM is set to `ok` mid-session and the session still completes through
#   the proxy; the VM's next session (ok now) goes direct;
# - an `ok` VM is never steered; a steered VM's port 587 is not steered (TLS/AUTH);
# - IPv6 steering, and steering of a VM whose link carries 802.1Q-tagged frames;
# - the proxy is no open relay: a client outside the VMs' space is refused at RCPT.
source "$(dirname "$(readlink -f "$0")")/common.sh"
st_testbed sgcst 3 --vlan-vm 3
st_policy "$SG_TMP/policy.json" "[
  $(st_vm steered-vm 1 '"tier": "steered"'),
  $(st_vm ok-vm 2 '"tier": "ok"'),
  $(st_vm vlan-vm 3 '"tier": "steered"')]"
st_proxy_start
st_daemon "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF" "$SG_VM3_IF"
sink_v4=${SG_INET_V4[0]} sink_v6=${SG_INET_V6[0]}

# ---- 1. a steered VM's mail goes through the proxy and leaves from the egress address ----
out=$(st_swaks "$SG_VM1_NS" "$sink_v4" --header "Message-Id: <st-v4@customer.example>") ||
    { echo "$out" >&2; fail "swaks from the steered VM failed"; }
log "swaks (steered, IPv4): $(grep -E '^(<-|<\*\*) ' <<<"$out" | grep -v '^<-  250-' | tr '\n' '|')"
grep -q "^<-  250 .*queued" <<<"$out" || fail "swaks did not get 250 for its message"
st_proxy_saw "$SG_VM1_V4" || fail "the proxy never had a session from $SG_VM1_V4"
client=$(st_wait_relayed st-v4 30) || fail "the sink never got the steered message"
assert_eq "$client" "$SG_EGRESS_V4" "the sink's client for the steered message (the quarantine egress)"
st_sink_log | grep -qF "connect from unknown[$SG_VM1_V4]" && fail "the steered VM reached the sink directly"
vm=$(sg_vm_wait steered-vm syn.steer 1 5)
assert_ge "$(json syn.steer <<<"$vm")" 1 "steered-vm SYNs steered"
assert_eq "$(json syn.pass <<<"$vm")" 0 "steered-vm SYNs passed direct"

# ---- 2. original-dst while the session is open; a tier change mid-session ----------------
st_session "$SG_VM1_NS" "${SG_INET_V4[1]}" held
conn=$(cat "$SG_TMP/held.conn")
log "held session: $conn"
assert_eq "$(json peer <<<"$conn")" "${SG_INET_V4[1]}:25" "the peer the VM's socket sees"
local_port=$(json local <<<"$conn" | sed 's/.*://')
od=$(sgctl flow original-dst "$SG_VM1_V4:$local_port") || fail "flow original-dst $SG_VM1_V4:$local_port failed: $od"
log "flow original-dst $SG_VM1_V4:$local_port: $od"
grep -qF "${SG_INET_V4[1]}:25" <<<"$od" || fail "flow original-dst does not name ${SG_INET_V4[1]}:25: $od"
st_proxy_log | grep -qF "connect from unknown[$SG_VM1_V4]:$local_port" ||
    fail "the proxy has no session from $SG_VM1_V4:$local_port"
sgctl vm set-tier steered-vm ok >/dev/null || fail "vm set-tier steered-vm ok failed"
sgd_wait_tier steered-vm ok 5 || fail "steered-vm is not ok after set-tier"
res=$(st_session_finish held "$ST_SESSION_PID")
log "held session outcome: $res"
assert_eq "$(json code <<<"$res")" 250 "the held session's end of DATA (tier changed to ok mid-session)"
assert_eq "$(json peer_after <<<"$res")" "${SG_INET_V4[1]}:25" "the peer after the tier change"
client=$(st_wait_relayed held 30) || fail "the held session's message never reached the sink"
assert_eq "$client" "$SG_EGRESS_V4" "the sink's client for the message of the session steered before the change"
# now ok: the next session goes direct
out=$(st_swaks "$SG_VM1_NS" "$sink_v4" --header "Message-Id: <st-now-ok@customer.example>") ||
    { echo "$out" >&2; fail "swaks from the VM now ok failed"; }
client=$(st_wait_relayed st-now-ok 30) || fail "the now-ok VM's message never reached the sink"
assert_eq "$client" "$SG_VM1_V4" "the sink's client once the VM is ok (direct)"
sgctl vm set-tier steered-vm steered >/dev/null || fail "vm set-tier steered-vm steered failed"
sgd_wait_tier steered-vm steered 5 || fail "steered-vm is not steered again"

# ---- 3. an ok VM is never steered ------------------------------------------------------------
out=$(st_swaks "$SG_VM2_NS" "$sink_v4" --header "Message-Id: <st-ok@customer.example>") ||
    { echo "$out" >&2; fail "swaks from the ok VM failed"; }
client=$(st_wait_relayed st-ok 30) || fail "the ok VM's message never reached the sink"
assert_eq "$client" "$SG_VM2_V4" "the sink's client for the ok VM (direct)"
st_proxy_saw "$SG_VM2_V4" && fail "the proxy had a session from the ok VM"
assert_eq "$(json syn.steer <<<"$(sg_vm ok-vm)")" 0 "ok-vm SYNs steered"

# ---- 4. port 587 of a steered VM is not steered (TLS and AUTH end to end) ------------------
out=$(st_swaks "$SG_VM1_NS" "$sink_v4" --port 587 --header "Message-Id: <st-587@customer.example>") ||
    { echo "$out" >&2; fail "swaks to port 587 from the steered VM failed"; }
client=$(st_wait_relayed st-587 30) || fail "the port-587 message never reached the sink"
assert_eq "$client" "$SG_VM1_V4" "the sink's client for the steered VM's port-587 message (not steered)"

# ---- 5. IPv6 ---------------------------------------------------------------------------------
st_session "$SG_VM1_NS" "$sink_v6" held6
conn=$(cat "$SG_TMP/held6.conn")
assert_eq "$(json peer <<<"$conn")" "[$sink_v6]:25" "the peer the VM's IPv6 socket sees"
local_port=$(json local <<<"$conn" | sed 's/.*://')
od=$(sgctl flow original-dst "[$SG_VM1_V6]:$local_port") || fail "flow original-dst [$SG_VM1_V6]:$local_port failed: $od"
log "flow original-dst [$SG_VM1_V6]:$local_port: $od"
grep -qF "$sink_v6" <<<"$od" || fail "flow original-dst does not name $sink_v6: $od"
res=$(st_session_finish held6 "$ST_SESSION_PID")
assert_eq "$(json code <<<"$res")" 250 "the IPv6 session's end of DATA"
st_proxy_saw "$SG_VM1_V6" || fail "the proxy never had a session from $SG_VM1_V6"
client=$(st_wait_relayed held6 30) || fail "the IPv6 message never reached the sink"
assert_eq "$client" "$SG_EGRESS_V6" "the sink's client for the steered IPv6 message"

# ---- 6. a VM on a VLAN-tagged link -------------------------------------------------------------
out=$(st_swaks "$SG_VM3_NS" "$sink_v4" --header "Message-Id: <st-vlan@customer.example>") ||
    { echo "$out" >&2; fail "swaks from the VLAN VM failed"; }
grep -q "^<-  250 .*queued" <<<"$out" || fail "the VLAN VM's swaks did not get 250"
st_proxy_saw "$SG_VM3_V4" || fail "the proxy never had a session from the VLAN VM"
client=$(st_wait_relayed st-vlan 30) || fail "the VLAN VM's message never reached the sink"
assert_eq "$client" "$SG_EGRESS_V4" "the sink's client for the VLAN VM's message"

# ---- 7. not an open relay ----------------------------------------------------------------------
out=$(st_swaks "$SG_NS_INET" "$SG_PROXY_V4" --header "Message-Id: <st-outsider@customer.example>") &&
    { echo "$out" >&2; fail "the proxy relayed for a client outside the VMs' space"; }
grep -qE "^<\*\* +5[0-9][0-9] .*(Access denied|Relay access denied)" <<<"$out" ||
    { echo "$out" >&2; fail "the outsider was not refused with a 5xx at RCPT"; }
log "outsider refused: $(grep -E '^<\*\*' <<<"$out" | head -1)"
sleep 1
[[ -z $(st_sink_client_of st-outsider) ]] || fail "the outsider's message reached the sink"

sg_daemon_stop
st_proxy_stop
sg_testbed down
sg_assert_clean
