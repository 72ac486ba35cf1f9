# tools/bench/run.sh: the benchmark topology (network namespaces only; every namespace,
# interface and pin name starts with "sgbn"). Sourced; needs $SGBN_TMP.
#
#   sgbn-vm1   eth0 198.18.2.2/24 (AF_PACKET flood: one-vm-flood-veth)
#   sgbn-vm2   eth0 198.18.3.2/24 (real SMTP sessions: flood-plus-legit)
#   sgbn-hv    sgbnt0 tap 198.18.1.1/24 (its "VM" 198.18.1.2, and the 1,000 spoofed
#              sources 10.99.0.0-10.99.3.231 of many-sources, written by tap_writer)
#              sgbnv1 198.18.2.1/24, sgbnv2 198.18.3.1/24, sgbnup 198.19.0.1/24 (uplink);
#              forwarding on, rp_filter off, smtpgovd on CPU 1: the contenders run here
#   sgbn-inet  eth0 198.19.0.2/24; 203.0.113.25 (SMTP sink), 203.0.113.26 (flood target);
#              a netdev-ingress nft counter of the flood's SYNs that got through
#              ("admitted"), which then drops them (no RST storms back)

SGBN_NS_HV=sgbn-hv SGBN_NS_VM1=sgbn-vm1 SGBN_NS_VM2=sgbn-vm2 SGBN_NS_INET=sgbn-inet
SGBN_TAP=sgbnt0 SGBN_VETH=sgbnv1 SGBN_LEGIT_IF=sgbnv2
SGBN_TAP_VM_V4=198.18.1.2 SGBN_TAP_VM_MAC=02:5e:bb:00:01:02
SGBN_VM1_V4=198.18.2.2 SGBN_VM2_V4=198.18.3.2
SGBN_SPOOF_BASE=10.99.0.0 SGBN_SPOOF_PREFIX=10.99.0.0/22
SGBN_SINK_V4=203.0.113.25 SGBN_TARGET_V4=203.0.113.26
SGBN_BPFFS_DROP=/sys/fs/bpf/sgbn-drop SGBN_BPFFS_SMTPGOV=/sys/fs/bpf/sgbn-smtpgov

# In a namespace: network namespace only (nsenter keeps the host's mount namespace and
# so the real bpffs); `in_ns_sys` for what must see the namespace's own /sys.
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
in_ns_sys() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
hv() { in_ns "$SGBN_NS_HV" "$@"; }

topo_down() {
    local ns
    for ns in "$SGBN_NS_VM1" "$SGBN_NS_VM2" "$SGBN_NS_INET" "$SGBN_NS_HV"; do
        [[ -e /run/netns/$ns ]] && ip netns del "$ns"
    done
    rm -rf "$SGBN_BPFFS_DROP" "$SGBN_BPFFS_SMTPGOV"
    return 0
}

topo_veth() { # NS_A IF_A NS_B IF_B
    ip link add name "$2" netns "$1" type veth peer name "$4" netns "$3"
}

