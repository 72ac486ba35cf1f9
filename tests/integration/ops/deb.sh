#!/usr/bin/env bash
# The Debian packages: `cpack -G DEB` in the build directory writes
# smtpgov_<version>-<revision>_amd64.deb, smtpgov-libvirt_..._amd64.deb (the libvirt
# companion, on its own so that smtpgov does not depend on libvirt) and an
# ...-dbgsym_..._amd64.ddeb for each. All are lintian-clean (no error, no warning that deploy/debian/lintian-overrides does not
# explain); the man pages are generated from the --help tables and compressed; the
# binaries are stripped and their debug info is found by build id; copyright (DEP-5) and
# changelog are there; maintainer scripts go through deb-systemd-helper/-invoke; it
# installs on this machine with /etc/smtpgov root-only, does not enable the units,
# `systemd-analyze verify` finds nothing to say about either unit and `systemd-analyze
# security` rates each no worse than 2.2; dpkg -r masks the units and keeps the
# conffiles, --purge takes everything away.
set -euo pipefail
build=$(cd "${1:?usage: deb.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$(readlink -f "$0")")/../../.." && pwd)
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
max_exposure=2.2

[[ $EUID -eq 0 ]] || fail "needs root (dpkg -i)"
for p in smtpgov smtpgov-libvirt; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        fail "a $p package is already installed on this machine; this test does not touch it"
    fi
done
for tool in lintian deb-systemd-helper readelf nm man gzip; do
    command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done

cd "$build"
rm -f smtpgov_*.deb smtpgov-dbgsym_*.ddeb smtpgov-libvirt_*.deb smtpgov-libvirt-dbgsym_*.ddeb
cpack -G DEB >cpack.log 2>&1 || { cat cpack.log >&2; fail "cpack -G DEB failed"; }
version=$(dpkg-parsechangelog -l "$src/deploy/debian/changelog" -S Version)
deb=$build/smtpgov_${version}_amd64.deb
ddeb=$build/smtpgov-dbgsym_${version}_amd64.ddeb
lv_deb=$build/smtpgov-libvirt_${version}_amd64.deb
lv_ddeb=$build/smtpgov-libvirt-dbgsym_${version}_amd64.ddeb
for f in "$deb" "$ddeb" "$lv_deb" "$lv_ddeb"; do
    [[ -f $f ]] || fail "$f not written ($(ls ./*.deb ./*.ddeb 2>/dev/null))"
done
log "ok: built $(basename "$deb"), $(basename "$lv_deb") and their dbgsym packages"

