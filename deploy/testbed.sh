#!/usr/bin/env bash
# smtpgov testbed: a hypervisor, N VMs, "the internet" and a steering proxy, built
# only from network namespaces and veth pairs (nothing touches the machine's own
# interfaces, routes or firewall).
#
#   deploy/testbed.sh [--prefix P] [--vms N] [--vlan-vm I [--vlan-id ID]] [--no-proxy-sink] COMMAND
#   COMMAND: up | down | status | syncount [--json] [--family 4|6] [--port N]
#            | delivered [inet|proxy] | env
#   (environment: SG_PREFIX, SG_VMS, SG_VLAN_VM, SG_VLAN_ID, SG_FLOOD, SG_PROXY_SINK=0)
#
# Topology (P = prefix, default "sg"; i = 1..N):
#   netns P-vmi    eth0 198.18.i.2/24 fd00:5e:0:i::2/64, default via the hypervisor
#   netns P-hv     Pvi  198.18.i.1/24 fd00:5e:0:i::1/64  <- smtpgov attaches XDP here
#                  Pup  198.19.0.1/24 fd00:5e:ff::1/64   -> internet (default route)
#                  Ppx  198.19.1.1/24 fd00:5e:fd::1/64   -> proxy (192.0.2.10, fd00:5e:fe::10)
#   netns P-inet   eth0 198.19.0.2/24 fd00:5e:ff::2/64 plus the SMTP servers
#                  203.0.113.25/26, 198.51.100.25/26, fd00:5e:f0::25/26 (Postfix sink
#                  on 25, 587 and 465/TLS; nft SYN counter on eth0 ingress)
#   netns P-proxy  eth0 198.19.1.2/24 fd00:5e:fd::2/64, 192.0.2.10, fd00:5e:fe::10
#                  (second Postfix sink; --no-proxy-sink leaves the addresses to the
#                  scanning proxy, deploy/proxy/run.sh), quarantine egress 192.0.2.25,
#                  fd00:5e:fe::25 (the proxy's relays leave from there and reach the
#                  internet through the hypervisor; the hypervisor reaches the proxy's
#                  management side, 198.19.1.1 <-> 198.19.1.2, where smtpgovd's policy
#                  service listens in the steering tests)
# IPv4/IPv6 forwarding is on in P-hv only. The internet and proxy namespaces route
# only the testbed ranges back (no default route), so replies to spoofed sources die
# there instead of looping.
#
# veth settings for XDP: a veth only accepts XDP frames (XDP_TX, ndo_xdp_xmit) when
# the receiving end runs NAPI, which it does when it has an XDP program or GRO
# enabled. GRO on the hypervisor end lets smtpgov-flood's live frames (XDP_TX out of
# the VM's eth0) arrive even when no governor is attached (or it is in generic mode).
# The VM end runs a pass-through XDP program (bpf/xdp_pass.bpf.c), standing in for a
# guest's virtio NIC, to which a tap delivers XDP_TX frames: with GRO alone the
# frames smtpgov sends back with XDP_TX (RSTs for refused SYNs) are accepted by the
# veth but never reach the VM's stack (measured on 6.18), and a blocked VM's MTA would
# wait for SYN timeouts instead of failing fast.
#
# VLAN VM (--vlan-vm I): the link of VM I carries 802.1Q-tagged frames (VLAN ID,
# default 100). This kernel has neither 8021q nor bridge VLAN filtering, so the tag is
# pushed and popped by tc BPF programs (smtpgov-flood vlan-tag) on both ends: egress
# pushes it into the frame (tx VLAN offload is off, so the tag is in the payload, as
# on a trunk), ingress pops it. XDP on PvI therefore sees tagged frames.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
root=$(dirname "$here")
tpl=$here/testbed

prefix=${SG_PREFIX:-sg}
nvms=${SG_VMS:-3}
vlan_vm=${SG_VLAN_VM:-0}
vlan_id=${SG_VLAN_ID:-100}
proxy_sink=${SG_PROXY_SINK:-1}
flood=${SG_FLOOD:-$root/build/bin/smtpgov-flood}
xdp_pass=${SG_XDP_PASS_OBJ:-$(dirname "$flood")/../bpf-gen/xdp_pass.bpf.o}

