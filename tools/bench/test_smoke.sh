#!/usr/bin/env bash
# ctest bench.smoke: tools/bench/run.sh in a micro mode (one round of 20,000 frames on the
# tap scenario, 1 VM, no detection bursts), then results.py --check: every field of
# results.json present, every row valid (its contender judged every frame sent), a
# receiver cost on every filtering row, a plot written, nothing of the topology left.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
out=$(mktemp -d /tmp/sgbn-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$here/run.sh" --rounds 1 --frames 20000 --scenarios one-vm-flood --vms 1 --detection-bursts 0 --out "$out"
python3 "$here/lib/results.py" --check "$out/results.json" --scenarios one-vm-flood
[[ -s $out/results.png ]] || { echo "test_smoke: no results.png" >&2; exit 1; }
left=$(ip netns list | awk '{print $1}' | grep '^sgbn-' || true)
[[ -z $left ]] || { echo "test_smoke: namespaces left behind: $left" >&2; exit 1; }
[[ ! -e /sys/fs/bpf/sgbn-drop && ! -e /sys/fs/bpf/sgbn-smtpgov ]] || { echo "test_smoke: pins left behind" >&2; exit 1; }
echo "test_smoke: ok"
