#!/usr/bin/env bash
# Helpers of the steering integration tests (issue 9): the testbed with the reference
# scanning proxy (deploy/proxy/run.sh: Postfix + rspamd) in its proxy namespace instead of
# the plain sink, smtpgovd with its policy service on the hypervisor's management side
# of the proxy link, and SMTP clients in the VMs. On top of tests/integration/lib.sh and
# daemon/common.sh.
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../daemon/common.sh"

ST_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
ST_PROXY=$SG_SRC/deploy/proxy/run.sh
# rspamd's compiled patterns, shared by the tests (the first start compiles for ~20 s)
ST_HS_CACHE=${SG_PROXY_HS_CACHE:-$(dirname "$SG_BIN")/proxy-hs-cache}
ST_POLICY_PORT=10040
ST_GTUBE='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'

# st_testbed PREFIX VMS [--vlan-vm I]: the testbed without the proxy sink, its env loaded
st_testbed() {
    local prefix=$1 vms=$2
    shift 2
    command -v rspamd >/dev/null && command -v swaks >/dev/null ||
        fail "the steering tests need rspamd and swaks (deploy/install-deps.sh)"
    sg_init "$prefix"
    sg_testbed --vms "$vms" --no-proxy-sink "$@" up
    eval "$(sg_testbed env)"
    ST_STATE=$SG_STATE/scanproxy
    ST_POLICY_SERVICE=$SG_HV_PROXY_V4:$ST_POLICY_PORT
    # the token the proxy's verdicts carry (policy_service_token_file), as an operator
    # would keep it: root and the reporter's group (_rspamd) only
    ST_TOKEN=$SG_STATE/policy-service.token
    (umask 077 && python3 -c "import secrets; print(secrets.token_hex(32))" >"$ST_TOKEN")
    chgrp _rspamd "$ST_TOKEN" && chmod 0640 "$ST_TOKEN"
    sg_on_exit 'st_proxy_stop >/dev/null 2>&1'
}

# st_proxy_start: the scanning proxy on the testbed's proxy addresses, VMs as its only
# relay clients, relays from the quarantine egress addresses, verdicts to smtpgovd
st_proxy_start() {
    "$ST_PROXY" start --netns "$SG_NS_PROXY" --state "$ST_STATE" --name "$SG_PREFIX-proxy" \
        --listen "$SG_PROXY_V4,$SG_PROXY_V6" --policy "$ST_POLICY_SERVICE" \
        --clients 198.18.0.0/16,fd00:5e:0::/48 --egress "$SG_EGRESS_V4,$SG_EGRESS_V6" \
        --hs-cache "$ST_HS_CACHE" --offline --token-file "$ST_TOKEN" >&2 || {
        tail -20 "$ST_STATE/rspamd/log/rspamd.log" "$ST_STATE/maillog" "$ST_STATE/verdicts.log" >&2 2>/dev/null
        fail "the scanning proxy did not start"
    }
}
st_proxy_stop() { [[ -n ${ST_STATE:-} && -d $ST_STATE ]] && "$ST_PROXY" stop --netns "$SG_NS_PROXY" --state "$ST_STATE" >&2; }

# st_policy FILE VMS_JSON [EXTRA_JSON_MEMBERS]: a policy steering to the testbed's proxy
# (both families, fail mode block, health checked every second)
st_policy() {
    local file=$1 vms=$2 extra=${3:-}
    cat >"$file" <<JSON
{
  "smtp_ports": [25, 465, 587],
  "defaults": {"rate": 50, "burst": 100, "over_limit": "drop"},
  "tiers": {"throttled": {"rate": 50, "burst": 100}, "steered": {"rate": 50, "burst": 100},
            "blocked": {"action": "reset"}},
  "proxy": {"address": ["$SG_PROXY_V4:25", "[$SG_PROXY_V6]:25"], "fail_mode": "block",
            "ports": [25], "check_interval_s": 1, "egress": ["$SG_EGRESS_V4", "$SG_EGRESS_V6"]},
  ${extra:+$extra,}
  "vms": $vms
}
JSON
}

# st_vm ID I [EXTRA_MEMBERS]: the JSON of VM I of the testbed (interface, both addresses)
st_vm() {
    local id=$1 i=$2 extra=${3:-} ifv=SG_VM${2}_IF v4=SG_VM${2}_V4 v6=SG_VM${2}_V6
    echo "{\"id\": \"$id\", \"tenant\": \"test\", \"interface\": \"${!ifv}\", \"addresses\": [\"${!v4}/32\", \"${!v6}/128\"]${extra:+, $extra}}"
}

# st_daemon POLICY IFACE...: smtpgovd with its policy service where the proxy reaches it
st_daemon() {
    local policy=$1
    shift
    sg_write_config "$SG_TMP/smtpgovd.json" "$policy" "$@"
    sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_listen "\"$ST_POLICY_SERVICE\""
    sgd_set_config "$SG_TMP/smtpgovd.json" policy_service_token_file "\"$ST_TOKEN\""
    sg_daemon_start "$SG_TMP/smtpgovd.json"
}

# st_swaks NS TO_ADDR [swaks args...]: one message, swaks' transcript on stdout; exit
# status that of swaks (0 delivered, 2x connect/banner problems, 2x..2x rejections)
st_swaks() {
    local ns=$1 dst=$2
    shift 2
    ip netns exec "$ns" timeout 60 swaks --server "$dst" --port 25 --from "vm@customer.example" \
        --to "someone@example.net" --timeout 20 --hide-informational "$@" 2>&1
}

