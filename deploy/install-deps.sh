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
    # smtpgov-libvirt (the libvirt companion; smtpgovd itself never links libvirt)
    libvirt-dev libxml2-dev
    # testbed, demo and integration tests
    iproute2 iputils-ping procps psmisc postfix swaks curl prometheus python3
    # testbed: GRO on veths (XDP_TX/live frames need the peer in NAPI mode), SYN counters
    ethtool nftables
)

export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; the testbed writes its own config, so say "No configuration".
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The packaged postfix/prometheus services are not used: the testbed runs its own instances.
for svc in postfix prometheus; do
    if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done
echo "install-deps.sh: all dependencies present"
