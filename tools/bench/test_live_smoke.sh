#!/usr/bin/env bash
# ctest bench.live_flood: tools/bench/live_flood.sh in a micro mode (one round of 20,000
# frames per contender). No wall-clock assertion: it checks that the table was printed,
# that every receiver judged every frame sent (live_flood.sh exits 1 otherwise) and that
# nothing of the topology is left.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
tag=${SG_NS_TAG:-}
out=$("$here/live_flood.sh" --rounds 1 --frames 20000)
echo "$out"
for c in empty smtpgov-over smtpgov-blocked; do
    grep -Eq "^$c +1 +20000 +20000 +yes" <<<"$out" || { echo "test_live_smoke: no valid row for $c" >&2; exit 1; }
done
left=$(ip netns list | awk '{print $1}' | grep "^${tag}sglf-" || true)
[[ -z $left ]] || { echo "test_live_smoke: namespaces left behind: $left" >&2; exit 1; }
[[ ! -e /sys/fs/bpf/${tag}sglf ]] || { echo "test_live_smoke: pins left behind" >&2; exit 1; }
echo "test_live_smoke: ok"