topo_up() {
    local ns
    topo_down
    for ns in "$SGBN_NS_HV" "$SGBN_NS_VM1" "$SGBN_NS_VM2" "$SGBN_NS_INET"; do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
    done
    in_ns_sys "$SGBN_NS_HV" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0
    # the tap: owned by nobody until tap_writer attaches (as QEMU does to libvirt's tap)
    hv ip tuntap add dev "$SGBN_TAP" mode tap
    hv ip addr add 198.18.1.1/24 dev "$SGBN_TAP"
    hv ip link set "$SGBN_TAP" up
    hv ip neigh replace "$SGBN_TAP_VM_V4" lladdr "$SGBN_TAP_VM_MAC" dev "$SGBN_TAP" nud permanent
    topo_veth "$SGBN_NS_HV" "$SGBN_VETH" "$SGBN_NS_VM1" eth0
    topo_veth "$SGBN_NS_HV" "$SGBN_LEGIT_IF" "$SGBN_NS_VM2" eth0
    topo_veth "$SGBN_NS_HV" sgbnup "$SGBN_NS_INET" eth0
    hv ip addr add 198.18.2.1/24 dev "$SGBN_VETH"
    hv ip addr add 198.18.3.1/24 dev "$SGBN_LEGIT_IF"
    hv ip addr add 198.19.0.1/24 dev sgbnup
    for ns in "$SGBN_NS_VM1" "$SGBN_NS_VM2" "$SGBN_NS_INET"; do in_ns "$ns" ip link set eth0 up; done
    hv ip link set "$SGBN_VETH" up
    hv ip link set "$SGBN_LEGIT_IF" up
    hv ip link set sgbnup up
    in_ns "$SGBN_NS_VM1" ip addr add "$SGBN_VM1_V4/24" dev eth0
    in_ns "$SGBN_NS_VM1" ip route add default via 198.18.2.1
    in_ns "$SGBN_NS_VM2" ip addr add "$SGBN_VM2_V4/24" dev eth0
    in_ns "$SGBN_NS_VM2" ip route add default via 198.18.3.1
    in_ns "$SGBN_NS_INET" ip addr add 198.19.0.2/24 dev eth0
    in_ns "$SGBN_NS_INET" ip addr add "$SGBN_SINK_V4/32" dev eth0
    in_ns "$SGBN_NS_INET" ip addr add "$SGBN_TARGET_V4/32" dev eth0
    in_ns "$SGBN_NS_INET" ip route add 198.18.0.0/16 via 198.19.0.1
    in_ns "$SGBN_NS_INET" ip route add "$SGBN_SPOOF_PREFIX" via 198.19.0.1
    hv ip route add 203.0.113.0/24 via 198.19.0.2
    # Nothing but the flood on the flooded links, so that every contender's count can be
    # compared with the frames sent exactly: no IPv6 (router solicitations, MLD), static
    # neighbours on the veth VM's link (no ARP)
    for ns in "$SGBN_NS_HV" "$SGBN_NS_VM1" "$SGBN_NS_VM2" "$SGBN_NS_INET"; do
        in_ns_sys "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    in_ns "$SGBN_NS_VM1" ip neigh replace 198.18.2.1 lladdr "$(topo_mac "$SGBN_NS_HV" "$SGBN_VETH")" dev eth0 nud permanent
    hv ip neigh replace "$SGBN_VM1_V4" lladdr "$(topo_mac "$SGBN_NS_VM1" eth0)" dev "$SGBN_VETH" nud permanent
    # No RPS: on a tap, write() hands each frame to the stack inline (as in QEMU's thread),
    # and a veth's receive runs at the end of each send; both in the generator's task, where
    # its CPU time measures them exactly. With RPS to the other CPU the backlog dropped
    # 10-55% of a tap flood before any filter saw it, and the other CPU's work could only
    # be counted from /proc/stat's ticks, which other load on the machine swamps.
    # admitted: the flood's SYNs that reached the internet (after any filter)
    in_ns "$SGBN_NS_INET" nft -f - <<NFT
table netdev sgbn {
    counter admitted {}
    chain in {
        type filter hook ingress device "eth0" priority 0;
        ip daddr $SGBN_TARGET_V4 tcp dport 25 tcp flags & (syn | ack) == syn counter name "admitted" drop
    }
}
NFT
    # neighbours resolved before any flood (the legit VM's and the uplink's)
    in_ns "$SGBN_NS_VM2" ping -c1 -W2 198.18.3.1 >/dev/null
    hv ping -c1 -W2 198.19.0.2 >/dev/null
    mkdir -p "$SGBN_BPFFS_DROP"
}

# topo_mac NS DEV: the MAC address of DEV in NS
topo_mac() { in_ns "$1" ip -o link show dev "$2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }
topo_tap_mac() { topo_mac "$SGBN_NS_HV" "$SGBN_TAP"; }

# admitted_count: the flood SYNs counted at the internet's ingress so far
admitted_count() {
    in_ns "$SGBN_NS_INET" nft -j list counter netdev sgbn admitted | python3 -c '
import json, sys
print(next(o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o))'
}
