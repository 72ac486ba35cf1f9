#!/usr/bin/env bash
# Datapath benchmark: ns/frame per traffic class vs empty XDP and TC programs (the
# connection table's SYN, data, steering and return-path rows included).
# Usage (root): tools/bench/datapath.sh [repeat]   (SMTPGOV_BUILD_DIR, default build)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
if [[ $EUID -ne 0 ]]; then
    echo "datapath.sh: must run as root (BPF_PROG_TEST_RUN, network namespace)" >&2
    exit 1
fi
build_dir=${SMTPGOV_BUILD_DIR:-build}
[[ -f "$build_dir/CMakeCache.txt" ]] || cmake -S . -B "$build_dir" >/dev/null
cmake --build "$build_dir" --target smtpgov-bench-datapath >/dev/null
exec "$build_dir/bin/smtpgov-bench-datapath" "$@"
