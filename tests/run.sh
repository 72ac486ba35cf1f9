#!/usr/bin/env bash
# The one test command: installs dependencies, builds everything, runs every test.
# Must run as root (BPF, XDP, network namespaces). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

if [[ $EUID -ne 0 ]]; then
    echo "tests/run.sh: must run as root (BPF programs, XDP, network namespaces)" >&2
    exit 1
fi

deploy/install-deps.sh
tests/ensure-bpffs.sh

build_dir=${SMTPGOV_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

cd "$build_dir"
# Tests that share the testbed or the bpffs pins hold ctest RESOURCE_LOCKs, so -j2 is safe.
ctest --output-on-failure --timeout 900 -j2 "$@"
