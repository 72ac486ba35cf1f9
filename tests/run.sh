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

# -O2 with line tables only (-g1): backtraces and sanitizer reports keep file:line, and
# the build of both trees takes about a quarter less CPU than with full -g.
build_dir=${SMTPGOV_BUILD_DIR:-build}
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
cmake -S . -B "$build_dir" "${flags[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

# The fuzz tree (tests/fuzz/README.md): clang, ASan+UBSan, each target 20 s (10 min with
# SMTPGOV_LONG=1); about 2.5 minutes with its build. SMTPGOV_FUZZ=0 skips it. It runs
# first so that the main suite's summary closes the output; its failure still fails.
# It also builds smtpgovd_asan, the daemon the main suite's ASan soak runs
# (integration.daemon.soak_asan, which fails without this tree).
fuzz_rc=0
if [[ ${SMTPGOV_FUZZ:-1} != 0 ]]; then
    # (chained with &&: set -e does not apply on the left of ||)
    { cmake -S . -B build-fuzz "${flags[@]}" -DSMTPGOV_FUZZ=ON \
            -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null &&
        cmake --build build-fuzz -j"$(nproc)" --target fuzz smtpgovd_asan &&
        (cd build-fuzz && ctest --output-on-failure -L fuzz -j"$(nproc)"); } || fuzz_rc=$?
fi

# Tests that share the testbed or the bpffs pins hold ctest RESOURCE_LOCKs, so -j2 is safe.
(cd "$build_dir" && ctest --output-on-failure --timeout 900 -j2 "$@")
if ((fuzz_rc != 0)); then
    echo "tests/run.sh: the fuzz stage failed (exit $fuzz_rc); see its output above" >&2
    exit "$fuzz_rc"
fi
