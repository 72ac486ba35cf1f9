#!/usr/bin/env bash
# Runs a test binary as an unprivileged user (nobody), so that root cannot hide a
# dependency on it. The binary is copied to a fresh world-readable directory first:
# the build tree may sit under a directory nobody cannot enter (e.g. /root).
set -euo pipefail
bin=$1
shift
dir=$(mktemp -d /tmp/sg-as-nobody.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$bin" "$dir/"
chmod 0755 "$dir" "$dir/$(basename "$bin")"
cd "$dir"
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$dir/$(basename "$bin")" "$@"
