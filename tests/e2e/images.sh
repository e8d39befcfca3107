#!/usr/bin/env bash
# Build every image the end-to-end tests use, with podman, without any image registry:
#   docker.io/library/debian:bookworm-slim  Debian 12 minbase from debootstrap (cached tarball)
#   localhost/pgentry:latest                docker/Dockerfile, target pgentry
#   localhost/pgentry-example:latest        docker/Dockerfile, target example-app
#   localhost/pgentry-example-alembic:latest  docker/Dockerfile, target example-app-alembic
#   localhost/pgentry-static:latest         docker/Dockerfile, target static (only /pgentry)
#   localhost/pgentry-e2e-static-busybox:latest  FROM scratch: static pgentry + busybox httpd
#   localhost/pgentry-e2e-static-debian:latest   bare Debian base + static pgentry
#   localhost/pgentry-e2e-postgres:15       stand-in for postgres:15 (tests/e2e/images/)
#   localhost/pgentry-e2e-redis:7           stand-in for redis:7
# Environment: PGENTRY_E2E_CACHE (default build-e2e/ in the repository) keeps the base tarball;
# PGENTRY_E2E_MIRROR (default Debian's) is the debootstrap mirror; PGENTRY_E2E_REBASE=1
# rebuilds the base image even when podman already has one.
# The static binary: PGENTRY_STATIC_BINARY=path is copied to dist/pgentry; otherwise dist/pgentry
# is used, and made by scripts/build-static.sh when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/e2e/containers.conf}
cache=${PGENTRY_E2E_CACHE:-$root/build-e2e}
mirror=${PGENTRY_E2E_MIRROR:-http://deb.debian.org/debian}
base=docker.io/library/debian:bookworm-slim
mkdir -p "$cache"

say() { printf 'images: %s\n' "$*" >&2; }
elapsed() { echo "$((SECONDS - $1))s"; }

# Debian 12 minbase, trimmed like the official slim image (no docs, man pages or apt lists).
make_base_tarball() {
    local tar=$1 dir
    dir=$(mktemp -d "$cache/rootfs.XXXXXX")
    say "debootstrap --variant=minbase bookworm from $mirror (log: $cache/debootstrap.log)"
    if ! timeout 900 debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -20 "$cache/debootstrap.log" >&2
        rm -rf "$dir"
        say "debootstrap failed"
        return 1
    fi
    cat >"$dir/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    # As in the official image: no .deb files or package caches left behind in a layer.
    cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/cache/apt/*.bin \
        "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
    find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    tar --numeric-owner -C "$dir" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$dir"
}

t0=$SECONDS
if [ "${PGENTRY_E2E_REBASE:-0}" = 1 ] || ! podman image exists "$base"; then
    tarball=$cache/debian-bookworm-minbase.tar
    if [ "${PGENTRY_E2E_REBASE:-0}" = 1 ] || [ ! -s "$tarball" ]; then
        make_base_tarball "$tarball"
    else
        say "reusing $tarball"
    fi
    podman import -q --change 'CMD ["bash"]' "$tarball" "$base" >/dev/null
    say "imported $base ($(elapsed "$t0"))"
else
    say "$base already present"
fi

# One podman build; stderr kept in a log and shown only on failure.
build() {
    local tag=$1 log t=$SECONDS
    shift
    log=$cache/build-${tag//[\/:]/_}.log
    if ! timeout 1800 podman build --network host --format docker --layers -t "$tag" "$@" >"$log" 2>&1; then
        tail -40 "$log" >&2
        say "building $tag failed (full log: $log)"
        return 1
    fi
    say "built $tag ($(elapsed "$t"))"
}

# dist/pgentry goes into the build context of the static target (which then skips building it).
if [ -n "${PGENTRY_STATIC_BINARY:-}" ]; then
    [ -x "$PGENTRY_STATIC_BINARY" ] || { say "PGENTRY_STATIC_BINARY=$PGENTRY_STATIC_BINARY is not an executable"; exit 1; }
    mkdir -p dist
    cmp -s "$PGENTRY_STATIC_BINARY" dist/pgentry || install -m 0755 "$PGENTRY_STATIC_BINARY" dist/pgentry
elif [ ! -x dist/pgentry ]; then
    [ -x scripts/build-static.sh ] ||
        { say "dist/pgentry is missing and there is no scripts/build-static.sh to make it (or set PGENTRY_STATIC_BINARY)"; exit 1; }
    say "dist/pgentry is missing: scripts/build-static.sh"
    t=$SECONDS
    scripts/build-static.sh >"$cache/build-static.log" 2>&1 ||
        { tail -40 "$cache/build-static.log" >&2; say "scripts/build-static.sh failed (log: $cache/build-static.log)"; exit 1; }
    say "built dist/pgentry ($(elapsed "$t"))"
fi
say "static binary: dist/pgentry ($(dist/pgentry --version | head -n1))"

git_describe=$(git describe --tags --always --dirty 2>/dev/null || echo unknown)
build localhost/pgentry:latest -f docker/Dockerfile --target pgentry \
    --build-arg PGENTRY_GIT="$git_describe" .
build localhost/pgentry-example:latest -f docker/Dockerfile --target example-app \
    --build-arg PGENTRY_GIT="$git_describe" .
build localhost/pgentry-example-alembic:latest -f docker/Dockerfile --target example-app-alembic \
    --build-arg PGENTRY_GIT="$git_describe" .
build localhost/pgentry-static:latest -f docker/Dockerfile --target static \
    --build-arg PGENTRY_GIT="$git_describe" .
build localhost/pgentry-e2e-static-busybox:latest -f tests/e2e/images/static-busybox.Containerfile .
build localhost/pgentry-e2e-static-debian:latest -f tests/e2e/images/static-debian.Containerfile .
build localhost/pgentry-e2e-postgres:15 -f tests/e2e/images/postgres.Containerfile tests/e2e/images
build localhost/pgentry-e2e-redis:7 -f tests/e2e/images/redis.Containerfile tests/e2e/images
say "all images ready ($(elapsed "$t0"))"
