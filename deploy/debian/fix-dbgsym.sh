#!/bin/sh
# fix-dbgsym.sh DDEB: CPack 3.25 writes smtpgov-dbgsym with an md5sums file naming its
# build directory's absolute paths (debsums and lintian see files that do not exist),
# .debug files mode 0755 and no doc directory. Rebuild it as debhelper's dbgsym
# packages are: md5sums relative to /, .debug files 0644, and
# /usr/share/doc/smtpgov-dbgsym a symlink to smtpgov's (copyright, changelog), which
# its exact-version dependency on smtpgov allows.
set -eu
ddeb=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -R "$ddeb" "$tmp/pkg"
cd "$tmp/pkg"
pkg=$(sed -n 's/^Package: //p' DEBIAN/control)
main=${pkg%-dbgsym}
find usr -type f -name '*.debug' -exec chmod 0644 {} +
mkdir -p usr/share/doc
ln -sfn "$main" "usr/share/doc/$pkg"
find usr -type f | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums
chmod 0644 DEBIAN/md5sums
size=$(du -k -s --apparent-size usr | cut -f1)
sed -i "s/^Installed-Size: .*/Installed-Size: $size/" DEBIAN/control
cd "$tmp"
dpkg-deb --root-owner-group -Zxz -b pkg "$tmp/out.ddeb" >/dev/null
mv "$tmp/out.ddeb" "$ddeb"
