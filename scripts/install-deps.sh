#!/usr/bin/env bash
# Install the Debian packages pgentry needs that are not there yet (build, tests, demo).
# Usage: scripts/install-deps.sh [build|test|demo|bench|e2e|package|static|cross]...   (default: build test)
set -euo pipefail

build=(build-essential cmake pkg-config git libpq-dev libev-dev libcurl4-openssl-dev libssl-dev
       scdoc)  # scdoc: the man page pgentry.1
test=(libcriterion-dev postgresql postgresql-client pgbouncer python3 clang clang-format util-linux
      procps prometheus iptables)  # promtool validates /metrics; iptables: the partition test
demo=(postgresql postgresql-client curl python3 python3-fastapi python3-uvicorn python3-psycopg2)
bench=(postgresql postgresql-client hyperfine wrk tini dumb-init catatonit wait-for-it alembic
       python3-psycopg2 python3-sqlalchemy strace linux-perf)
e2e=(podman runc netavark aardvark-dns catatonit iptables debootstrap debian-archive-keyring
     podman-compose curl python3)
package=(dpkg-dev lintian scdoc binutils)  # scripts/package.sh
# scripts/build-static.sh (musl, Debian source packages) and tests/static/empty_root.sh
static=(musl-tools dpkg-dev file binutils perl make ca-certificates busybox-static openssl
        postgresql util-linux python3)
# scripts/build-static.sh --arch aarch64 and tests/static/aarch64.sh: amd64 packages only (the
# machine gets no foreign architecture); musl for aarch64 is built from source by the script.
cross=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross
       linux-libc-dev-arm64-cross qemu-user-static)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(build test)

want=()
for g in "${groups[@]}"; do
    case "$g" in
    build) want+=("${build[@]}") ;;
    test) want+=("${build[@]}" "${test[@]}") ;;
    demo) want+=("${build[@]}" "${demo[@]}") ;;
    bench) want+=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
    e2e) want+=("${e2e[@]}") ;;
    package) want+=("${package[@]}") ;;
    static) want+=("${build[@]}" "${static[@]}") ;;
    cross) want+=("${cross[@]}") ;;
    *) echo "install-deps: unknown group $g (build, test, demo, bench, e2e, package, static, cross)" >&2; exit 64 ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# Deduplicate while keeping order.
missing=($(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++'))
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
