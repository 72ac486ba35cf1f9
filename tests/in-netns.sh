#!/usr/bin/env bash
# Runs a test binary in a network namespace of its own with only loopback up, so what it
# serves and dials (an etcd of its own on 127.0.0.1) can meet nothing else on the machine.
set -euo pipefail
exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