# ---- lintian: no error; no warning but those overridden with their reason ----------
lint=$(mktemp -d)
ctrl=$(mktemp -d)
trap 'rm -rf "$lint" "$ctrl"' EXIT
cp "$deb" "$lv_deb" "$lint/"
for f in "$ddeb" "$lv_ddeb"; do cp "$f" "$lint/$(basename "$f" .ddeb).deb"; done  # lintian reads .deb files
lintian --display-info --show-overrides "$lint"/*.deb >"$build/lintian.log" 2>&1 || true
sed 's/^/    lintian: /' "$build/lintian.log" >&2
if grep -E '^[EW]: ' "$build/lintian.log"; then
    fail "lintian reports errors or warnings (override a warning only with its reason in deploy/debian/lintian-overrides)"
fi
grep -q '^O: smtpgov: non-standard-file-perm 0640 != 0644 \[etc/smtpgov/smtpgovd.json\]' "$build/lintian.log" ||
    fail "the override of the config file mode is not in use"
! grep -E '^[IEW]: .*hardening-' "$build/lintian.log" ||
    fail "lintian says a binary lacks Debian's hardening (SMTPGOV_HARDENING in CMakeLists.txt)"
log "ok: lintian: no error, no warning left unexplained, no hardening tag"

depends=$(dpkg-deb -f "$deb" Depends)
for d in libbpf1 libxdp1 libprometheus-cpp-core1.0 libboost-program-options1.74.0; do
    [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
# the exporter serves /metrics itself: no civetweb (prometheus-cpp's pull library)
[[ $depends != *libprometheus-cpp-pull* ]] || fail "Depends still names libprometheus-cpp-pull: $depends"
[[ $(dpkg-deb -f "$ddeb" Depends) == "smtpgov (= $version)" ]] || fail "dbgsym Depends: $(dpkg-deb -f "$ddeb" Depends)"
# libvirt is the companion's dependency alone: a host without libvirt installs smtpgov
[[ $depends != *libvirt* ]] || fail "smtpgov depends on libvirt: $depends"
lv_depends=$(dpkg-deb -f "$lv_deb" Depends)
[[ $lv_depends == *"smtpgov (= $version)"* && $lv_depends == *libvirt0* ]] ||
    fail "smtpgov-libvirt Depends lacks smtpgov (= $version) or libvirt0: $lv_depends"
[[ $(dpkg-deb -f "$lv_ddeb" Depends) == "smtpgov-libvirt (= $version)" ]] ||
    fail "smtpgov-libvirt-dbgsym Depends: $(dpkg-deb -f "$lv_ddeb" Depends)"
log "ok: Depends: $depends; smtpgov-libvirt: $lv_depends"

listing=$(dpkg-deb -c "$deb")
files=$(awk '{print $6}' <<<"$listing" | sed 's|^\.||')
for f in /usr/sbin/smtpgovd /usr/bin/smtpgovctl /usr/bin/smtpgov-flood /lib/systemd/system/smtpgovd.service \
         /usr/lib/tmpfiles.d/smtpgov.conf /etc/smtpgov/smtpgovd.json /etc/smtpgov/policy.json \
         /usr/share/doc/smtpgov/policy.example.json /usr/share/doc/smtpgov/copyright \
         /usr/share/doc/smtpgov/changelog.Debian.gz /usr/share/lintian/overrides/smtpgov \
         /usr/share/man/man8/smtpgovd.8.gz /usr/share/man/man8/smtpgovctl.8.gz /usr/share/man/man8/smtpgov-flood.8.gz \
         /usr/lib/systemd/catalog/smtpgov.catalog /usr/share/bash-completion/completions/smtpgovctl \
         /usr/lib/smtpgov/smtpgov-fbl-deliver /usr/share/doc/smtpgov/examples/fbl/README.md \
         /usr/share/doc/smtpgov/examples/fbl/fbl.conf.example /usr/share/doc/smtpgov/examples/fbl/sudoers.example \
         /usr/share/doc/smtpgov/examples/fbl/master.cf.example; do
    grep -qx "$f" <<<"$files" || fail "package lacks $f"
done
grep -q '^-rwxr-xr-x .* \./usr/lib/smtpgov/smtpgov-fbl-deliver$' <<<"$listing" ||
    fail "smtpgov-fbl-deliver is not installed executable"

! grep -E '\.[1-9]$' <<<"$files" || fail "an uncompressed man page"
! grep -q libvirt <<<"$files" || fail "smtpgov holds a libvirt file: $(grep libvirt <<<"$files")"
lv_files=$(dpkg-deb -c "$lv_deb" | awk '{print $6}' | sed 's|^\.||')
for f in /usr/bin/smtpgov-libvirt /lib/systemd/system/smtpgov-libvirt.service /usr/share/man/man8/smtpgov-libvirt.8.gz \
         /usr/share/doc/smtpgov-libvirt/copyright /usr/share/doc/smtpgov-libvirt/changelog.Debian.gz \
         /usr/share/doc/smtpgov-libvirt/examples/qemu-hook /usr/share/lintian/overrides/smtpgov-libvirt; do
    grep -qx "$f" <<<"$lv_files" || fail "smtpgov-libvirt lacks $f"
done
dpkg-deb -e "$deb" "$ctrl"
grep -qx /etc/smtpgov/smtpgovd.json "$ctrl/conffiles" || fail "smtpgovd.json is not a conffile"
grep -qx /etc/smtpgov/policy.json "$ctrl/conffiles" || fail "policy.json is not a conffile"
# systemctl only for daemon-reload (as debhelper's snippets); the rest through d-s-h/-invoke
if grep -nE '(^|[;&|[:space:]])systemctl ' "$ctrl"/postinst "$ctrl"/prerm "$ctrl"/postrm | grep -v 'daemon-reload'; then
    fail "a maintainer script calls systemctl for more than daemon-reload"
fi
grep -q 'deb-systemd-invoke stop smtpgovd.service' "$ctrl/prerm" || fail "prerm does not stop through deb-systemd-invoke"
lv_ctrl=$ctrl/libvirt
dpkg-deb -e "$lv_deb" "$lv_ctrl"
[[ ! -e $lv_ctrl/conffiles ]] || fail "smtpgov-libvirt has conffiles: $(cat "$lv_ctrl/conffiles")"
grep -q 'deb-systemd-invoke stop smtpgov-libvirt.service' "$lv_ctrl/prerm" || fail "smtpgov-libvirt's prerm does not stop its unit"
if grep -nE '(^|[;&|[:space:]])systemctl ' "$lv_ctrl"/postinst "$lv_ctrl"/prerm "$lv_ctrl"/postrm | grep -v 'daemon-reload'; then
    fail "a maintainer script of smtpgov-libvirt calls systemctl for more than daemon-reload"
fi
log "ok: contents, conffiles, maintainer scripts"

cleanup() {
    rm -rf "$ctrl" "$lint"
    dpkg --purge smtpgov-libvirt-dbgsym smtpgov-libvirt smtpgov-dbgsym smtpgov >/dev/null 2>&1 || true
}
trap cleanup EXIT
pins_before=$([[ -e /sys/fs/bpf/smtpgov ]] && echo yes || echo no)
dpkg -i "$deb" "$ddeb" "$lv_deb" "$lv_ddeb" || fail "dpkg -i failed"
log "ok: installed"

# ---- installed files --------------------------------------------------------------
for f in /etc/smtpgov/smtpgovd.json /etc/smtpgov/policy.json; do
    [[ $(stat -c '%a %U:%G' "$f") == "640 root:root" ]] || fail "$f is $(stat -c '%a %U:%G' "$f"), expected 640 root:root"
done
head -1 /usr/share/doc/smtpgov/copyright | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
    fail "copyright is not machine-readable (DEP-5)"
[[ $(zcat /usr/share/doc/smtpgov/changelog.Debian.gz | dpkg-parsechangelog -l- -S Version) == "$version" ]] ||
    fail "changelog.Debian.gz's newest entry is not $version"
for page in smtpgovd smtpgovctl smtpgov-flood smtpgov-libvirt; do
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "/usr/share/man/man8/$page.8.gz" 2>&1 >/dev/null)
    [[ -z $warnings ]] || fail "man $page: $warnings"
done
# generated from the tables behind --help: every smtpgovd flag, every event's MESSAGE_ID
smtpgovd_page=$(MANWIDTH=200 man -l /usr/share/man/man8/smtpgovd.8.gz 2>/dev/null)
for flag in $(/usr/sbin/smtpgovd --help | grep -oE '^ +--[a-z-]+' | tr -d ' '); do
    grep -qF -- "$flag" <<<"$smtpgovd_page" || fail "man smtpgovd lacks $flag, which smtpgovd --help lists"
done
grep -q 'e09964c0351a4dd3923448f014bf1177' <<<"$smtpgovd_page" || fail "man smtpgovd lacks the tier_change MESSAGE_ID"
flood_page=$(MANWIDTH=200 man -l /usr/share/man/man8/smtpgov-flood.8.gz 2>/dev/null)
for flag in $(/usr/bin/smtpgov-flood --help | grep -oE '^ +--[a-z-]+' | tr -d ' '); do
    grep -qF -- "$flag" <<<"$flood_page" || fail "man smtpgov-flood lacks $flag, which smtpgov-flood --help lists"
done
lv_page=$(MANWIDTH=200 man -l /usr/share/man/man8/smtpgov-libvirt.8.gz 2>/dev/null)
for flag in $(/usr/bin/smtpgov-libvirt --help | grep -oE '^ +--[a-z-]+' | tr -d ' '); do
    grep -qF -- "$flag" <<<"$lv_page" || fail "man smtpgov-libvirt lacks $flag, which smtpgov-libvirt --help lists"
done
MANWIDTH=200 man -l /usr/share/man/man8/smtpgovctl.8.gz 2>/dev/null | grep -q 'vm set-tier' || fail "man smtpgovctl lacks vm set-tier"
# the journal catalog (systemd's dpkg trigger ran journalctl --update-catalog)
journalctl --list-catalog 2>/dev/null | grep -q '^e09964c0351a4dd3923448f014bf1177 smtpgov: ' ||
    fail "journalctl --list-catalog lacks smtpgovd's tier_change"
[[ $(zcat /usr/share/doc/smtpgov-libvirt/changelog.Debian.gz | dpkg-parsechangelog -l- -S Version) == "$version" ]] ||
    fail "smtpgov-libvirt's changelog.Debian.gz's newest entry is not $version"
log "ok: copyright, changelogs, four man pages without warnings, their flags as --help lists them, journal catalog"

# stripped binaries; their DWARF in smtpgov-dbgsym under their build id
debug_files=()
for bin in /usr/sbin/smtpgovd /usr/bin/smtpgovctl /usr/bin/smtpgov-flood /usr/bin/smtpgov-libvirt; do
    ! readelf -S "$bin" | grep -q '\.debug_info' || fail "$bin is not stripped"
    readelf -S "$bin" | grep -q '\.gnu_debuglink' || fail "$bin has no .gnu_debuglink"
    # hardened: PIE, full RELRO (BIND_NOW), stack protector, fortified libc calls
    dyn=$(readelf -d "$bin") segs=$(readelf -lW "$bin")
    grep -q 'FLAGS_1.*NOW.*PIE' <<<"$dyn" || fail "$bin is not PIE with BIND_NOW"
    grep -q GNU_RELRO <<<"$segs" || fail "$bin has no RELRO segment"
    syms=$(nm -D "$bin")  # (not piped into grep -q: nm's SIGPIPE would fail the pipeline)
    grep -q ' U __stack_chk_fail' <<<"$syms" || fail "$bin has no stack protector"
    grep -q ' U __.*_chk@' <<<"$syms" || fail "$bin calls no fortified libc function"
    id=$(readelf -n "$bin" | sed -n 's/^ *Build ID: //p')
    dbg=/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
    [[ -f $dbg ]] || fail "$bin: no $dbg"
    readelf -S "$dbg" 2>/dev/null | grep -A1 '\.debug_info' | grep -q PROGBITS || fail "$dbg has no DWARF"
    debug_files+=("$dbg")
done
log "ok: binaries stripped, debug info by build id in the dbgsym packages"

# ---- the unit ---------------------------------------------------------------------
if command -v systemd-tmpfiles >/dev/null; then
    [[ $(stat -c %a /run/smtpgov 2>/dev/null) == 700 ]] || fail "postinst did not create /run/smtpgov 0700"
    [[ $(stat -c %a /sys/fs/bpf/smtpgov 2>/dev/null) == 700 ]] || fail "postinst did not create /sys/fs/bpf/smtpgov 0700"
fi
exposures=""
for unit in smtpgovd.service smtpgov-libvirt.service; do
    [[ ! -e /etc/systemd/system/multi-user.target.wants/$unit ]] || fail "installing enabled $unit"
    systemd-analyze verify "/lib/systemd/system/$unit" >"$build/unit-verify.log" 2>&1 ||
        { cat "$build/unit-verify.log" >&2; fail "systemd-analyze verify $unit failed"; }
    [[ ! -s $build/unit-verify.log ]] || { cat "$build/unit-verify.log" >&2; fail "systemd-analyze verify has something to say about $unit"; }
    exposure=$(systemd-analyze security --offline=true "/lib/systemd/system/$unit" 2>&1 |
        sed -n "s/.*Overall exposure level for $unit: \([0-9.]*\).*/\1/p")
    [[ -n $exposure ]] || fail "systemd-analyze security gave no exposure level for $unit"
    awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
        fail "systemd-analyze security: $unit's exposure $exposure, more than $max_exposure"
    exposures+="$unit $exposure, "
