#!/usr/bin/env bash
# The aarch64 static binary (scripts/build-static.sh --arch aarch64) on this x86-64 machine,
# under qemu-user-static (invoked directly: a static binary needs no binfmt_misc registration),
# against a throwaway PostgreSQL on 127.0.0.1 that this script starts and removes: --version,
# waiting for a server that is not up yet, migrating, running COMMAND, pgentry healthcheck, TERM.
# COMMAND is the host's static x86-64 busybox: pgentry execs it and the kernel runs it natively.
# Not part of CI (a cold cross build can take longer than CI allows); run it by hand.
#
# Usage (as root): tests/static/aarch64.sh [BINARY]     (default dist/pgentry-aarch64)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

bin=${1:-dist/pgentry-aarch64}
die() {
    echo "aarch64: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (the server runs as postgres)"
[ -x "$bin" ] || die "no aarch64 binary at $bin: run scripts/build-static.sh --arch aarch64"
qemu=$(command -v qemu-aarch64-static) || die "missing qemu-aarch64-static (scripts/install-deps.sh cross)"
busybox=/bin/busybox
file -b "$busybox" | grep -q 'statically linked' || die "$busybox is not static: apt-get install busybox-static"
for c in file readelf python3 timeout; do
    command -v "$c" >/dev/null || die "missing $c (scripts/install-deps.sh static)"
done
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# shellcheck source=tests/static/lib.sh
source tests/static/lib.sh
static_scratch aarch64

# pgentry under qemu; a hang fails the check instead of the whole test.
pge() {
    timeout 120 "$qemu" "$bin" "$@"
}

pw=aarch64-pw
port=$(pg_free_port)
pg_init "$pgdir" "$port" "$pw"
url="postgres://postgres:$pw@127.0.0.1:$port/postgres?sslmode=disable"
psql_host() {
    PGPASSWORD=$pw "$(pg_bindir)/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}
mkdir -p "$T/migrations" "$T/out"
printf 'create table a64_one (id int primary key);\n' >"$T/migrations/0001_one.up.sql"
printf 'insert into a64_one values (64);\n' >"$T/migrations/0002_two.up.sql"
common=(--health-addr off --wait-timeout 60s --migrations "$T/migrations")

# 1. An aarch64 executable, fully static, that says so.
desc=$(file -b "$bin")
if [[ "$desc" == *"ARM aarch64"*"statically linked"* ]] &&
    ! readelf -lW "$bin" | grep -q INTERP && ! readelf -dW "$bin" | grep -q NEEDED; then
    ok "aarch64, static: no interpreter, no NEEDED ($desc)"
else
    bad "$bin is not a fully static aarch64 executable" "$desc"
fi
if out=$(pge --version 2>&1) && [[ "$out" == "pgentry "*"(static aarch64; libpq "*"OpenSSL "*"libcurl "*"libev "* ]]; then
    ok "--version under qemu-aarch64-static: $out"
else
    bad "--version did not name the static aarch64 build and its libraries" "$out"
fi

# 2. Waiting: pgentry starts before the server does, and returns once it accepts work.
pge wait --database-url "$url" --wait-timeout 120s >"$T/wait.log" 2>&1 &
wait_pid=$!
pg_start "$pgdir"
rc=0
wait "$wait_pid" || rc=$?
wait_pid=
if [ "$rc" = 0 ]; then
    ok "wait: started before the server, exit 0 once it accepts connections"
else
    bad "wait for a server that comes up later: exit $rc" "$(cat "$T/wait.log")"
fi

# 3. Migrate and run COMMAND (an x86-64 program, exec'd by the aarch64 pgentry).
rc=0
out=$(pge "${common[@]}" --database-url "$url" -- "$busybox" sh -c "echo ran >$T/out/ran" 2>&1) || rc=$?
applied=$(psql_host -c 'select count(*) from pgentry_migrations' 2>&1 || true)
row=$(psql_host -c 'select id from a64_one' 2>&1 || true)
if [ "$rc" = 0 ] && [ "$(cat "$T/out/ran" 2>/dev/null)" = ran ] && [ "$applied" = 2 ] && [ "$row" = 64 ]; then
    ok "migrate (2 applied) + COMMAND ran"
else
    bad "migrate + COMMAND: exit $rc, migrations applied: $applied, row: $row, COMMAND ran: $(cat "$T/out/ran" 2>/dev/null || echo no)" "$out"
fi
if out=$(pge current --database-url "$url" --migrations "$T/migrations" 2>/dev/null) && [[ "$out" =~ ^0*2$ ]]; then
    ok "pgentry current: $out"
else
    bad "pgentry current" "$out"
fi

# 4. pgentry healthcheck against a running pgentry's health endpoint, then TERM.
hport=$(pg_free_port)
# qemu itself in the background, not the pge function (a subshell): TERM must reach pgentry.
"$qemu" "$bin" --health-addr "127.0.0.1:$hport" --migrations "$T/migrations" --database-url "$url" \
    -- "$busybox" sleep 600 >"$T/app.log" 2>&1 &
app_pid=$!
hc_url="http://127.0.0.1:$hport/readyz"
health_term 60 "$hc_url" "$T/app.log"

summary
