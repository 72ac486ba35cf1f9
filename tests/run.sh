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

# The fuzz tree (tests/fuzz/README.md): clang, ASan+UBSan. It builds the fuzz targets and
# smtpgovd_asan, the daemon the ASan soak runs (integration.daemon.soak_asan, which fails
# without this tree). Its fuzz.* tests (20 s each; 10 min with SMTPGOV_LONG=1) run inside
# the main suite below (SMTPGOV_FUZZ_TREE), beside the serialized integration tests.
# SMTPGOV_FUZZ=0 skips the tree and its tests.
fuzz_tree=("-DSMTPGOV_FUZZ_TREE=")
if [[ ${SMTPGOV_FUZZ:-1} != 0 ]]; then
    fuzz_tree=("-DSMTPGOV_FUZZ_TREE=$PWD/build-fuzz")
fi
cmake -S . -B "$build_dir" "${flags[@]}" "${fuzz_tree[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

fuzz_rc=0
if [[ ${SMTPGOV_FUZZ:-1} != 0 ]]; then
    # (chained with &&: set -e does not apply on the left of ||)
    { cmake -S . -B build-fuzz "${flags[@]}" -DSMTPGOV_FUZZ=ON \
            -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null &&
        cmake --build build-fuzz -j"$(nproc)" --target fuzz smtpgovd_asan; } || fuzz_rc=$?
fi

# Tests that share the testbed or the bpffs pins hold ctest RESOURCE_LOCKs, so -j2 is safe.
(cd "$build_dir" && ctest --output-on-failure --timeout 900 -j2 "$@")
if ((fuzz_rc != 0)); then
    echo "tests/run.sh: building the fuzz tree failed (exit $fuzz_rc); see its output above" >&2
    exit "$fuzz_rc"
fi
