#!/usr/bin/env bash
# Mount the BPF filesystem on /sys/fs/bpf if the machine has not (pins need it).
set -euo pipefail
if [[ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]]; then
    mount -t bpf bpf /sys/fs/bpf
fi
