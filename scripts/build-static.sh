#!/usr/bin/env bash
# Build dist/pgentry: one fully static x86-64 binary (musl; no shared library, no NSS, no
# dlopen) that runs in an empty root filesystem.
#
# OpenSSL, libpq (postgresql-15), libcurl and libev are built with musl-gcc from Debian's
# source packages, fetched through a private apt configuration (the machine's own apt sources
# and state are only read, never changed). Each library is cached by its Debian version under
# ${PGENTRY_STATIC_CACHE:-/var/cache/pgentry-static}/<pkg>-<version>/, so a second run only
# rebuilds pgentry itself.
#
# Usage: scripts/build-static.sh [--arch x86_64|aarch64]
#
# --arch aarch64 (or PGENTRY_STATIC_ARCH=aarch64) cross-builds dist/pgentry-aarch64 on this
# x86-64 machine with Debian's cross compiler (scripts/install-deps.sh cross) and musl 1.2.3 built
# from Debian's musl source package into the cache; its cache entries are <pkg>-<version>-aarch64.
# No foreign dpkg architecture is needed. Run the result with qemu-aarch64-static.
# Environment:
#   PGENTRY_STATIC_ARCH     target architecture: x86_64 (default) or aarch64
#   PGENTRY_STATIC_CACHE    library cache (default /var/cache/pgentry-static)
#   PGENTRY_STATIC_REFRESH  1: refresh the private source index even if it is less than a day old
#   JOBS                    parallel make jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() {
    echo "build-static: $*" >&2
    exit 1
}
say() { echo "== $*" >&2; }

arch=${PGENTRY_STATIC_ARCH:-x86_64}
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) [ $# -gt 1 ] || die "--arch needs a value: x86_64 or aarch64"; arch=$2; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    *) die "unknown argument $1 (usage: scripts/build-static.sh [--arch x86_64|aarch64])" ;;
    esac
done
case "$arch" in
x86_64 | amd64) arch=x86_64 ;;
aarch64 | arm64) arch=aarch64 ;;
*) die "unknown architecture $arch (x86_64 or aarch64)" ;;
esac

[ "$(uname -m)" = x86_64 ] || die "only x86-64 is supported (this is $(uname -m))"
scripts/install-deps.sh static
[ "$arch" = x86_64 ] || scripts/install-deps.sh cross

cache=${PGENTRY_STATIC_CACHE:-/var/cache/pgentry-static}
jobs=${JOBS:-$(nproc)}
mkdir -p "$cache" || die "cannot create the cache directory $cache (set PGENTRY_STATIC_CACHE)"
cache=$(cd "$cache" && pwd)
# One build at a time per cache: a second run (another clone, a container build sharing the
# cache) waits here instead of deleting a source tree the first one is building in.
exec 9>"$cache/.lock"
if ! flock -n 9; then
    echo "build-static: waiting for another build using $cache" >&2
    flock 9
fi

# musl-gcc has no kernel headers on its path; Debian's sit after musl's own headers.
if [ "$arch" = x86_64 ]; then
    export CC=musl-gcc
    musl_cflags="-O2 -idirafter /usr/include -idirafter /usr/include/x86_64-linux-gnu"
    sfx=           # cache entries: <pkg>-<version>
    host=()        # autoconf: native build
    ossl_target=linux-x86_64
    run=()         # how to run a program built for the target
else
    # CC is set once musl for aarch64 is built (below). The kernel headers are
    # linux-libc-dev-arm64-cross's.
    cross=aarch64-linux-gnu
    musl_cflags="-O2 -idirafter /usr/$cross/include"
    sfx=-$arch     # cache entries: <pkg>-<version>-aarch64, beside the x86-64 ones
    host=(--host="$cross")
    ossl_target=linux-aarch64
    run=(qemu-"$arch"-static)
    export AR=$cross-ar RANLIB=$cross-ranlib NM=$cross-nm
