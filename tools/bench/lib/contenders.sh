# tools/bench/run.sh: the contenders, each on the hypervisor side of one interface.
#   contender_on NAME MODE IFACE SCENARIO VMS   attach (MODE: native | generic | -)
#   contender_judged NAME                       frames the contender's own counters judged so far
#   contender_off NAME MODE IFACE               detach, leaving nothing behind
# Every nft/iptables/tc/bpftool command runs in sgbn-hv (hv) or sgbn-inet, never in the
# machine's own namespace. Sourced after topo.sh; needs $SGBN_BIN, $SGBN_BPF_GEN,
# $SGBN_TMP, $SGBN_RATE and $SGBN_BURST.

SGBN_DAEMON_PID=""
SGBN_SOCKET=""

drop_progs_load() {
    bpftool prog loadall "$SGBN_BPF_GEN/drop_count.bpf.o" "$SGBN_BPFFS_DROP/progs" \
        pinmaps "$SGBN_BPFFS_DROP/maps" || die "load $SGBN_BPF_GEN/drop_count.bpf.o"
}

drop_count() {
    bpftool map dump pinned "$SGBN_BPFFS_DROP/maps/sgbn_dropped" -j | python3 -c '
import json, sys
print(sum(v["value"] for e in json.load(sys.stdin) for v in e["formatted"]["values"]))'
}

# ---- nftables: a per-source meter (dynamic set) with `limit rate over`, in prerouting
nft_on() {
    hv nft -f - <<NFT || die "nftables contender: the ruleset was refused"
table ip sgbn {
    counter judged {}
    counter over {}
    set per_source {
        type ipv4_addr; size 65536; flags dynamic,timeout; timeout 60s;
    }
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        tcp dport 25 tcp flags & (syn | ack) == syn counter name "judged" update @per_source { ip saddr limit rate over $SGBN_RATE/second burst $SGBN_BURST packets } counter name "over" drop
    }
}
NFT
}
nft_judged() {
    hv nft -j list counter ip sgbn judged | python3 -c '
import json, sys
print(next(o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o))'
}
nft_off() { hv nft delete table ip sgbn; }

# ---- iptables hashlimit, raw table, with iptables-legacy (Debian 12's `iptables` is the
# nft backend, iptables-nft, which would translate the match into an nft ruleset)
ipt() { hv iptables-legacy -w 5 -t raw "$@"; }
hashlimit_on() {
    command -v iptables-legacy >/dev/null || die "iptables-legacy not found (deploy/install-deps.sh installs iptables)"
    ipt -N SGBN_SMTP
    ipt -A PREROUTING -p tcp --dport 25 --tcp-flags SYN,ACK SYN -j SGBN_SMTP
    ipt -A SGBN_SMTP -m hashlimit --hashlimit-name sgbn --hashlimit-mode srcip \
        --hashlimit-above "$SGBN_RATE/sec" --hashlimit-burst "$SGBN_BURST" --hashlimit-htable-expire 60000 -j DROP
}
hashlimit_judged() { ipt -L PREROUTING -v -x -n | awk '$3 == "SGBN_SMTP" {print $1; exit}'; }
hashlimit_off() { ipt -F SGBN_SMTP; ipt -D PREROUTING -p tcp --dport 25 --tcp-flags SYN,ACK SYN -j SGBN_SMTP; ipt -X SGBN_SMTP; }

# ---- smtpgov: the real datapath, attached by a running smtpgovd with a policy of VMS VMs
smtpgov_on() {
    local mode=$1 ifc=$2 scenario=$3 vms=$4 ifaces gw=() pol_args cfg i n
    pol_args=(--vms "$vms" --rate "$SGBN_RATE" --burst "$SGBN_BURST")
    ifaces=("$ifc")
    case $scenario in
        many-sources) pol_args+=(--gateway "$SGBN_SPOOF_PREFIX"); gw=("$ifc") ;;
        one-vm-flood-veth) pol_args+=(--flood-if "$ifc" --flood-addr "$SGBN_VM1_V4") ;;
        *) pol_args+=(--flood-if "$ifc" --flood-addr "$SGBN_TAP_VM_V4") ;;
    esac
    if [[ $scenario == flood-plus-legit ]]; then
        pol_args+=(--legit-if "$SGBN_LEGIT_IF" --legit-addr "$SGBN_VM2_V4")
        ifaces+=("$SGBN_LEGIT_IF")
    fi
    python3 "$SGBN_LIB/policy.py" "${pol_args[@]}" >"$SGBN_TMP/policy.json"
    rm -rf "$SGBN_TMP/state" "$SGBN_BPFFS_SMTPGOV"
    mkdir -p "$SGBN_TMP/state"
    SGBN_SOCKET=$SGBN_TMP/ctl.sock
    cfg=$SGBN_TMP/smtpgovd.json
    python3 - "$cfg" "$mode" "$SGBN_BPFFS_SMTPGOV" "$SGBN_TMP" "$vms" "${#gw[@]}" "${ifaces[@]}" <<'PY'
