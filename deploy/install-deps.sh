#!/usr/bin/env bash
# Install every build, test and demo dependency of smtpgov from Debian 12 packages.
# Idempotent: safe to run on every CI run.
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
    echo "install-deps.sh: must run as root (apt-get)" >&2
    exit 1
fi

packages=(
    # toolchain
    build-essential cmake pkg-config clang llvm
    # fuzz tree (tests/fuzz): libFuzzer, ASan and UBSan runtimes (only a Recommends of clang)
    libclang-rt-14-dev
    # BPF
    libbpf-dev libxdp-dev xdp-tools bpftool libelf-dev zlib1g-dev linux-libc-dev
    # C++ libraries
    libboost-program-options-dev nlohmann-json3-dev prometheus-cpp-dev libsystemd-dev
    libgtest-dev libgmock-dev googletest libcurl4-openssl-dev
    # smtpgovctl report arf: ARF feedback reports parsed with GMime 3 (core/arf.h)
    libgmime-3.0-dev
    # smtpgov-libvirt (the libvirt companion; smtpgovd itself never links libvirt)
    libvirt-dev libxml2-dev
    # testbed, demo and integration tests (swaks needs IO::Socket::INET6 for IPv6, only
    # a Recommends)
    iproute2 iputils-ping procps psmisc postfix swaks libio-socket-inet6-perl curl prometheus python3
    # the reference scanning proxy (deploy/proxy/): Postfix + rspamd as its milter
    rspamd
    # testbed: GRO on veths (XDP_TX/live frames need the peer in NAPI mode), SYN counters
    ethtool nftables
    # tools/bench/run.sh: the hashlimit contender runs under iptables-legacy (Debian 12's
    # `iptables` is the nft backend), the plot is gnuplot's
    iptables gnuplot-nox
    # the Debian package and its unit (tests/integration/ops/deb.sh, unit.sh): lintian,
    # man pages checked, systemd-analyze verify/security, the daemon's system calls
    lintian man-db systemd strace
    # fleet (issue 12): etcd for the fleet tests and tools/bench/fleet.sh (the tests start
    # their own members; the policy-rc.d guard below keeps the package's service stopped)
    etcd-server etcd-client
    # DNSBL monitoring (controller/svc/dnsbl_resolver.h): c-ares for asynchronous lookups;
    # rbldnsd serves the test zones (the policy-rc.d guard keeps its service stopped)
    libc-ares-dev rbldnsd
)

export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; the testbed writes its own config, so say "No configuration".
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# No package installed here may start its system service: Postfix would bind port 25
# and rspamd 11332-11334 in the root namespace, and neither is used (the testbed and
# deploy/proxy/run.sh run private instances with their own config, queue and database
# directories). invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d, and exit
# code 101 means "not allowed": one is put in place for the install only, unless the
# machine already has its own (then it is left as it is).
policy_rc=/usr/sbin/policy-rc.d
own_policy_rc=0
if ((${#missing[@]})); then
    if [[ ! -e $policy_rc ]]; then
        printf '#!/bin/sh\n# smtpgov install-deps.sh: no service starts during the install\nexit 101\n' >"$policy_rc"
        chmod 755 "$policy_rc"
        own_policy_rc=1
        trap 'rm -f "$policy_rc"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if ((own_policy_rc)); then rm -f "$policy_rc"; trap - EXIT; fi
fi
# The packaged postfix/prometheus/rbldnsd services are not used: the tests run their own instances.
for svc in postfix prometheus rbldnsd; do
    if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done
# rbldnsd's package enables a socket unit on port 53 of every address: the tests run
# their own rbldnsd in a namespace, so the packaged units stay disabled (across reboots too).
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl disable -q --now rbldnsd.socket rbldnsd.service 2>/dev/null || true
fi
echo "install-deps.sh: all dependencies present"
