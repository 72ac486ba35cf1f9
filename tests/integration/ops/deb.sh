#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` in the build directory writes
# smtpgov_<version>_amd64.deb; it installs on this machine, smtpgovd --check-config
# accepts the shipped config, and dpkg -r / --purge take everything away again.
set -euo pipefail
build=$(cd "${1:?usage: deb.sh BUILD_DIR}" && pwd)
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

[[ $EUID -eq 0 ]] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' smtpgov 2>/dev/null | grep -q 'install ok installed'; then
    fail "a smtpgov package is already installed on this machine; this test does not touch it"
fi

cd "$build"
rm -f smtpgov_*.deb
cpack -G DEB >cpack.log 2>&1 || { cat cpack.log >&2; fail "cpack -G DEB failed"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' CMakeCache.txt)
deb=$build/smtpgov_${version}_amd64.deb
[[ -f $deb ]] || fail "$deb not written ($(ls ./*.deb 2>/dev/null))"
log "ok: built $(basename "$deb")"

depends=$(dpkg-deb -f "$deb" Depends)
for d in libbpf1 libxdp1 libprometheus-cpp-core1.0 libboost-program-options1.74.0; do
    [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
# the exporter serves /metrics itself: no civetweb (prometheus-cpp's pull library)
[[ $depends != *libprometheus-cpp-pull* ]] || fail "Depends still names libprometheus-cpp-pull: $depends"
log "ok: Depends: $depends"

files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')
for f in /usr/sbin/smtpgovd /usr/bin/smtpgovctl /usr/bin/smtpgov-flood /lib/systemd/system/smtpgovd.service \
         /usr/lib/tmpfiles.d/smtpgov.conf /etc/smtpgov/smtpgovd.json /etc/smtpgov/policy.json \
         /usr/share/doc/smtpgov/policy.example.json /usr/share/man/man8/smtpgovctl.8 \
         /usr/share/bash-completion/completions/smtpgovctl; do
    grep -qx "$f" <<<"$files" || fail "package lacks $f"
done
ctrl=$(mktemp -d)
trap 'rm -rf "$ctrl"' EXIT
dpkg-deb -e "$deb" "$ctrl"
grep -qx /etc/smtpgov/smtpgovd.json "$ctrl/conffiles" || fail "smtpgovd.json is not a conffile"
log "ok: contents and conffiles"

cleanup() {
    rm -rf "$ctrl"
    dpkg --purge smtpgov >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$deb" || fail "dpkg -i failed"
log "ok: installed"

if command -v systemd-tmpfiles >/dev/null; then
    [[ $(stat -c %a /run/smtpgov 2>/dev/null) == 700 ]] || fail "postinst did not create /run/smtpgov 0700"
fi
/usr/sbin/smtpgovd --check-config --config /etc/smtpgov/smtpgovd.json || fail "smtpgovd --check-config rejected the shipped config"
log "ok: smtpgovd --check-config"
/usr/bin/smtpgovctl policy validate /usr/share/doc/smtpgov/policy.example.json
/usr/bin/smtpgovctl --help >/dev/null
set +e
/usr/bin/smtpgovctl --socket /nonexistent/ctl.sock status 2>/dev/null
rc=$?
set -e
((rc == 1)) || fail "smtpgovctl status without a daemon: exit $rc, expected 1"
bash -n /usr/share/bash-completion/completions/smtpgovctl || fail "completion script is not valid bash"
if command -v systemd-analyze >/dev/null; then
    # the man page named in Documentation= may be absent when man-db is not installed
    systemd-analyze verify /lib/systemd/system/smtpgovd.service >"$build/unit-verify.log" 2>&1 || true
    if grep -v "man smtpgovctl" "$build/unit-verify.log" | grep -qi 'error\|invalid\|unknown\|fail'; then
        cat "$build/unit-verify.log" >&2
        fail "systemd-analyze verify complained about smtpgovd.service"
    fi
fi
log "ok: installed binaries work"

dpkg -r smtpgov
for f in /usr/sbin/smtpgovd /usr/bin/smtpgovctl /lib/systemd/system/smtpgovd.service; do
    [[ ! -e $f ]] || fail "$f left after dpkg -r"
done
[[ -f /etc/smtpgov/smtpgovd.json ]] || fail "dpkg -r removed the conffile (only --purge may)"
dpkg --purge smtpgov
[[ ! -e /etc/smtpgov/smtpgovd.json ]] || fail "conffile left after --purge"
log "ok: removed and purged"