die() { echo "testbed: $*" >&2; exit 1; }
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while (($#)); do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --vms) nvms=$2; shift 2 ;;
        --vlan-vm) vlan_vm=$2; shift 2 ;;
        --vlan-id) vlan_id=$2; shift 2 ;;
        --no-proxy-sink) proxy_sink=0; shift ;;
        -h|--help) usage ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
(($#)) || usage
cmd=$1; shift

[[ $prefix =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "prefix must be 1-8 of [a-z0-9], starting with a letter: '$prefix'"
[[ $nvms =~ ^[0-9]+$ ]] && ((nvms >= 1 && nvms <= 200)) || die "--vms must be 1..200"
[[ $vlan_vm =~ ^[0-9]+$ ]] && ((vlan_vm <= nvms)) || die "--vlan-vm must be 0 (none) or 1..$nvms"
[[ $vlan_id =~ ^[0-9]+$ ]] && ((vlan_id >= 1 && vlan_id <= 4094)) || die "--vlan-id must be 1..4094"

state=/run/smtpgov-testbed/$prefix
ns_hv=$prefix-hv ns_inet=$prefix-inet ns_proxy=$prefix-proxy
inet_v4=(203.0.113.25 203.0.113.26 198.51.100.25 198.51.100.26)
inet_v6=(fd00:5e:f0::25 fd00:5e:f0::26)
proxy_v4=192.0.2.10 proxy_v6=fd00:5e:fe::10
egress_v4=192.0.2.25 egress_v6=fd00:5e:fe::25

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ns_exists() { [[ -e /run/netns/$1 ]]; }
vm_ns() { echo "$prefix-vm$1"; }
vm_if() { echo "${prefix}v$1"; }
vm_v4() { echo "198.18.$1.2"; }
vm_v6() { echo "fd00:5e:0:$1::2"; }
hv_v4() { echo "198.18.$1.1"; }
hv_v6() { echo "fd00:5e:0:$1::1"; }

# The namespaces of this testbed that exist now (also VMs beyond --vms from an earlier up).
our_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^${prefix}-(hv|inet|proxy|vm[0-9]+)$" || true
}

ns_up() {
    local ns=$1
    ns_exists "$ns" || ip netns add "$ns"
    nsx "$ns" ip link set lo up
    nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# veth_pair NS_A IF_A NS_B IF_B: created directly inside the namespaces.
veth_pair() {
    nsx "$1" ip link show "$2" &>/dev/null && return 0
    ip link add name "$2" netns "$1" type veth peer name "$4" netns "$3"
}

addr() { # addr NS DEV CIDR...
    local ns=$1 dev=$2; shift 2
    for a in "$@"; do
        if [[ $a == *:* ]]; then
            nsx "$ns" ip -6 addr replace "$a" dev "$dev" nodad
        else
            nsx "$ns" ip addr replace "$a" dev "$dev"
        fi
    done
}

gro_on() { nsx "$1" ethtool -K "$2" gro on >/dev/null; }

# Pin the neighbour entry of the gateway so the first frame (and smtpgov-flood's MAC
# lookup) never waits for ARP/ND.
pin_gateway() { # pin_gateway VMNS DEV HVNS HVDEV V4 V6
    local mac
    mac=$(nsx "$3" cat "/sys/class/net/$4/address")
    nsx "$1" ip neigh replace "$5" lladdr "$mac" dev "$2" nud permanent
    nsx "$1" ip -6 neigh replace "$6" lladdr "$mac" dev "$2" nud permanent
}

up_hv() {
    ns_up "$ns_hv"
    nsx "$ns_hv" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

up_inet() {
    ns_up "$ns_inet"
    veth_pair "$ns_hv" "${prefix}up" "$ns_inet" eth0
    addr "$ns_hv" "${prefix}up" 198.19.0.1/24 fd00:5e:ff::1/64
    addr "$ns_inet" eth0 198.19.0.2/24 fd00:5e:ff::2/64
    local a
    for a in "${inet_v4[@]}"; do addr "$ns_inet" eth0 "$a/32"; done
    for a in "${inet_v6[@]}"; do addr "$ns_inet" eth0 "$a/128"; done
    nsx "$ns_hv" ip link set "${prefix}up" up
    nsx "$ns_inet" ip link set eth0 up
    nsx "$ns_hv" ip route replace default via 198.19.0.2
    nsx "$ns_hv" ip -6 route replace default via fd00:5e:ff::2
    nsx "$ns_inet" ip route replace 198.18.0.0/15 via 198.19.0.1
    nsx "$ns_inet" ip -6 route replace fd00:5e::/32 via fd00:5e:ff::1
    # the proxy's addresses (its relays leave from the egress address); fd00:5e:fe:: is
    # inside fd00:5e::/32 already
    nsx "$ns_inet" ip route replace "$proxy_v4/32" via 198.19.0.1
    nsx "$ns_inet" ip route replace "$egress_v4/32" via 198.19.0.1
    if ! nsx "$ns_inet" nft list table netdev sgcount &>/dev/null; then
        sed "s/@DEV@/eth0/" "$tpl/syncount.nft.in" | nsx "$ns_inet" nft -f -
    fi
}

up_proxy() {
    ns_up "$ns_proxy"
    veth_pair "$ns_hv" "${prefix}px" "$ns_proxy" eth0
    addr "$ns_hv" "${prefix}px" 198.19.1.1/24 fd00:5e:fd::1/64
    addr "$ns_proxy" eth0 198.19.1.2/24 fd00:5e:fd::2/64 "$proxy_v4/32" "$proxy_v6/128" \
        "$egress_v4/32" "$egress_v6/128"
    nsx "$ns_hv" ip link set "${prefix}px" up
    nsx "$ns_proxy" ip link set eth0 up
    nsx "$ns_hv" ip route replace "$proxy_v4/32" via 198.19.1.2
    nsx "$ns_hv" ip route replace "$egress_v4/32" via 198.19.1.2
    nsx "$ns_hv" ip -6 route replace fd00:5e:fe::/64 via fd00:5e:fd::2
    nsx "$ns_proxy" ip route replace 198.18.0.0/15 via 198.19.1.1
    nsx "$ns_proxy" ip -6 route replace fd00:5e::/32 via fd00:5e:fd::1
    # the internet's SMTP servers, for the scanning proxy's relays (no default route:
    # nothing else leaves)
    local r
    for r in 203.0.113.0/24 198.51.100.0/24; do nsx "$ns_proxy" ip route replace "$r" via 198.19.1.1; done
    nsx "$ns_proxy" ip -6 route replace fd00:5e:f0::/64 via fd00:5e:fd::1
}

up_vm() {
    local i=$1 ns hvif
    ns=$(vm_ns "$i") hvif=$(vm_if "$i")
    ns_up "$ns"
    veth_pair "$ns_hv" "$hvif" "$ns" eth0
    addr "$ns_hv" "$hvif" "$(hv_v4 "$i")/24" "$(hv_v6 "$i")/64"
    addr "$ns" eth0 "$(vm_v4 "$i")/24" "$(vm_v6 "$i")/64"
    nsx "$ns_hv" ip link set "$hvif" up
    nsx "$ns" ip link set eth0 up
    gro_on "$ns_hv" "$hvif"
    gro_on "$ns" eth0
    [[ -f $xdp_pass ]] || die "the VMs' NICs need $xdp_pass (build target xdp_pass_bpf_gen) or SG_XDP_PASS_OBJ"
    nsx "$ns" ip link show eth0 | grep -q 'xdp' ||
        nsx "$ns" ip link set dev eth0 xdpdrv obj "$xdp_pass" sec xdp
    nsx "$ns" ip route replace default via "$(hv_v4 "$i")"
    nsx "$ns" ip -6 route replace default via "$(hv_v6 "$i")"
    pin_gateway "$ns" eth0 "$ns_hv" "$hvif" "$(hv_v4 "$i")" "$(hv_v6 "$i")"
    if ((i == vlan_vm)); then
        [[ -x $flood ]] || die "the VLAN VM needs $flood (build target smtpgov-flood) or SG_FLOOD"
        nsx "$ns" ethtool -K eth0 txvlan off >/dev/null
        nsx "$ns_hv" ethtool -K "$hvif" txvlan off >/dev/null
        nsx "$ns" tc filter show dev eth0 egress | grep -q vlan_push \
            || "$flood" vlan-tag --netns "$ns" --iface eth0 --vlan "$vlan_id" >/dev/null
        nsx "$ns_hv" tc filter show dev "$hvif" egress | grep -q vlan_push \
            || "$flood" vlan-tag --netns "$ns_hv" --iface "$hvif" --vlan "$vlan_id" >/dev/null
        echo "$vlan_id" >"$state/vlan-vm$i"
    fi
}

# start_postfix NS NAME ADDR...: a private Postfix instance listening on ADDRs.
start_postfix() {
    local ns=$1 name=$2; shift 2
    local dir=$state/$name ifaces="" a
    for a in "$@"; do
        [[ $a == *:* ]] && a="[$a]"
        ifaces+=${ifaces:+, }$a
    done
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
    sed -e "s|@STATE@|$dir|g" -e "s|@NAME@|$name|g" -e "s|@INET_INTERFACES@|$ifaces|" \
        "$tpl/postfix-main.cf.in" >"$dir/etc/main.cf"
    cp "$tpl/postfix-master.cf" "$dir/etc/master.cf"
    if [[ ! -s $dir/etc/cert.pem ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
            -subj "/CN=$name.testbed.invalid" -keyout "$dir/etc/key.pem" \
            -out "$dir/etc/cert.pem" 2>/dev/null
        chmod 600 "$dir/etc/key.pem"
    fi
    touch "$dir/maillog"
    chown postfix "$dir/data"
    if nsx "$ns" postfix -c "$dir/etc" status &>/dev/null; then
        return 0
    fi
    nsx "$ns" postfix -c "$dir/etc" start >/dev/null 2>"$dir/start.err" \
        || die "postfix $name failed to start: $(cat "$dir/start.err")"
    wait_listen "$ns" "$1" 25 || die "postfix $name does not listen on $1:25"
    local banner
    banner=$(nsx "$ns" timeout 5 bash -c "exec 3<>/dev/tcp/$1/25 && head -c 3 <&3" 2>/dev/null || true)
    [[ $banner == 220 ]] || die "postfix $name does not greet on $1:25 (see $dir/maillog)"
}

wait_listen() { # wait_listen NS ADDR PORT: up to 5 s
    local t
    for ((t = 0; t < 50; t++)); do
        nsx "$1" ss -Htln "sport = :$3" | grep -qF "$2:$3" && return 0
        sleep 0.1
    done
    return 1
}

cmd_up() {
    mkdir -p "$state"
    echo "$nvms" >"$state/vms"
    up_hv
    up_inet
    up_proxy
    local i
    for ((i = 1; i <= nvms; i++)); do up_vm "$i"; done
    start_postfix "$ns_inet" inet "${inet_v4[@]}" "${inet_v6[@]}"
    if ((proxy_sink)); then
        start_postfix "$ns_proxy" proxy "$proxy_v4" "$proxy_v6"
    fi
    # first contact from every VM, both families, proves the routing before anyone relies on it
    for ((i = 1; i <= nvms; i++)); do
        nsx "$(vm_ns "$i")" ping -c1 -W2 -q "${inet_v4[0]}" >/dev/null || die "vm$i cannot reach ${inet_v4[0]}"
        nsx "$(vm_ns "$i")" ping -6 -c1 -W2 -q "${inet_v6[0]}" >/dev/null || die "vm$i cannot reach ${inet_v6[0]}"
    done
    echo "testbed $prefix: up ($nvms VMs${vlan_vm:+$( ((vlan_vm)) && echo ", vm$vlan_vm on VLAN $vlan_id")})"
}

# Stop every process in a namespace: postfix first (orderly), then TERM, then KILL.
kill_ns_pids() {
    local ns=$1 pids t
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && return 0
    kill $pids 2>/dev/null || true
    for ((t = 0; t < 30; t++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && return 0
        sleep 0.1
    done
    kill -9 $pids 2>/dev/null || true
    sleep 0.2
}

cmd_down() {
    local ns
    for name in inet proxy; do
        ns=$prefix-$name
        if ns_exists "$ns" && [[ -f $state/$name/etc/main.cf ]]; then
            nsx "$ns" postfix -c "$state/$name/etc" stop &>/dev/null || true
        fi
    done
    for ns in $(our_namespaces); do
        kill_ns_pids "$ns"
        ip netns del "$ns"
    done
    rm -rf "$state"
    rmdir /run/smtpgov-testbed 2>/dev/null || true
    echo "testbed $prefix: down"
}

syn_counter() { # syn_counter NAME -> packets
    nsx "$ns_inet" nft list counter netdev sgcount "$1" 2>/dev/null \
        | awk '/packets/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}'
}

# syncount [--json] [--family 4|6] [--port N]: SYNs counted at the internet's uplink
cmd_syncount() {
    ns_exists "$ns_inet" || die "testbed $prefix is not up"
    local json=0 fams="4 6" ports="25 465 587" f p n total=0 out=""
    while (($#)); do
        case $1 in
            --json) json=1; shift ;;
            --family) fams=$2; shift 2 ;;
            --port) ports=$2; shift 2 ;;
            *) die "syncount: unknown option $1" ;;
        esac
    done
    for f in $fams; do
        for p in $ports; do
            n=$(syn_counter "syn${f}_$p")
            n=${n:-0}
            total=$((total + n))
            out+="\"syn${f}_$p\": $n, "
        done
    done
    if ((json)); then
        echo "{${out}\"total\": $total}"
    else
        echo "$total"
    fi
}

cmd_delivered() {
    local name=${1:-inet}
    [[ -f $state/$name/maillog ]] || die "no sink '$name' in testbed $prefix"
    grep -c 'status=sent' "$state/$name/maillog" || true
}

cmd_env() { # shell-sourceable description of the topology
    local i n
    n=$(cat "$state/vms" 2>/dev/null || echo "$nvms")
    echo "SG_PREFIX=$prefix SG_STATE=$state SG_NS_HV=$ns_hv SG_NS_INET=$ns_inet SG_NS_PROXY=$ns_proxy"
    echo "SG_INET_V4=(${inet_v4[*]}) SG_INET_V6=(${inet_v6[*]}) SG_PROXY_V4=$proxy_v4 SG_PROXY_V6=$proxy_v6"
    echo "SG_EGRESS_V4=$egress_v4 SG_EGRESS_V6=$egress_v6 SG_HV_PROXY_V4=198.19.1.1 SG_HV_PROXY_V6=fd00:5e:fd::1"
    for ((i = 1; i <= n; i++)); do
        echo "SG_VM${i}_NS=$(vm_ns "$i") SG_VM${i}_IF=$(vm_if "$i") SG_VM${i}_V4=$(vm_v4 "$i") SG_VM${i}_V6=$(vm_v6 "$i") SG_VM${i}_VLAN=$(cat "$state/vlan-vm$i" 2>/dev/null || echo 0)"
    done
}

cmd_status() {
    local nss ns
    nss=$(our_namespaces)
    if [[ -z $nss ]]; then
        echo "testbed $prefix: down"
        return 0
    fi
    echo "testbed $prefix: namespaces: $(echo $nss)"
    for ns in $nss; do
        printf '  %-12s links: %s\n' "$ns" \
            "$(nsx "$ns" ip -br link | awk '$1 != "lo" {sub(/@.*/, "", $1); printf "%s(%s) ", $1, $2}')"
        local pids
        pids=$(ip netns pids "$ns" | tr '\n' ' ')
        [[ -n $pids ]] && printf '  %-12s pids: %s\n' "" "$pids"
    done
    local i
    for i in $(ls "$state" 2>/dev/null | sed -n 's/^vlan-vm//p'); do
        echo "  vm$i: VLAN $(cat "$state/vlan-vm$i") on its link (flood with --iface eth0 --vlan $(cat "$state/vlan-vm$i"))"
    done
    if ns_exists "$ns_inet"; then
        echo "  SYNs counted at the internet: $(cmd_syncount --json)"
        [[ -f $state/inet/maillog ]] && echo "  mail delivered at the internet sink: $(cmd_delivered inet)"
        [[ -f $state/proxy/maillog ]] && echo "  mail delivered at the proxy sink: $(cmd_delivered proxy)"
    fi
    return 0
}

case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    syncount) cmd_syncount "$@" ;;
    delivered) cmd_delivered "$@" ;;
    env) cmd_env ;;
    *) usage ;;
esac
