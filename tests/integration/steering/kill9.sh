#!/usr/bin/env bash
# kill -9 of smtpgovd during a steered SMTP session (issue 9): the connection table is
# pinned, so the session's rewrite (both directions) goes on without the daemon, and the
# restarted daemon answers the proxy's policy request for it (FILTER to the original
# server): the session completes through the proxy and its message is relayed from the
# egress address. One session is open across the kill (its MAIL FROM comes after the
# restart, so the policy request reaches the restarted daemon); another is opened while
# no daemon runs (steered by the pinned datapath alone) and completes after the restart.
source "$(dirname "$(readlink -f "$0")")/common.sh"
st_testbed sgck9 2
st_policy "$SG_TMP/policy.json" "[$(st_vm steered-vm 1 '"tier": "steered"'), $(st_vm other 2)]"
st_proxy_start
st_daemon "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"

st_session "$SG_VM1_NS" "${SG_INET_V4[0]}" across
across_pid=$ST_SESSION_PID
conn=$(cat "$SG_TMP/across.conn")
log "session open: $conn"
port=$(json local <<<"$conn" | sed 's/.*://')
sgctl flow original-dst "$SG_VM1_V4:$port" | grep -qF "${SG_INET_V4[0]}:25" || fail "no original-dst before the kill"

kill -9 "$SG_DAEMON_PID"
wait "$SG_DAEMON_PID" 2>/dev/null || true
SG_DAEMON_PID=""
log "smtpgovd killed (SIGKILL)"
sleep 1
# while the daemon is down the steered flow still works both ways: NOOPs are answered
st_session "$SG_VM1_NS" "${SG_INET_V4[1]}" during
during_pid=$ST_SESSION_PID
log "a new steered session while the daemon is down: $(cat "$SG_TMP/during.conn")"

sg_daemon_start "$SG_TMP/smtpgovd.json"
res=$(st_session_finish across "$across_pid")
log "session across the kill: $res"
assert_eq "$(json code <<<"$res")" 250 "end of DATA of the session across the kill"
assert_eq "$(json peer_after <<<"$res")" "${SG_INET_V4[0]}:25" "the peer after the restart"
assert_eq "$(st_wait_relayed across 30)" "$SG_EGRESS_V4" "the sink's client for the message across the kill"
st_proxy_log | grep -qF "connect from unknown[$SG_VM1_V4]:$port" || fail "the proxy had no session from $SG_VM1_V4:$port"

res=$(st_session_finish during "$during_pid")
log "session opened while the daemon was down: $res"
assert_eq "$(json code <<<"$res")" 250 "end of DATA of the session opened while the daemon was down"
assert_eq "$(st_wait_relayed during 30)" "$SG_EGRESS_V4" "the sink's client for that message"
st_sink_log | grep -qF "connect from unknown[$SG_VM1_V4]" && fail "the steered VM reached the sink directly"

sg_daemon_stop
st_proxy_stop
sg_testbed down
sg_assert_clean
