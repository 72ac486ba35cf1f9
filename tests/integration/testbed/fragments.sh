#!/usr/bin/env bash
# No evasion by fragments or long IPv6 chains (DESIGN.md "What counts"; issue 10 item 1).
# vm1 is pinned to `blocked`, vm2 is `ok` with room in its bucket. Each sends 100
# attempts of every variant of fragments.py (hand-made frames on an AF_PACKET socket)
# to an address of the internet namespace, which reassembles them as their receiver:
# a raw-socket listener there counts the SYNs its IP layer hands to TCP.
#   - blocked VM: 0 SYNs through, whether split into 16-byte (hping3 -f) or 8-byte +
#     offset-1 fragments, overlapping at offset 1, behind 7 IPv6 extension headers,
#     in an IPv6 tiny first fragment, or in a first fragment holding the whole header
#     (judged and blocked like any SYN);
#   - refused for everyone: the ok VM's tiny fragments and long chains get nowhere either
#     (no legitimate stack splits a TCP header across fragments);
#   - judged normally: the ok VM's SYNs in first fragments holding the whole header pass
#     and count against its bucket;
#   - ordinary traffic flows: the blocked VM's fragmented ACK segments (an established
#     flow's) and kernel-fragmented UDP, both families, all arrive.
# Every number is collected first and printed as one table, then asserted.
# Without these rules (the datapath before them) 100 of 100 SYNs of the blocked VM reach
# the receiver as v4-tiny16, v4-tiny8-off1 and v6-chain. The receiver here is Linux,
# which itself discards overlapping IPv4 fragments and IPv6 first fragments without the
# whole header chain (RFC 7112), so v4-overlap-off1 and v6-tiny8-off1 show what the
# datapath refuses for receivers that are not as strict.
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
here=$(dirname "$(readlink -f "$0")")
sg_init tbfrag

sg_testbed --vms 2 up
eval "$(sg_testbed env)"
dst4=${SG_INET_V4[0]} dst6=${SG_INET_V6[0]} udp_port=9999 n=100

cat >"$SG_TMP/policy.json" <<JSON
{
  "smtp_ports": [25, 465, 587],
  "vms": [
    {"id": "blocked-vm", "tenant": "test", "interface": "$SG_VM1_IF",
     "addresses": ["$SG_VM1_V4/32", "$SG_VM1_V6/128"], "tier": "blocked"},
    {"id": "ok-vm", "tenant": "test", "interface": "$SG_VM2_IF",
     "addresses": ["$SG_VM2_V4/32", "$SG_VM2_V6/128"], "rate": 1000, "burst": 1000}
  ]
}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "$SG_VM1_IF" "$SG_VM2_IF"
sg_daemon_start "$SG_TMP/smtpgovd.json"

ip netns exec "$SG_NS_INET" python3 "$here/fragments.py" listen "$SG_TMP/recv.json" --udp-port $udp_port &
listener=$!
sg_on_exit "kill $listener 2>/dev/null; wait $listener 2>/dev/null"
for ((i = 0; i < 50; i++)); do [[ -s $SG_TMP/recv.json ]] && break; sleep 0.1; done
[[ -s $SG_TMP/recv.json ]] || fail "the receiver-side listener did not start"

# refused frames so far: sg_global[SG_RES_REFUSED] summed over CPUs, from the pin
# (0 for a datapath that has no such result)
refused() {
    { bpftool -j map lookup pinned "$SG_BPFFS/maps/sg_global" key 10 0 0 0 2>/dev/null || true; } | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = None
values = d.get("values", []) if isinstance(d, dict) else []
print(sum(int.from_bytes(bytes(int(b, 16) for b in v["value"]), "little") for v in values))'
}
received() { # received KEY: what the listener counted under KEY so far
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$SG_TMP/recv.json" "$1"
}