# st_session NS DST NAME [--gtube] [--port P]: an SMTP session from the VM that connects,
# reads the greeting and EHLOs, then waits until the file $SG_TMP/NAME.go exists (at most
# 120 s) before it sends one message. $SG_TMP/NAME.conn gets the connected socket as
# JSON ({"local": ..., "peer": ...}) once it is open; $SG_TMP/NAME.json the outcome.
# The PID is in ST_SESSION_PID.
st_session() {
    local ns=$1 dst=$2 name=$3
    shift 3
    rm -f "$SG_TMP/$name".{go,conn,json}
    ip netns exec "$ns" python3 "$ST_DIR/smtp_session.py" --dst "$dst" --gate "$SG_TMP/$name.go" \
        --conn "$SG_TMP/$name.conn" --out "$SG_TMP/$name.json" --msgid "$name" "$@" \
        >/dev/null 2>"$SG_TMP/$name.err" &
    ST_SESSION_PID=$!
    sg_on_exit "kill $ST_SESSION_PID 2>/dev/null"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $SG_TMP/$name.conn ]] && return 0
        kill -0 "$ST_SESSION_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$SG_TMP/$name.err" "$SG_TMP/$name.json" >&2 2>/dev/null
    fail "session $name did not open"
}
# st_session_finish NAME PID: let the session send its message; prints its outcome (JSON),
# fails if the session ended with an error (no reply code). Works in $(...): it waits for
# the outcome file, not for the process (not a child of a subshell).
st_session_finish() {
    local i
    touch "$SG_TMP/$1.go"
    for ((i = 0; i < 600; i++)); do
        [[ -s $SG_TMP/$1.json ]] && ! kill -0 "$2" 2>/dev/null && break
        sleep 0.1
    done
    [[ -s $SG_TMP/$1.json ]] || { cat "$SG_TMP/$1.err" >&2; fail "session $1 did not finish within 60 s"; }
    python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("code") else 1)' "$SG_TMP/$1.json" ||
        { cat "$SG_TMP/$1.err" "$SG_TMP/$1.json" >&2; fail "session $1 failed"; }
    cat "$SG_TMP/$1.json"
}

# st_proxy_log: the scanning proxy's Postfix log; st_sink_log: the internet sink's
st_proxy_log() { cat "$ST_STATE/maillog" 2>/dev/null; }
st_sink_log() { cat "$SG_STATE/inet/maillog" 2>/dev/null; }

# st_wait_sink PATTERN [TIMEOUT_S]: until the internet sink's log has a line matching
st_wait_sink() {
    local end=$((SECONDS + ${2:-30}))
    while ((SECONDS < end)); do
        st_sink_log | grep -qE "$1" && return 0
        sleep 0.2
    done
    return 1
}

# st_relayed MSGID: the internet sink's client for the message whose Message-ID has MSGID
# (the smtpd "client=" line of the queue id that cleanup logged with that Message-ID)
st_sink_client_of() {
    python3 - "$SG_STATE/inet/maillog" "$1" <<'PY'
import re, sys
qid_client, found = {}, ""
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"\]: ([0-9A-F]+): client=\S*\[([^\]]+)\]", line)
    if m:
        qid_client[m.group(1)] = m.group(2)
    m = re.search(r"\]: ([0-9A-F]+): message-id=<([^>]*)>", line)
    if m and sys.argv[2] in m.group(2):
        found = qid_client.get(m.group(1), "?")
print(found)
PY
}

# st_wait_relayed MSGID [TIMEOUT_S]: prints the sink's client for MSGID once it arrived
st_wait_relayed() {
    local end=$((SECONDS + ${2:-30})) c
    while ((SECONDS < end)); do
        c=$(st_sink_client_of "$1")
        [[ -n $c ]] && { echo "$c"; return 0; }
        sleep 0.2
    done
    return 1
}

# st_proxy_saw ADDR: the proxy's smtpd had a client from ADDR (the VM's own address)
st_proxy_saw() { st_proxy_log | grep -qF "connect from unknown[$1]"; }

# st_events_of TYPE [VM]: events of that type (for that VM, if given) in events.jsonl
st_events_of() {
    python3 - "$SG_TMP/state/events.jsonl" "$@" <<'PY'
import json, sys
n = 0
try:
    for line in open(sys.argv[1]):
        e = json.loads(line)
        n += e.get("type") == sys.argv[2] and (len(sys.argv) < 4 or e.get("vm") == sys.argv[3])
except FileNotFoundError:
    pass
print(n)
PY
}

# st_wait_event TYPE N TIMEOUT_S: until there are N events of TYPE
st_wait_event() {
    local end=$((SECONDS + $3))
    while ((SECONDS < end)); do
        (($(st_events_of "$1") >= $2)) && return 0
        sleep 0.2
    done
    return 1
}

# st_proxy_events TYPE [FAMILY]: proxy_down/proxy_up events (for ipv4 or ipv6, if given)
st_proxy_events() {
    python3 - "$SG_TMP/state/events.jsonl" "$@" <<'PY'
import json, sys
n = 0
try:
    for line in open(sys.argv[1]):
        e = json.loads(line)
        fam = (e.get("evidence") or {}).get("family")
        n += e.get("type") == sys.argv[2] and (len(sys.argv) < 4 or fam == sys.argv[3])
except FileNotFoundError:
    pass
print(n)
PY
}

# st_wait_proxy_event TYPE FAMILY N TIMEOUT_S: until N such events of that family
st_wait_proxy_event() {
    local end=$((SECONDS + $4))
    while ((SECONDS < end)); do
        (($(st_proxy_events "$1" "$2") >= $3)) && return 0
        sleep 0.2
    done
    return 1
}

# st_metric NAME_REGEX: the sum of the matching series on /metrics
st_metric() {
    nsenter --net="/run/netns/$SG_NS_HV" curl -sf "http://$SG_METRICS/metrics" |
        awk -v re="^($1)([{ ])" '$0 ~ re {s += $NF} END {printf "%d\n", s}'
}