fi

# --- private apt configuration: the machine's deb entries, as deb-src ------------------------
apt_dir=$cache/apt
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt_dir/sources.list.d"
    -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Get::Only-Source=true)

apt_setup() {
    local f out
    mkdir -p "$apt_dir/sources.list.d.new" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    rm -f "$apt_dir/sources.list.d.new"/*
    # deb822 files: every "Types:" stanza that has deb gets deb-src instead.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        out="$apt_dir/sources.list.d.new/$(basename "$f")"
        sed -E 's/^(Types:.*[[:space:]])deb([[:space:]]|$)/\1deb-src\2/; s/^Types:[[:space:]]*deb([[:space:]]|$)/Types: deb-src\1/' \
            "$f" >"$out"
    done
    # One-line files: deb lines become deb-src lines, everything else is dropped.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        out="$apt_dir/sources.list.d.new/$(basename "$f")"
        sed -n -E 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >"$out"
        [ -s "$out" ] || rm -f "$out"
    done
    [ -n "$(ls -A "$apt_dir/sources.list.d.new")" ] || die "no deb entries in /etc/apt/sources.list{,.d}"
    rm -rf "$apt_dir/sources.list.d"
    mv "$apt_dir/sources.list.d.new" "$apt_dir/sources.list.d"
}

apt_refresh() {
    local stamp=$apt_dir/lists/.updated
    if [ "${PGENTRY_STATIC_REFRESH:-0}" != 1 ] && [ -f "$stamp" ] &&
        [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
        return 0
    fi
    apt_setup
    say "refreshing the private source index ($apt_dir)"
    apt-get "${apt_opts[@]}" -qq update >/dev/null || die "apt-get update of the private source index failed"
    rm -f "$apt_dir/unavailable"
    touch "$stamp"
}

# Every version the index knows of a source package, newest first.
src_versions() {
    apt-cache "${apt_opts[@]}" showsrc "$1" 2>/dev/null |
        awk -v p="$1" '/^Package: /{ok = ($2 == p)} ok && /^Version: /{print $2}' |
        sort -u | sort -rV
}

# Upstream part of a Debian version with the epoch dropped: 1:4.33-1 -> 4.33.
upstream() {
    local v=${1#*:}
    echo "${v%-*}"
}

# fetch PKG VERSION DIR: download the source package and unpack it (Debian patches applied)
# as DIR/src. Fails (leaving nothing) if the archive does not have that version.
fetch() {
    local pkg=$1 ver=$2 dir=$3
    rm -rf "$dir"
    mkdir -p "$dir/dl"
    if ! (cd "$dir/dl" && apt-get "${apt_opts[@]}" -qq source --download-only "$pkg=$ver" >/dev/null 2>&1); then
        rm -rf "$dir"
        return 1
    fi
    dpkg-source --no-check -x "$dir"/dl/*.dsc "$dir/src" >/dev/null ||
        die "dpkg-source could not unpack $pkg $ver"
    rm -rf "$dir/dl"
}

# Our own patches for PKG, scripts/static/patches/PKG/*.patch, applied in name order on top of
# Debian's. patch_tag PKG prints "" if there are none, else -p<first 8 hex digits of a SHA-256
# over their names and contents>: part of the cache key, so a patched library is never taken
# for an unpatched one, nor for one with other patches.
patch_tag() {
    local dir=$root/scripts/static/patches/$1
    compgen -G "$dir/*.patch" >/dev/null || return 0
    echo "-p$(cd "$dir" && sha256sum -- *.patch | sha256sum | cut -c1-8)"
}

# apply_patches PKG VERSION WORK: apply them to WORK/src; a patch that does not apply exactly
# (its context lines as they are, at most at another line number) stops the build.
apply_patches() {
    local pkg=$1 ver=$2 work=$3 f
    for f in "$root/scripts/static/patches/$pkg"/*.patch; do
        [ -f "$f" ] || continue
        patch -d "$work/src" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch <"$f" >"$work/patch.log" 2>&1 ||
            die "patch $(basename "$f") does not apply to $pkg $ver (patch's output: $work/patch.log)"
        echo "$pkg $ver: applied $(basename "$f")" >&2
    done
}

# lib PKG BUILDFN: make sure $cache/PKG-VERSION holds the built library for the newest version
# of PKG the archive can serve (with our patches for PKG, if any: PKG-VERSION-p<hash>), building
# it with BUILDFN SRC PREFIX if needed. Sets $prefix.
lib() {
    local pkg=$1 build=$2 ver d work f rc tried=() ptag
    local versions
    ptag=$(patch_tag "$pkg")
    apt_refresh
    mapfile -t versions < <(src_versions "$pkg")
    [ ${#versions[@]} -gt 0 ] || die "no source package $pkg in the index (sources: $apt_dir/sources.list.d)"
    for ver in "${versions[@]}"; do
        d=$cache/$pkg-${ver#*:}$ptag$sfx
        if [ -f "$d/.built" ]; then
            prefix=$d
            echo "$pkg $ver: cached" >&2
            return 0
        fi
        work=$cache/build/$pkg-${ver#*:}$ptag$sfx
        # The security suite's index can name a version the archive no longer (or not yet) has:
        # remember that until the next refresh of the index, and take the next version.
        if grep -qxF "$pkg=$ver" "$apt_dir/unavailable" 2>/dev/null || ! fetch "$pkg" "$ver" "$work"; then
            echo "$pkg $ver: not downloadable, trying an older version" >&2
            grep -qxF "$pkg=$ver" "$apt_dir/unavailable" 2>/dev/null || echo "$pkg=$ver" >>"$apt_dir/unavailable"
            tried+=("$ver")
            continue
        fi
        say "building $pkg $ver"
        local t0=$SECONDS
        apply_patches "$pkg" "$ver" "$work"
        rm -rf "$d"
        mkdir -p "$d/lib" "$d/include"
        # Not "( ... ) || die": on the left of || bash ignores set -e inside the subshell too, so
        # a failing step (a make, a check) would go unnoticed unless it were the build's last.
        set +e
        (set -e; cd "$work/src"; "$build" "$d") >"$work/build.log" 2>&1
        rc=$?
        set -e
        [ "$rc" = 0 ] ||
            { tail -30 "$work/build.log" >&2; die "building $pkg $ver failed (log: $work/build.log)"; }
        # What the build function reports for the terminal, e.g. its checks: its "== " lines.
        grep '^== ' "$work/build.log" >&2 || true
        echo "${ver#*:}" >"$d/debian-version"
        upstream "$ver" >"$d/version"
        # The patches' names, one a line: --version shows them after the Debian version.
        if [ -n "$ptag" ]; then
            for f in "$root/scripts/static/patches/$pkg"/*.patch; do basename "$f" .patch; done >"$d/patches"
        fi
        touch "$d/.built"
        rm -rf "$work"
        echo "$pkg $ver: built in $((SECONDS - t0)) s" >&2
        prefix=$d
        return 0
    done
    die "no version of $pkg could be downloaded (tried ${tried[*]})"
}

# --- the libraries ------------------------------------------------------------------------------
# musl itself, for a cross build only (x86-64 uses musl-tools): static libc, headers and the
# musl-gcc wrapper (bin/musl-gcc, calling aarch64-linux-gnu-gcc with musl's specs file).
build_musl() {
    local p=$1
    ./configure --prefix="$p" --target="$cross" --disable-shared --enable-wrapper=gcc \
        CC="$cross-gcc" CROSS_COMPILE="$cross-"
    make -j"$jobs"
    make install
}

build_openssl() {
    local p=$1
    ./Configure "$ossl_target" no-shared no-tests no-engine no-dso no-async no-afalgeng \
        --prefix="$p" --libdir=lib --openssldir=/usr/lib/ssl $musl_cflags
    make -j"$jobs" build_libs
    make install_dev
    rm -rf "$p/lib/pkgconfig"
}

build_libpq() {
    local p=$1
    ./configure "${host[@]}" --prefix="$p" --without-readline --without-zlib --without-icu --without-gssapi \
        --without-ldap --without-llvm --disable-nls --with-ssl=openssl \
        --with-includes="$openssl/include" --with-libraries="$openssl/lib" CFLAGS="$musl_cflags"
    # errcodes.h and the other generated headers src/common needs (libpq's own make would make
    # them, but src/common comes first).
    make -C src/backend generated-headers
    make -C src/port -j"$jobs" libpgport_shlib.a
    make -C src/common -j"$jobs" libpgcommon_shlib.a
    make -C src/interfaces/libpq -j"$jobs" libpq.a
    scram_kat
    cp src/interfaces/libpq/libpq.a src/common/libpgcommon_shlib.a src/port/libpgport_shlib.a "$p/lib/"
    cp src/interfaces/libpq/libpq-fe.h src/interfaces/libpq/libpq-events.h \
        src/include/postgres_ext.h src/include/pg_config_ext.h "$p/include/"
}

# Before libpq enters the cache, the pieces our patches (scripts/static/patches/postgresql-15/)
# change must be in it and give the known answers of scripts/static/scram_kat.c: SCRAM's
# SaltedPassword on low-level SHA-256 (scram-pbkdf2), PostgreSQL's own hashes and HMAC
# (common-builtin-hashes), pg_strong_random from getrandom (strong-random-getrandom). Runs in
# the configured source tree.
scram_kat() {
    # Symbols read once: a failing nm stops the build (set -e) instead of passing the checks.
    local common port
    common=$("${NM:-nm}" src/common/libpgcommon_shlib.a)
    port=$("${NM:-nm}" src/port/libpgport_shlib.a)
    grep -q ' U SHA256_Final$' <<<"$common" ||
        { echo "scram_kat: libpgcommon does not call SHA256_Final: scram-pbkdf2.patch is not in it" >&2; return 1; }
    # A login without TLS must not start OpenSSL's provider machinery: nothing in libpgcommon
    # may reach EVP, HMAC or PKCS5 (common-builtin-hashes.patch).
    if grep -E ' U (EVP_|HMAC|PKCS5_)' <<<"$common"; then
        echo "scram_kat: libpgcommon still calls OpenSSL's EVP or HMAC (above): common-builtin-hashes.patch is not in it" >&2
        return 1
    fi
    grep -q ' U getrandom$' <<<"$port" ||
        { echo "scram_kat: libpgport does not call getrandom: strong-random-getrandom.patch is not in it" >&2; return 1; }
    "$CC" $musl_cflags -static -DFRONTEND -I src/include -I "$openssl/include" -o scram_kat \
        "$root/scripts/static/scram_kat.c" src/common/libpgcommon_shlib.a src/port/libpgport_shlib.a \
        "$openssl/lib/libcrypto.a" -lpthread
    "${run[@]}" ./scram_kat >scram_kat.out
    cat scram_kat.out
    echo "== libpq: its SCRAM checks pass ($(grep -c ': ok$' scram_kat.out) of them: SaltedPassword, hash and HMAC known answers, pg_strong_random; scripts/static/scram_kat.c)"
}

build_curl() {
    local p=$1
    # HTTP and HTTPS only, over OpenSSL; every other protocol and optional library is left out.
    ./configure "${host[@]}" --prefix="$p" --disable-shared --enable-static --disable-dependency-tracking \
        --with-openssl="$openssl" \
        --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
        --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
        --disable-smtp --disable-gopher --disable-mqtt --disable-smb --disable-manual \
        --disable-ntlm --disable-ntlm-wb --disable-kerberos-auth --disable-negotiate-auth \
        --disable-alt-svc --disable-hsts --disable-netrc --enable-threaded-resolver \
        --without-zlib --without-brotli --without-zstd --without-libpsl --without-libidn2 \
        --without-nghttp2 --without-nghttp3 --without-ngtcp2 --without-librtmp --without-libssh2 \
        --without-libssh --without-wolfssh --without-libgsasl --without-gssapi --without-hyper \
        --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --with-ca-path=/etc/ssl/certs \
        CFLAGS="$musl_cflags" CPPFLAGS="-I$openssl/include" LDFLAGS="-L$openssl/lib" LIBS="-lpthread"
    make -C lib -j"$jobs" libcurl.la
    make -C lib install-libLTLIBRARIES
    make -C include install
    rm -f "$p"/lib/*.la
}

build_libev() {
    local p=$1
    ./configure "${host[@]}" --prefix="$p" --disable-shared --enable-static --disable-dependency-tracking \
        CFLAGS="$musl_cflags"
    make -j"$jobs"
    make install-libLTLIBRARIES install-includeHEADERS
    rm -f "$p"/lib/*.la
}

t_start=$SECONDS
if [ "$arch" != x86_64 ]; then
    lib musl build_musl
    export CC=$prefix/bin/musl-gcc
    [ -x "$CC" ] || die "musl for $arch has no musl-gcc wrapper ($CC)"
fi
lib openssl build_openssl
openssl=$prefix
lib postgresql-15 build_libpq
libpq=$prefix
lib curl build_curl
curl=$prefix
lib libev build_libev
libev=$prefix
say "libraries ready in $((SECONDS - t_start)) s"

# --- pgentry ------------------------------------------------------------------------------------
if [ "$arch" = x86_64 ]; then
    bdir=$root/build-static
    bin=$root/dist/pgentry
    strip="strip"
    cross_cmake=(-DCMAKE_C_COMPILER=musl-gcc)
    what="static, musl"
else
    bdir=$root/build-static-$arch
    bin=$root/dist/pgentry-$arch
    strip=$cross-strip
    cross_cmake=(-DCMAKE_C_COMPILER="$CC" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR="$arch"
        -DCMAKE_AR="$(command -v "$AR")" -DCMAKE_RANLIB="$(command -v "$RANLIB")" -DPGENTRY_STATIC_ARCH="$arch")
    what="static, musl, $arch"
fi
name=dist/$(basename "$bin")
say "building pgentry ($what)"
cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release "${cross_cmake[@]}" \
    -DPGENTRY_STATIC=ON -DPGENTRY_TESTS=OFF \
    -DPGENTRY_STATIC_OPENSSL="$openssl" -DPGENTRY_STATIC_LIBPQ="$libpq" \
    -DPGENTRY_STATIC_CURL="$curl" -DPGENTRY_STATIC_LIBEV="$libev" >/dev/null
cmake --build "$bdir" -j"$jobs" --target pgentry

mkdir -p "$root/dist"
cp "$bdir/pgentry" "$bin.tmp"
"$strip" --strip-all "$bin.tmp"
mv "$bin.tmp" "$bin"

# --- verify: no interpreter, no dynamic section, no NSS or dlopen -------------------------------
desc=$(file -b "$bin")
[[ "$desc" == *"statically linked"* ]] || die "$name is not statically linked: $desc"
if readelf -lW "$bin" | grep -q INTERP; then die "$name has a program interpreter"; fi
if readelf -dW "$bin" | grep -q NEEDED; then die "$name needs shared libraries"; fi
[ -z "$(readelf -lW "$bin" | awk '$1 == "DYNAMIC"')" ] || die "$name has a dynamic section"
"${run[@]}" "$bin" --version >/dev/null || die "$name --version failed"
say "$name: $(stat -c %s "$bin") bytes, $("${run[@]}" "$bin" --version)"
say "done in $((SECONDS - t_start)) s"