declare -A got want
rows=() keys=()
# expect KEY GOT WANT: recorded now, printed and asserted at the end in this order
expect() { got["$1"]=$2 want["$1"]=$3 keys+=("$1"); }
sport=21000
# attempt VM_INDEX VARIANT WANT_RECEIVED WANT_REFUSED: send n attempts, record what the
# receiver counted (key by family, kind, source-port block) and the refused delta
attempt() {
    local i=$1 variant=$2 fam=${2:1:1} kind=syn ns_var=SG_VM${1}_NS ip_var=SG_VM${1}_V${2:1:1} if_var=SG_VM${1}_IF
    local ns=${!ns_var} dst=$dst4 r0 out label
    [[ $fam == 6 ]] && dst=$dst6
    [[ $variant == *-ack ]] && kind=ack
    r0=$(refused)
    out=$(ip netns exec "$ns" python3 "$here/fragments.py" send --iface eth0 \
        --src-mac "$(ip netns exec "$ns" cat /sys/class/net/eth0/address)" \
        --dst-mac "$(ip netns exec "$SG_NS_HV" cat "/sys/class/net/${!if_var}/address")" \
        --src "${!ip_var}" --dst "$dst" --variant "$variant" --count $n --sport $sport)
    sleep 0.5
    label="vm$i $variant"
    expect "$label received" "$(received "tcp$fam.$kind.25.$((sport / 1000))")" "$3"
    expect "$label refused" $(($(refused) - r0)) "$4"
    rows+=("$label")
    log "$label: sent $(json frames <<<"$out") frames; received ${got["$label received"]}, refused ${got["$label refused"]}"
    sport=$((sport + 1000))
}

# blocked VM: nothing gets through
attempt 1 v4-tiny16 0 $n            # first fragments refused; the 4-byte tails at offset 2 pass
attempt 1 v4-tiny8-off1 0 $((2 * n)) # tiny first and offset 1: both refused
attempt 1 v4-overlap-off1 0 $n       # the whole-header ACK passes; its offset-1 rewrite is refused
attempt 1 v4-whole 0 0               # classified: a SYN, blocked
attempt 1 v6-chain 0 $n
attempt 1 v6-tiny8-off1 0 $n         # first fragment refused; the non-first one carries no flags
attempt 1 v6-whole 0 0
# blocked VM: fragments of established flows keep flowing
attempt 1 v4-ack $n 0
attempt 1 v6-ack $n 0
# ok VM: refused for everyone, judged normally otherwise
attempt 2 v4-tiny16 0 $n
attempt 2 v6-chain 0 $n
attempt 2 v4-whole $n 0
attempt 2 v6-whole $n 0

# ordinary fragmented UDP from the blocked VM (its kernel fragments a 3,000-byte datagram)
for fam in 4 6; do
    dst=$dst4; [[ $fam == 6 ]] && dst=$dst6
    ip netns exec "$SG_VM1_NS" python3 "$here/fragments.py" udp --dst "$dst" --port $udp_port --count $n --size 3000 >/dev/null
    sleep 0.5
    expect "vm1 udp$fam 3000 B received" "$(received "udp$fam.3000")" $n
done

blocked=$(sg_vm_settled blocked-vm $((2 * n)))
ok=$(sg_vm_settled ok-vm $((2 * n)))
expect "blocked-vm judged block" "$(json syn.block <<<"$blocked")" $((2 * n))   # v4-whole, v6-whole
expect "blocked-vm judged pass" "$(json syn.pass <<<"$blocked")" 0
expect "ok-vm judged pass" "$(json syn.pass <<<"$ok")" $((2 * n))
# the uplink's nft counter sees fragments as they arrive: a SYN whose flags are in a
# 16-byte first fragment counts, one cut at 8 bytes does not (printed, not asserted)
uplink=$(sg_syncount --port 25)

{
    printf '%-44s %9s %9s\n' "attempts of $n" received refused
    for r in "${rows[@]}"; do
        printf '%-44s %9s %9s\n' "$r" "${got["$r received"]}/${want["$r received"]}" "${got["$r refused"]}/${want["$r refused"]}"
    done
    for k in "vm1 udp4 3000 B received" "vm1 udp6 3000 B received" "blocked-vm judged block" \
        "blocked-vm judged pass" "ok-vm judged pass"; do
        printf '%-44s %19s\n' "$k" "${got[$k]}/${want[$k]}"
    done
    printf '%-44s %19s\n' "SYNs at the uplink's nft counter (info)" "$uplink"
} | tee "$SG_TMP/table" >&2

for k in "${keys[@]}"; do
    assert_eq "${got[$k]}" "${want[$k]}" "$k"
done

kill "$listener" 2>/dev/null || true
wait "$listener" 2>/dev/null || true
sg_daemon_stop
sg_testbed down
sg_assert_clean
