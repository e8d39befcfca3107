#!/usr/bin/env bash
# Write dist/pgentry_VERSION_amd64.deb: the static binary (/usr/bin/pgentry), the man page
# (/usr/share/man/man1/pgentry.1.gz), the copyright file in DEP-5 format, the changelog and a
# lintian override for the static binary. Then runs lintian on it (PGENTRY_LINTIAN=0 skips it).
# The package is native: its version is pgentry's own, with no Debian revision, so its
# changelog is /usr/share/doc/pgentry/changelog.gz (lintian: a native package has no
# changelog.Debian.gz).
#
# Usage: scripts/package.sh
# Environment:
#   PGENTRY_BINARY   the binary to package (default dist/pgentry, from scripts/build-static.sh);
#                    it must be linked statically: the package declares no dependency
#   PGENTRY_LINTIAN  0: do not run lintian (default: run it and fail on errors or warnings)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() {
    echo "package: $*" >&2
    exit 1
}

scripts/install-deps.sh package
bin=${PGENTRY_BINARY:-dist/pgentry}
[ -e "$bin" ] || die "$bin is missing: build it with scripts/build-static.sh, or set PGENTRY_BINARY=path"
[ -x "$bin" ] || die "$bin is not executable"
for tool in dpkg-deb scdoc gzip readelf strip; do
    command -v "$tool" >/dev/null || die "$tool is missing: scripts/install-deps.sh package installs it"
done
# A static binary has no program interpreter and needs no shared library.
if readelf -lW "$bin" 2>/dev/null | grep -q 'Requesting program interpreter' ||
    readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    die "$bin is linked dynamically; the package holds the static binary of scripts/build-static.sh"
fi
[ "$(readelf -hW "$bin" | awk '/Machine:/ { $1 = ""; print }')" = " Advanced Micro Devices X86-64" ] ||
    die "$bin is not an x86-64 binary"

# "pgentry 0.1.0+gabc1234 (static; ...)": the second word. A Debian version of a package with
# no Debian revision may hold only digits, letters and . + ~, and starts with a digit; git's
# "-dirty" or "-3-gabc" become ".dirty", ".3.gabc".
upstream=$("$bin" --version | awk 'NR == 1 { print $2 }')
version=$(printf '%s' "$upstream" | tr -c 'A-Za-z0-9.+~' '.')
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "'$upstream' (from $bin --version) does not make a Debian version"
arch=amd64
deb=dist/pgentry_${version}_${arch}.deb

# Everything dated from the last commit, so that the same sources make the same package.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

stage=$(mktemp -d "${TMPDIR:-/tmp}/pgentry-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
umask 022
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/share/man/man1" "$stage/usr/share/doc/pgentry" \
    "$stage/usr/share/lintian/overrides"

# Stripped as dh_strip strips an executable (debug symbols do not ship in the package).
install -m 0755 "$bin" "$stage/usr/bin/pgentry"
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/pgentry"
scdoc <docs/pgentry.1.scd | gzip -9n >"$stage/usr/share/man/man1/pgentry.1.gz"
install -m 0644 scripts/deb/copyright "$stage/usr/share/doc/pgentry/copyright"
# One entry per build: the package is made from a commit, not from a Debian source package.
{
    printf 'pgentry (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Static build of pgentry %s' "$upstream"
    if git rev-parse -q --verify HEAD >/dev/null 2>&1; then
        printf ',\n    commit %s' "$(git rev-parse --short=12 HEAD)"
    fi
    printf '.\n\n -- pgentry maintainers <maintainers@users.noreply.b-seed-82f5a5f5.example>  %s\n' \
        "$(date -u -R -d "@$epoch")"
} | gzip -9n >"$stage/usr/share/doc/pgentry/changelog.gz"
# Static on purpose: the point of this package is one binary that needs no library, to copy
# into any image. Shipped with the package, as Debian's own packages do.
# One static binary by design: it carries libpq, OpenSSL, libcurl and libev (their versions are
# in `pgentry --version`), so lintian's embedded-library tags are expected too.
printf '%s\n' 'pgentry: statically-linked-binary [usr/bin/pgentry]' \
    'pgentry: embedded-library * [usr/bin/pgentry]' >"$stage/usr/share/lintian/overrides/pgentry"

(cd "$stage" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: pgentry
Version: $version
Architecture: $arch
Maintainer: pgentry maintainers <maintainers@users.noreply.b-seed-82f5a5f5.example>
Installed-Size: $installed_size
Section: database
Priority: optional
Description: container entrypoint: wait for PostgreSQL, migrate, run the app
 pgentry sits at the front of a container, usually as its ENTRYPOINT and
 PID 1. It waits until PostgreSQL accepts work on a writable primary,
 applies pending SQL migrations exactly once under an advisory lock (also
 with many replicas starting together), serves a small HTTP health
 endpoint, and runs the application as a supervising init (signal
 forwarding, zombie reaping, stop timeout) or replaces itself with it.
 .
 The binary is linked statically (musl, OpenSSL, libpq, libcurl, libev):
 it needs no shared library and runs in any Linux x86-64 image.
CONTROL

# Files dated, owned and permitted alike whatever the checkout did.
find "$stage" -exec touch -h -d "@$epoch" {} +
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
mkdir -p dist
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "package: wrote $deb ($(du -k "$deb" | cut -f1) KiB, version $version)"

if [ "${PGENTRY_LINTIAN:-1}" != 0 ]; then
    command -v lintian >/dev/null || die "lintian is missing (scripts/install-deps.sh package), or set PGENTRY_LINTIAN=0"
    # Errors and warnings fail; the package's own override (above) covers the static binary.
    lintian --fail-on error,warning "$deb" ||
        die "lintian found problems in $deb (see above)"
    echo "package: lintian: no error or warning"
fi
