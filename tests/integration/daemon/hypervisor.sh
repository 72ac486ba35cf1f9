#!/usr/bin/env bash
# VMs known by their hypervisor identity (issue: native to the hypervisor):
#  - a policy VM that names its libvirt domain ("libvirt": "web-01") is carried by the
#    domain's interfaces as smtpgov-libvirt reports them: at start-up from libvirt's test
#    driver (test:///node.xml), then through the qemu hook (stopped / started with a new
#    tap), and across a daemon restart without the companion (hypervisor.json);
#  - interface_rules give unregistered taps a stable VM id: two taps of one id are one VM
#    with one bucket; its tier survives the taps going away and coming back, and after
#    auto_hold_s without any tap it starts clean;
#  - smtpgov-libvirt makes no system call its unit (deploy/systemd) would refuse.
source "$(dirname "$(readlink -f "$0")")/common.sh"
sg_init dmhv
sg_testbed --vms 3 up
eval "$(sg_testbed env)"
SG_LIBVIRT=$SG_BIN/smtpgov-libvirt
[[ -x $SG_LIBVIRT ]] || fail "$SG_LIBVIRT not built"

cat >"$SG_TMP/policy.json" <<JSON
{
  "defaults": {"rate": 1, "burst": 10, "over_limit": "drop"},
  "vms": [{"id": "web", "tenant": "acme", "libvirt": "web-01", "rate": 1, "burst": 5}]
}
JSON
sg_write_config "$SG_TMP/smtpgovd.json" "$SG_TMP/policy.json" "${SG_PREFIX}v*"
sgd_set_config "$SG_TMP/smtpgovd.json" interface_rules \
    "[{\"match\": \"^${SG_PREFIX}v([23])\$\", \"id\": \"pve-7\", \"tenant\": \"pve\"}]"
sgd_set_config "$SG_TMP/smtpgovd.json" auto_hold_s 3

domain_xml() {  # domain_xml DEV: web-01 as libvirt hands it to the qemu hook
    cat <<XML
<domain type='kvm' id='3'>
  <name>web-01</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <devices>
    <interface type='ethernet'>
      <mac address='52:54:00:aa:00:01'/>
      <target dev='$1' managed='no'/>
    </interface>
  </devices>
</domain>
XML
}
{ echo "<node>"; domain_xml "$SG_VM1_IF" | sed 's/<domain type=.kvm. id=.3.>/<domain type="test">/; s|<devices>|<memory>1048576</memory><os><type>hvm</type></os><devices>|'; echo "</node>"; } >"$SG_TMP/node.xml"

# flood ID NS N: N SYNs from NS as fast as they go; waits until vm show ID judged them all
flood() {
    local id=$1 ns=$2 n=$3 before after
    before=$(judged "$id")
    sg_flood --netns "$ns" syn --dst "${SG_INET_V4[0]}" --rate 5000 --count "$n" --json >/dev/null
    sg_vm_settled "$id" $((before + n * 99 / 100)) 5 >/dev/null
}
ifs() { sg_vm "$1" | python3 -c 'import json, sys; print(",".join(json.load(sys.stdin).get("interfaces", [])))'; }
judged() {
    local vm
    vm=$(sg_vm "$1" 2>/dev/null) || { echo 0; return; }
    echo $(($(json syn.pass <<<"$vm") + $(json syn.throttle <<<"$vm") + $(json syn.block <<<"$vm")))
}

sg_daemon_start "$SG_TMP/smtpgovd.json"

# --- libvirt: start-up listing from the test driver ---
# (under strace: every system call it makes must be one its unit allows)
strace -f -qq -o "$SG_TMP/libvirt.strace" \
    "$SG_LIBVIRT" --connect "test://$SG_TMP/node.xml" --socket "$SG_SOCKET" --once || fail "smtpgov-libvirt --once"
python3 "$SG_SRC/tests/integration/ops/unit_filter.py" "$SG_SRC/deploy/systemd/smtpgov-libvirt.service" \
    "$SG_TMP/libvirt.strace" || fail "smtpgov-libvirt does what its unit would refuse"
