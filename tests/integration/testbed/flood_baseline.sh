#!/usr/bin/env bash
# (b) no governor: smtpgov-flood reaches 8,000 SYN/s for 2 s through live frames,
# and the internet's receiver counts every SYN, for IPv4, IPv6 and the VLAN VM.
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
sg_init tbbase
sg_testbed --vms 2 --vlan-vm 2 up
eval "$(sg_testbed env)"

run() { # run LABEL DST NS [flood args...]
    local label=$1 dst=$2 ns=$3; shift 3
    local before after out sent rate
    before=$(sg_syncount)
    out=$(sg_flood --netns "$ns" syn --dst "$dst" --rate 8000 --duration 2 --json "$@")
    log "$label: $out"
    sleep 0.5   # the last frames are still in the veth and stack
    after=$(sg_syncount)
    sent=$(json sent <<<"$out")
    rate=$(json rate <<<"$out")
    assert_eq "$(json method <<<"$out")" xdp-live-frames "$label method"
    assert_ge "$sent" 15840 "$label SYNs sent (8,000/s x 2 s, 1% slack)"
    assert_ge "${rate%.*}" 7920 "$label achieved rate"
    assert_le "${rate%.*}" 8080 "$label achieved rate"
    assert_eq $((after - before)) "$sent" "$label SYNs counted at the receiver"
}

run ipv4 "${SG_INET_V4[0]}" "$SG_VM1_NS"
run ipv6 "${SG_INET_V6[0]}" "$SG_VM1_NS"
run vlan-ipv4 "${SG_INET_V4[1]}" "$SG_VM2_NS" --iface eth0 --vlan "$SG_VM2_VLAN"
# several destinations and ports cycle; spoofed sources from a range the hypervisor
# forwards (inside the VM's own /24 some would be the hypervisor's own address: martians)
run spoofed-multi "${SG_INET_V4[2]},${SG_INET_V4[3]}" "$SG_VM1_NS" --dport 25,465,587 --spoof 100.64.0.0/10
# the AF_PACKET fallback paces the same way
out=$(sg_flood --netns "$SG_VM1_NS" syn --dst "${SG_INET_V4[0]}" --rate 2000 --count 2000 --method packet --json)
assert_eq "$(json method <<<"$out")" af-packet "forced fallback method"
assert_eq "$(json sent <<<"$out")" 2000 "AF_PACKET SYNs sent"

sg_testbed down
sg_assert_clean
