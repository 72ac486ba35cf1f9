#!/usr/bin/env bash
# Proxy health and fail mode (issue 9): smtpgovd checks the proxy (TCP connect + 220)
# every proxy.check_interval_s (1 s here). The proxy is stopped: event proxy_down, then
# the steered VM's SYNs get proxy.fail_mode `block` (reset: swaks fails at connect, the
# SYN is counted blocked, nothing reaches the internet). The proxy is started again:
# event proxy_up, then steering resumes by itself (mail relayed from the egress address).
# The order of events is asserted; the timeouts are only guards.
source "$(dirname "$(readlink -f "$0")")/common.sh"
st_testbed sgchp 2
st_policy "$SG_TMP/policy.json" "[$(st_vm steered-vm 1 '"tier": "steered"'), $(st_vm ok-vm 2 '"tier": "ok"')]"
st_proxy_start
st_daemon "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sink=${SG_INET_V4[0]}

# steering works while the proxy is up
out=$(st_swaks "$SG_VM1_NS" "$sink" --header "Message-Id: <hp-before@customer.example>") ||
    { echo "$out" >&2; fail "the steered VM's mail failed while the proxy is up"; }
assert_eq "$(st_wait_relayed hp-before 30)" "$SG_EGRESS_V4" "the sink's client before the outage"
assert_eq "$(st_proxy_events proxy_down)" 0 "proxy_down events while the proxy is up"

# ---- the proxy goes down ---------------------------------------------------------------------
st_proxy_stop
st_wait_proxy_event proxy_down ipv4 1 60 || fail "no IPv4 proxy_down event within 60 s of the proxy's stop"
st_wait_proxy_event proxy_down ipv6 1 60 || fail "no IPv6 proxy_down event within 60 s of the proxy's stop"
log "proxy_down: $(grep '"proxy_down"' "$SG_TMP/state/events.jsonl" | head -1)"
# the VMs' SYNs get the fail mode only after the event (the order the test checks)
block0=$(json syn.block <<<"$(sg_vm steered-vm)")
syn0=$(sg_syncount --family 4 --port 25)
out=$(st_swaks "$SG_VM1_NS" "$sink" --header "Message-Id: <hp-down@customer.example>") &&
    { echo "$out" >&2; fail "the steered VM sent mail while the proxy is down (fail mode block)"; }
grep -qiE "connection refused|connect.*(fail|refused)" <<<"$out" ||
    { echo "$out" >&2; fail "fail mode block did not refuse the connection"; }
log "while down: $(grep -E '^\*\*\*' <<<"$out" | head -1)"
vm=$(sg_vm_wait steered-vm syn.block $((block0 + 1)) 5)
assert_ge "$(json syn.block <<<"$vm")" $((block0 + 1)) "steered-vm SYNs blocked (fail mode)"
sleep 0.5
assert_eq "$(($(sg_syncount --family 4 --port 25) - syn0))" 0 "SYNs at the internet while the proxy is down"
# an ok VM is not concerned
out=$(st_swaks "$SG_VM2_NS" "$sink" --header "Message-Id: <hp-ok@customer.example>") ||
    { echo "$out" >&2; fail "the ok VM's mail failed while the proxy is down"; }
assert_eq "$(st_wait_relayed hp-ok 30)" "$SG_VM2_V4" "the sink's client for the ok VM during the outage"

# ---- the proxy comes back ----------------------------------------------------------------------
st_proxy_start
st_wait_proxy_event proxy_up ipv4 1 60 || fail "no IPv4 proxy_up event within 60 s of the proxy's start"
st_wait_proxy_event proxy_up ipv6 1 60 || fail "no IPv6 proxy_up event within 60 s of the proxy's start"
python3 - "$SG_TMP/state/events.jsonl" <<'PY' || fail "proxy events out of order"
import json, sys
evs = [e for e in map(json.loads, open(sys.argv[1])) if e.get("type") in ("proxy_down", "proxy_up")]
ok = True
for fam in ("ipv4", "ipv6"):
    order = [e["type"] for e in evs if (e.get("evidence") or {}).get("family") == fam]
    print(f"proxy events ({fam}):", order, file=sys.stderr)
    ok &= order[:2] == ["proxy_down", "proxy_up"]
sys.exit(0 if ok else 1)
PY
out=$(st_swaks "$SG_VM1_NS" "$sink" --header "Message-Id: <hp-after@customer.example>") ||
    { echo "$out" >&2; fail "steering did not resume after proxy_up"; }
assert_eq "$(st_wait_relayed hp-after 30)" "$SG_EGRESS_V4" "the sink's client after the recovery"
[[ -z $(st_sink_client_of hp-down) ]] || fail "the message refused during the outage reached the sink"

# metrics: the proxy is up again
up=$(st_metric 'smtpgov_proxy_up')
log "smtpgov_proxy_up = $up"

sg_daemon_stop
st_proxy_stop
sg_testbed down
sg_assert_clean