vm=$(sg_vm web)
assert_eq "$(json named_by <<<"$vm")" libvirt "web is named by its libvirt domain"
assert_eq "$(json libvirt.uuid <<<"$vm")" 6695eb01-f6a4-8304-79aa-97f2502e193f "vm show names the domain"
assert_eq "$(ifs web)" "$SG_VM1_IF" "web is carried by the domain's interface"
flood web "$SG_VM1_NS" 200
vm=$(sg_vm web)
assert_eq "$(judged web)" 200 "SYNs from the domain's tap are web's"
assert_le "$(json syn.pass <<<"$vm")" 7 "web's own bucket (burst 5, rate 1) judged them"

# --- interface_rules: two taps, one VM, one bucket ---
flood pve-7 "$SG_VM2_NS" 100
flood pve-7 "$SG_VM3_NS" 100
vm=$(sg_vm pve-7)
assert_eq "$(json named_by <<<"$vm")" rule "pve-7 is named by interface_rules"
assert_eq "$(json tenant <<<"$vm")" pve "the rule's tenant"
assert_eq "$(judged pve-7)" 200 "SYNs of both taps are pve-7's"
assert_le "$(json syn.pass <<<"$vm")" 13 "one bucket for both taps (burst 10 + rate 1/s)"
sgctl vm set-tier pve-7 blocked >/dev/null || fail "set-tier"

# its taps go away and come back (renamed out of the rule and back): still blocked
for i in 2 3; do ip -n "$SG_NS_HV" link set "${SG_PREFIX}v$i" name "${SG_PREFIX}x$i"; done
sleep 1
assert_eq "$(json tier <<<"$(sg_vm pve-7)")" blocked "pve-7 is held while its taps are away"
ip -n "$SG_NS_HV" link set "${SG_PREFIX}x2" name "${SG_PREFIX}v2"
before=$(json syn.block <<<"$(sg_vm pve-7)")
flood pve-7 "$SG_VM2_NS" 100
assert_eq "$(($(json syn.block <<<"$(sg_vm pve-7)") - before))" 100 "back under its name: blocked from its first SYN"
ip -n "$SG_NS_HV" link set "${SG_PREFIX}x3" name "${SG_PREFIX}v3"

# --- libvirt lifecycle through the qemu hook, as libvirt runs it ---
domain_xml "$SG_VM1_IF" | "$SG_LIBVIRT" --socket "$SG_SOCKET" --hook web-01 stopped end - || fail "hook stopped"
assert_eq "$(ifs web)" "" "a stopped domain has no interfaces"
flood "if:$SG_VM1_IF" "$SG_VM1_NS" 50
assert_eq "$(judged "if:$SG_VM1_IF")" 50 "its tap is an unclaimed interface meanwhile"
# restarted with another tap (libvirt hands out vnetN afresh): vm3's tap now carries web
domain_xml "$SG_VM3_IF" | "$SG_LIBVIRT" --socket "$SG_SOCKET" --hook web-01 started begin - || fail "hook started"
assert_eq "$(ifs web)" "$SG_VM3_IF" "the mapping follows the domain"
before=$(judged web)
flood web "$SG_VM3_NS" 100
assert_eq "$(($(judged web) - before))" 100 "the domain's new tap is web's (a policy VM outranks a rule)"

# --- restart without the companion: hypervisor.json keeps the mapping ---
sg_daemon_stop
sg_daemon_start "$SG_TMP/smtpgovd.json"
assert_eq "$(ifs web)" "$SG_VM3_IF" "the mapping survives a restart"
assert_eq "$(json tier <<<"$(sg_vm pve-7)")" blocked "so does pve-7's tier"

# --- a rule VM without any tap for auto_hold_s starts clean ---
ip -n "$SG_NS_HV" link set "${SG_PREFIX}v2" name "${SG_PREFIX}x2"
for ((i = 0; i < 100; i++)); do
    sg_vm pve-7 >/dev/null 2>&1 || break
    sleep 0.1
done
sg_vm pve-7 >/dev/null 2>&1 && fail "pve-7 still exists after auto_hold_s without taps"
grep '"pve-7"' "$SG_TMP/state/events.jsonl" | grep -q hold_expired || fail "no hold_expired event for pve-7"
ip -n "$SG_NS_HV" link set "${SG_PREFIX}x2" name "${SG_PREFIX}v2"
flood pve-7 "$SG_VM2_NS" 20
assert_eq "$(json tier <<<"$(sg_vm pve-7)")" ok "the next VM given the id starts clean"

sg_daemon_stop
sg_testbed down
sg_assert_clean
