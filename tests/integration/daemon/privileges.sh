#!/usr/bin/env bash
# Without root, smtpgovd refuses clearly (one line on stderr, exit 1) and touches nothing:
# no bpffs pin, no state directory, no socket.
source "$(dirname "$(readlink -f "$0")")/common.sh"
[[ $EUID -eq 0 ]] || fail "this test needs root (to drop to nobody)"
tmp=$(mktemp -d /tmp/sg-priv.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$SG_BIN/smtpgovd" "$@"; }

rc=0
as_nobody --interfaces 'vnet*' --bpffs "$tmp/bpffs" --state-dir "$tmp/state" --socket "$tmp/ctl.sock" \
    --metrics-listen "" 2>"$tmp/err" || rc=$?
log "smtpgovd as nobody: exit $rc: $(cat "$tmp/err")"
assert_eq "$rc" 1 "exit status without root"
assert_eq "$(wc -l <"$tmp/err")" 1 "lines on stderr"
grep -q "needs root" "$tmp/err" || fail "the message does not say that root is needed"
[[ ! -e $tmp/bpffs && ! -e $tmp/state && ! -e $tmp/ctl.sock ]] || fail "smtpgovd created files: $(ls "$tmp")"

rc=0
as_nobody --bpffs "$tmp/bpffs" --remove 2>"$tmp/err" || rc=$?
assert_eq "$rc" 1 "exit status of --remove without root"
grep -q "needs root" "$tmp/err" || fail "--remove without root: $(cat "$tmp/err")"
log "test passed"
