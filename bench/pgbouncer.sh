#!/usr/bin/env bash
# Migration throughput through PgBouncer transaction pooling (lease lock) against a direct
# connection (advisory lock), side by side in one run, same server.
#
# Usage: bench/pgbouncer.sh          (env: RUNS=7, N_TRIVIAL=200, POOL_SIZE=2)
#
# Each round: two fresh databases, N_TRIVIAL one-statement transactional migrations, `pgentry
# upgrade head` start -> exit, once with DATABASE_URL straight to PostgreSQL and once through
# PgBouncer (pool_mode=transaction, default_pool_size=POOL_SIZE, auth_type=trust, server side
# over the socket), order alternating. Prints per-round rows, medians/p95 and the paired ratio.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

RUNS=${RUNS:-7}
N_TRIVIAL=${N_TRIVIAL:-200}
POOL_SIZE=${POOL_SIZE:-2}
PGBOUNCER=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}

bench_init
bench_need psql runuser
[ -x "$PGBOUNCER" ] || { echo "bench: pgbouncer is needed (scripts/install-deps.sh test)" >&2; exit 1; }
bench_tools
bench_section "machine"
bench_machine
"$PGBOUNCER" --version | head -n1

data=$T/data
bench_pg_new "$data"
base_url=$PG_URL
bench_pg_start_wait "$data"
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$base_url" -c "$1" >/dev/null; }

bouncer=$T/bouncer
mkdir -p "$bouncer"
[ "$(id -u)" = 0 ] && chown postgres "$bouncer"
bport=$(pg_free_port)
echo '"postgres" ""' >"$bouncer/userlist.txt"
cat >"$bouncer/pgbouncer.ini" <<INI
[databases]
* = host=$data port=$(cat "$data/.port") user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $bouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 100
logfile = $bouncer/pgbouncer.log
ignore_startup_parameters = extra_float_digits,options
INI
bench_bg pg_as "$PGBOUNCER" -q "$bouncer/pgbouncer.ini"
for _ in $(seq 200); do
    psql -X -q -d "postgres://postgres@127.0.0.1:$bport/postgres" -c 'select 1' >/dev/null 2>&1 && break
    sleep 0.05
done
direct_url() { echo "${base_url%/postgres}/$1"; }
pooled_url() { echo "postgres://postgres:x@127.0.0.1:$bport/$1"; }

mig=$T/trivial
mkdir -p "$mig"
for ((k = 1; k <= N_TRIVIAL; k++)); do
    printf 'CREATE TABLE trivial_%d (id integer PRIMARY KEY, note text);\n' "$k" \
        >"$(printf '%s/%04d_trivial_%d.up.sql' "$mig" "$k" "$k")"
done

samples=$T/samples
out=$T/out
mkdir -p "$samples" "$out"
timed() { # timed NAME URL: start -> exit of pgentry upgrade, in ms, to $samples/NAME
    local tag=$out/$1.$RANDOM$RANDOM
    if ! DATABASE_URL=$2 "$BT" run "$tag.run" -- "$PGENTRY" upgrade head --health-addr off \
        --migrations "$mig" >"$tag.log" 2>&1; then
        echo "bench: $1 failed:" >&2
        cat "$tag.log" >&2
        exit 1
    fi
    awk '{ printf "%.3f\n", ($2 - $1) / 1e6 }' "$tag.run" >>"$samples/$1"
    [ "$1" != pooled ] || grep -q 'lease row' "$tag.log" ||
        { echo "bench: the pooled run did not use the lease" >&2; exit 1; }
}
last() { tail -n1 "$samples/$1"; }

bench_section "$N_TRIVIAL trivial migrations: start -> exit ($RUNS rounds)"
printf '%4s %10s %10s\n' run direct pooled
for ((i = 1; i <= RUNS; i++)); do
    sql "create database d_$i"
    sql "create database p_$i"
    sql "checkpoint"
    if ((i % 2)); then
        timed direct "$(direct_url "d_$i")"
        timed pooled "$(pooled_url "p_$i")"
    else
        timed pooled "$(pooled_url "p_$i")"
        timed direct "$(direct_url "d_$i")"
    fi
    awk -v a="$(last pooled)" -v b="$(last direct)" 'BEGIN { printf "%.4f\n", a / b }' \
        >>"$samples/paired_ratio"
    printf '%4d %10s %10s\n' "$i" "$(last direct)" "$(last pooled)"
done
n=$(psql -X -At -d "$(direct_url p_1)" -c "select count(*) from pgentry_migrations")
[ "$n" = "$N_TRIVIAL" ] || { echo "bench: pooled run recorded $n of $N_TRIVIAL" >&2; exit 1; }

bench_section "summary"
bench_summary pgbouncer.direct "$samples/direct"
bench_summary pgbouncer.pooled "$samples/pooled"
bench_summary pgbouncer.paired_ratio.pooled_over_direct "$samples/paired_ratio" --unit ratio
bench_table "pgbouncer: $N_TRIVIAL migrations, direct vs transaction pooling (ms unless noted)"