done
log "ok: systemd-analyze verify clean, security exposure ${exposures%, } (at most $max_exposure), units not enabled"

/usr/sbin/smtpgovd --check-config --config /etc/smtpgov/smtpgovd.json || fail "smtpgovd --check-config rejected the shipped config"
/usr/bin/smtpgovctl policy validate /usr/share/doc/smtpgov/policy.example.json
/usr/bin/smtpgovctl --help >/dev/null
set +e
/usr/bin/smtpgovctl --socket /nonexistent/ctl.sock status 2>/dev/null
rc=$?
set -e
((rc == 1)) || fail "smtpgovctl status without a daemon: exit $rc, expected 1"
bash -n /usr/share/bash-completion/completions/smtpgovctl || fail "completion script is not valid bash"
# the hook never fails a VM operation, even with smtpgovd away
/usr/bin/smtpgov-libvirt --socket /nonexistent/ctl.sock --hook web started begin - \
    <<<"<domain type='kvm'><name>web</name><uuid>0e4c2f3a-8d3b-4d2e-9c1a-3f0a1b2c3d4e</uuid></domain>" 2>/dev/null ||
    fail "smtpgov-libvirt --hook exited $? with smtpgovd away (a hook must never fail)"
log "ok: installed binaries work"

# ---- removal ----------------------------------------------------------------------
dpkg -r smtpgov-libvirt-dbgsym smtpgov-libvirt smtpgov-dbgsym smtpgov
for f in /usr/sbin/smtpgovd /usr/bin/smtpgovctl /usr/bin/smtpgov-libvirt /lib/systemd/system/smtpgovd.service \
         /lib/systemd/system/smtpgov-libvirt.service "${debug_files[@]}"; do
    [[ ! -e $f ]] || fail "$f left after dpkg -r"
done
[[ -f /etc/smtpgov/smtpgovd.json ]] || fail "dpkg -r removed the conffile (only --purge may)"
for unit in smtpgovd.service smtpgov-libvirt.service; do
    [[ $(readlink "/etc/systemd/system/$unit") == /dev/null ]] || fail "dpkg -r did not mask $unit"
done
dpkg --purge smtpgov-libvirt smtpgov
[[ ! -e /etc/smtpgov/smtpgovd.json ]] || fail "conffile left after --purge"
[[ ! -e /etc/systemd/system/smtpgovd.service && ! -e /etc/systemd/system/smtpgov-libvirt.service ]] ||
    fail "a mask is left after --purge"
[[ ! -e /var/lib/smtpgov ]] || fail "/var/lib/smtpgov left after --purge"
[[ $pins_before == yes || ! -e /sys/fs/bpf/smtpgov ]] || fail "the empty pin directory is left after --purge"
log "ok: removed (unit masked, conffiles kept) and purged"