import json, sys
cfg, mode, bpffs, tmp, vms, ngw, ifaces = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7:]
json.dump({"interfaces": ifaces, "gateway_interfaces": ifaces[:ngw], "xdp_mode": mode, "bpffs": bpffs,
           "state_dir": tmp + "/state", "socket": tmp + "/ctl.sock", "metrics_listen": "",
           "policy_service_listen": "", "policy": tmp + "/policy.json", "log_level": "warning",
           "max_vms": max(16384, (vms + 1023) // 1024 * 1024)}, open(cfg, "w"))
PY
    # the daemon is part of the receiver: CPU 1 (the generators run on CPU 0)
    taskset -c "$SGBN_RX_CPU" nsenter --net="/run/netns/$SGBN_NS_HV" "$SGBN_BIN/smtpgovd" --config "$cfg" \
        >"$SGBN_TMP/smtpgovd.log" 2>&1 &
    SGBN_DAEMON_PID=$!
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SGBN_DAEMON_PID" 2>/dev/null || { cat "$SGBN_TMP/smtpgovd.log" >&2; die "smtpgovd exited"; }
        n=$(sgctl status 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin); i = s.get("interfaces", [])
print(sum(1 for x in i if x.get("attached")) if i else 0)' 2>/dev/null || echo 0)
        ((n == ${#ifaces[@]})) && return 0
        sleep 0.1
    done
    cat "$SGBN_TMP/smtpgovd.log" >&2
    die "smtpgovd did not attach to ${ifaces[*]} ($mode) within 30 s"
}
sgctl() { "$SGBN_BIN/smtpgovctl" --socket "$SGBN_SOCKET" --json "$@"; }
smtpgov_vm() { [[ $SGBN_SCENARIO == many-sources ]] && echo gateway || echo flood; }
smtpgov_judged() {
    sgctl vm show "$(smtpgov_vm)" | python3 -c '
import json, sys
print(sum(json.load(sys.stdin)["syn"].values()))'
}
smtpgov_off() {
    local i
    if [[ -n $SGBN_DAEMON_PID ]]; then
        kill "$SGBN_DAEMON_PID" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$SGBN_DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SGBN_DAEMON_PID" 2>/dev/null || true
        wait "$SGBN_DAEMON_PID" 2>/dev/null || true
        SGBN_DAEMON_PID=""
    fi
    # its links and maps stay pinned by design (kill -9 loses no enforcement): remove them
    if [[ -d $SGBN_BPFFS_SMTPGOV ]]; then
        hv "$SGBN_BIN/smtpgovd" --bpffs "$SGBN_BPFFS_SMTPGOV" --remove >/dev/null 2>&1 || true
    fi
    rm -rf "$SGBN_BPFFS_SMTPGOV"
    return 0
}

# ---- dispatch
contender_on() {
    local name=$1 mode=$2 ifc=$3 scenario=$4 vms=$5
    case $name in
        empty-xdp) hv bpftool net attach "xdp${mode/native/drv}" pinned "$SGBN_BPFFS_DROP/progs/sgbn_xdp_drop" dev "$ifc" \
                       || die "attach the empty XDP program ($mode) to $ifc" ;;
        tc-drop) hv tc qdisc add dev "$ifc" clsact
                 hv tc filter add dev "$ifc" ingress bpf direct-action object-pinned "$SGBN_BPFFS_DROP/progs/sgbn_tc_drop" ;;
        smtpgov) smtpgov_on "$mode" "$ifc" "$scenario" "$vms" ;;
        nftables) nft_on ;;
        iptables-hashlimit) hashlimit_on ;;
        none) ;;
        *) die "unknown contender $name" ;;
    esac
}

contender_judged() {
    case $1 in
        empty-xdp | tc-drop) drop_count ;;
        smtpgov) smtpgov_judged ;;
        nftables) nft_judged ;;
        iptables-hashlimit) hashlimit_judged ;;
        none) admitted_count ;;   # no filter: what reached the far end went through the stack
    esac
}

contender_off() {
    local name=$1 mode=$2 ifc=$3
    case $name in
        empty-xdp) hv bpftool net detach "xdp${mode/native/drv}" dev "$ifc" ;;
        tc-drop) hv tc qdisc del dev "$ifc" clsact ;;
        smtpgov) smtpgov_off ;;
        nftables) nft_off ;;
        iptables-hashlimit) hashlimit_off ;;
        none) ;;
    esac
}

# contender_all_off: whatever may still be attached (cleanup after an interrupted row)
contender_all_off() {
    local ifc
    smtpgov_off
    for ifc in "$SGBN_TAP" "$SGBN_VETH"; do
        [[ -e /run/netns/$SGBN_NS_HV ]] || break
        hv ip link set dev "$ifc" xdp off 2>/dev/null
        hv ip link set dev "$ifc" xdpgeneric off 2>/dev/null
        hv tc qdisc del dev "$ifc" clsact 2>/dev/null
    done
    [[ -e /run/netns/$SGBN_NS_HV ]] || return 0
    hv nft delete table ip sgbn 2>/dev/null
    ipt -F SGBN_SMTP 2>/dev/null && { ipt -D PREROUTING -p tcp --dport 25 --tcp-flags SYN,ACK SYN -j SGBN_SMTP; ipt -X SGBN_SMTP; } 2>/dev/null
    return 0
}
