#!/usr/bin/env bash
# pgentry's migrate-then-start against the classic bash + `alembic upgrade head` entrypoint.
#
# Usage: bench/migrate.sh          (env: RUNS=20 for cases a/b, RUNS_C=9 for case c,
#                                    N_TRIVIAL=200, ALEMBIC_C=1 to also time Alembic in case c)
#
# Contestants, side by side in one run, same server, same SQL (migrations/0001):
#   pgentry   pgentry --health-addr off --migrations DIR -- benchtool stamp FILE
#             (DATABASE_URL in the environment; default supervised mode: COMMAND is forked)
#   alembic   the classic entrypoint, a bash script:
#                 until psql "$DATABASE_URL" -c 'select 1' >/dev/null 2>&1; do sleep 2; done
#                 cd examples/alembic && alembic upgrade head
#                 exec "$@"
#             started when the server is already up, so the first psql succeeds and the
#             `sleep 2` never runs (it would dominate otherwise). Python bytecode is cached
#             after the first run, as in a built image.
# "COMMAND running" = `benchtool stamp FILE` (bench/benchtool.c, static) reads CLOCK_MONOTONIC
# first thing in main(); its own exec costs the same for every contestant. Start = the
# monotonic clock read by `benchtool run` just before it forks the contestant.
# Cases (each run gets a fresh database, CHECKPOINT before it; contestant order alternates):
#   a  empty database, server up: start -> COMMAND running                 (target <= 60 ms)
#   a2 pgentry only, started before the server: server ready (postmaster log line, as in
#      wait_latency.sh) -> COMMAND running, i.e. wait + migrate + start end to end
#   b  database already at head: start -> COMMAND running                  (target <= 10 ms)
#   c  N_TRIVIAL one-statement migrations on an empty database, start -> exit, against the
#      floor: the same files fed to one `psql -X -q -v ON_ERROR_STOP=1 -f` session as
#      `BEGIN; <file> COMMIT;` blocks (target pgentry <= 1.2x floor: the median of the ratios
#      of each round, where both ran back to back); also with synchronous_commit=off for both
#      (PGOPTIONS), which takes the 200 commit flushes out and leaves protocol and CPU
#   d  peak RSS of pgentry during c (wait4 ru_maxrss)                      (target <= 8 MiB)
#      and, for the analysis, the peak RssAnon (private memory; the rest of RSS is shared
#      library pages) sampled every ms from /proc/PID/status
# Prints a table and one `RESULT name=... median_ms=... p95_ms=...` line per metric; exits
# non-zero only if the benchmark itself fails (a contestant errs), not on a missed target.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

RUNS=${RUNS:-20}
RUNS_C=${RUNS_C:-9}
N_TRIVIAL=${N_TRIVIAL:-200}
ALEMBIC_C=${ALEMBIC_C:-1}

bench_init
bench_need psql alembic timeout runuser
"$BENCH_PY" -c 'import sqlalchemy, psycopg2' 2>/dev/null ||
    { echo "bench: python3-sqlalchemy and python3-psycopg2 are needed (scripts/install-deps.sh bench)" >&2; exit 1; }
bench_tools
bench_section "machine"
bench_machine
printf 'alembic: %s, sqlalchemy %s\n' "$(alembic --version 2>&1 | tail -n1)" \
    "$("$BENCH_PY" -c 'import sqlalchemy; print(sqlalchemy.__version__)')"

data=$T/data
bench_pg_new "$data"
base_url=$PG_URL # .../postgres
url_of() { echo "${base_url%/postgres}/$1"; }
logs=$T/logs
mkdir -p "$logs"
[ "$(id -u)" = 0 ] && chown postgres "$logs"
bench_pg_start_wait "$data" "$logs/server.log"
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$base_url" -c "$1" >/dev/null; }

# The schema: the project's migrations, and a copy of the Alembic project reading the same SQL.
mig=$T/migrations
mkdir -p "$mig"
cp "$BENCH_ROOT"/migrations/*.sql "$mig/"
cp -r "$BENCH_ROOT/examples/alembic" "$T/alembic"
export PGENTRY_MIGRATIONS=$mig
cat >"$T/entrypoint.sh" <<'SH'
#!/bin/bash
set -e
until psql "$DATABASE_URL" -c 'select 1' >/dev/null 2>&1; do
    sleep 2
done
cd "$ALEMBIC_DIR"
alembic upgrade head
exec "$@"
SH
chmod +x "$T/entrypoint.sh"
export ALEMBIC_DIR=$T/alembic

samples=$T/samples
out=$T/out
mkdir -p "$samples" "$out"

# contest NAME DB: run contestant NAME against database DB with COMMAND = benchtool stamp;
# append (COMMAND running - start) in ms to $samples/NAME.
contest() {
    local name=$1 db=$2 tag=$out/$1.$RANDOM$RANDOM
    local -a cmd
    case "$name" in
    *pgentry*) cmd=("$PGENTRY" --health-addr off --migrations "$mig" --) ;;
    *alembic*) cmd=("$T/entrypoint.sh") ;;
    esac
    if ! DATABASE_URL=$(url_of "$db") "$BT" run "$tag.run" -- "${cmd[@]}" "$BT" stamp "$tag.stamp" \
        >"$tag.log" 2>&1; then
        echo "bench: $name failed on database $db:" >&2
        cat "$tag.log" >&2
        exit 1
    fi
    local start stamp
    read -r start _ <"$tag.run"
    stamp=$(head -n1 "$tag.stamp")
    awk -v a="$start" -v b="$stamp" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }' >>"$samples/$name"
}

both() { # both CASE DB_PGENTRY DB_ALEMBIC, in alternating order
    if ((RANDOM % 2)); then
        contest "$1.pgentry" "$2"
        contest "$1.alembic" "$3"
    else
        contest "$1.alembic" "$3"
        contest "$1.pgentry" "$2"
    fi
}

last() { tail -n1 "$samples/$1"; }

# Warm-up, not measured: page cache, Python bytecode of Alembic and SQLAlchemy.
sql "create database warm_pg"
sql "create database warm_al"
contest warm.pgentry warm_pg
contest warm.alembic warm_al

bench_section "a: empty database, server up: start -> COMMAND running ($RUNS runs)"
printf '%4s %10s %10s\n' run pgentry alembic
for ((i = 1; i <= RUNS; i++)); do
    sql "create database a_pg_$i"
    sql "create database a_al_$i"
    sql "checkpoint"
    both a "a_pg_$i" "a_al_$i"
    printf '%4d %10s %10s\n' "$i" "$(last a.pgentry)" "$(last a.alembic)"
done

bench_section "b: database at head: start -> COMMAND running ($RUNS runs)"
sql "create database b_pg"
sql "create database b_al"
contest warm.pgentry b_pg
contest warm.alembic b_al
sql "checkpoint"
printf '%4s %10s %10s\n' run pgentry alembic
for ((i = 1; i <= RUNS; i++)); do
    both b b_pg b_al
    printf '%4d %10s %10s\n' "$i" "$(last b.pgentry)" "$(last b.alembic)"
done

bench_section "a2: pgentry started before the server: server ready -> COMMAND running ($RUNS runs)"
printf '%4s %10s\n' run pgentry
a2_failures=0
for ((i = 1; i <= RUNS; i++)); do
    sql "create database a2_$i"
    bench_pg_stop "$data"
    tag=$out/a2.$i
    DATABASE_URL=$(url_of "a2_$i") bench_bg "$BT" run "$tag.run" -- "$PGENTRY" --health-addr off \
        --migrations "$mig" --wait-timeout 60s -- "$BT" stamp "$tag.stamp" \
        >"$tag.log" 2>&1
    pid=$BG_PID
    sleep 0.$((300 + RANDOM % 500))
    "$BT" clock >"$tag.clock"
    bench_pg_start "$data" "$logs/a2.$i.log"
    if ! wait "$pid"; then
        # A contestant failing is a finding, not a reason to lose the other results: report
        # it with its exit status and log, carry on, and exit non-zero at the end.
        a2_failures=$((a2_failures + 1))
        echo "bench: pgentry FAILED in a2 run $i (start_ns end_ns status ...: $(cat "$tag.run" 2>/dev/null)); its log:"
        sed 's/^/    /' "$tag.log"
        echo "    server log:"
        sed 's/^/    /' "$logs/a2.$i.log"
        for _ in $(seq 600); do sql "select 1" 2>/dev/null && break; sleep 0.1; done
        continue
    fi
    "$BENCH_PY" - "$tag" "$logs/a2.$i.log" >>"$samples/a2.pgentry" <<'PY'
import sys
tag, log = sys.argv[1], sys.argv[2]
real, mono = map(int, open(tag + ".clock").read().split())
ready = [l.split()[0] for l in open(log) if "ready to accept connections" in l]
if not ready:
    sys.exit("bench: no ready line in " + log)
sec, ms = ready[-1].split(".")
ready_mono = int(sec) * 10**9 + int(ms) * 10**6 + 500_000 - (real - mono)
stamp = int(open(tag + ".stamp").read().split()[0])
print("%.3f" % ((stamp - ready_mono) / 1e6))
PY
    printf '%4d %10s\n' "$i" "$(last a2.pgentry)"
done

bench_section "c/d: $N_TRIVIAL trivial migrations on an empty database: start -> exit ($RUNS_C runs)"
m200=$T/trivial
mkdir -p "$m200"
floor=$T/trivial.psql
: >"$floor"
for ((k = 1; k <= N_TRIVIAL; k++)); do
    f=$(printf '%s/%04d_trivial_%d.up.sql' "$m200" "$k" "$k")
    printf 'CREATE TABLE trivial_%d (id integer PRIMARY KEY, note text);\n' "$k" >"$f"
    { echo "BEGIN;"; cat "$f"; echo "COMMIT;"; } >>"$floor"
done
if [ "$ALEMBIC_C" = 1 ]; then
    # The same files as Alembic revisions, one op.execute() each, chained.
    mkdir -p "$T/alembic_c/versions"
    cp "$T/alembic/env.py" "$T/alembic/script.py.mako" "$T/alembic_c/"
    sed "s|^script_location = .*|script_location = $T/alembic_c|" "$T/alembic/alembic.ini" \
        >"$T/alembic_c/alembic.ini"
    "$BENCH_PY" - "$m200" "$T/alembic_c/versions" "$N_TRIVIAL" <<'PY'
import os, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(f for f in os.listdir(src) if f.endswith(".up.sql"))
for k, f in enumerate(files, 1):
    sql = open(os.path.join(src, f)).read()
    prev = repr("%04d" % (k - 1)) if k > 1 else "None"
    with open(os.path.join(dst, "%04d_trivial.py" % k), "w") as out:
        out.write("from alembic import op\nrevision = %r\ndown_revision = %s\n"
                  "branch_labels = None\ndepends_on = None\n\n"
                  "def upgrade():\n    op.execute(%r)\n\ndef downgrade():\n    pass\n"
                  % ("%04d" % k, prev, sql))
PY
fi

# timed NAME DB CMD...: start -> exit of CMD in ms to $samples/NAME, ru_maxrss to
# NAME.rss_mib, the peak RssAnon (private memory, without shared library pages) to NAME.anon_mib
timed() {
    local name=$1 db=$2 tag=$out/$1.$RANDOM$RANDOM
    shift 2
    if ! DATABASE_URL=$(url_of "$db") "$BT" runmem "$tag.run" -- "$@" >"$tag.log" 2>&1; then
        echo "bench: $name failed on database $db:" >&2
        cat "$tag.log" >&2
        exit 1
    fi
    awk '{ printf "%.3f\n", ($2 - $1) / 1e6 }' "$tag.run" >>"$samples/$name"
    awk '{ printf "%.3f\n", $6 / 1024 }' "$tag.run" >>"$samples/$name.rss_mib"
    awk '{ printf "%.3f\n", $7 / 1024 }' "$tag.run" >>"$samples/$name.anon_mib"
}

# *_async: the same with PGOPTIONS='-c synchronous_commit=off' for both, so that the 200
# commit flushes (shared disk, noisy here) drop out and what is left is protocol and CPU.
c_contestants=(pgentry floor pgentry_async floor_async)
[ "$ALEMBIC_C" = 1 ] && c_contestants+=(alembic)
async=(env "PGOPTIONS=-c synchronous_commit=off")
printf '%4s %10s %10s %10s %12s %14s %12s\n' run pgentry psql-floor alembic pgentry-MiB \
    pgentry-async floor-async
for ((i = 1; i <= RUNS_C; i++)); do
    order=($(printf '%s\n' "${c_contestants[@]}" | shuf))
    for c in "${order[@]}"; do
        db=c_${c}_$i
        sql "create database $db"
        sql "checkpoint"
        up=("$PGENTRY" upgrade head --health-addr off --migrations "$m200")
        fl=(psql -X -q -v ON_ERROR_STOP=1 -d "$(url_of "$db")" -f "$floor")
        case "$c" in
        pgentry) timed c.pgentry "$db" "${up[@]}" ;;
        floor) timed c.psql_floor "$db" "${fl[@]}" ;;
        pgentry_async) timed c.async.pgentry "$db" "${async[@]}" "${up[@]}" ;;
        floor_async) timed c.async.psql_floor "$db" "${async[@]}" "${fl[@]}" ;;
        alembic) timed c.alembic "$db" alembic -c "$T/alembic_c/alembic.ini" upgrade head ;;
        esac
    done
    # Paired ratios: the two ran back to back in this round, under the same load.
    awk -v a="$(last c.pgentry)" -v b="$(last c.psql_floor)" 'BEGIN { printf "%.4f\n", a / b }' \
        >>"$samples/c.paired_ratio"
    awk -v a="$(last c.async.pgentry)" -v b="$(last c.async.psql_floor)" \
        'BEGIN { printf "%.4f\n", a / b }' >>"$samples/c.async.paired_ratio"
    printf '%4d %10s %10s %10s %12s %14s %12s\n' "$i" "$(last c.pgentry)" "$(last c.psql_floor)" \
        "$([ "$ALEMBIC_C" = 1 ] && last c.alembic || echo -)" "$(last c.pgentry.rss_mib)" \
        "$(last c.async.pgentry)" "$(last c.async.psql_floor)"
done
n=$(psql -X -At -d "$(url_of c_pgentry_1)" -c "select count(*) from pgentry_migrations")
[ "$n" = "$N_TRIVIAL" ] || { echo "bench: pgentry recorded $n of $N_TRIVIAL migrations" >&2; exit 1; }

bench_section "summary"
bench_summary a.pgentry "$samples/a.pgentry" --target-median 60
bench_summary a.alembic "$samples/a.alembic"
bench_ratio a.ratio.alembic_over_pgentry a.alembic a.pgentry
bench_summary a2.pgentry_from_server_ready "$samples/a2.pgentry" --target-median 60
bench_summary b.pgentry "$samples/b.pgentry" --target-median 10
bench_summary b.alembic "$samples/b.alembic"
bench_ratio b.ratio.alembic_over_pgentry b.alembic b.pgentry
bench_summary c.pgentry "$samples/c.pgentry"
bench_summary c.psql_floor "$samples/c.psql_floor"
[ "$ALEMBIC_C" = 1 ] && bench_summary c.alembic "$samples/c.alembic"
bench_ratio c.ratio.pgentry_over_floor c.pgentry c.psql_floor
bench_summary c.paired_ratio.pgentry_over_floor "$samples/c.paired_ratio" --unit ratio --target-median 1.2
bench_summary c.async.pgentry "$samples/c.async.pgentry"
bench_summary c.async.psql_floor "$samples/c.async.psql_floor"
bench_summary c.async.paired_ratio.pgentry_over_floor "$samples/c.async.paired_ratio" --unit ratio \
    --target-median 1.2
bench_summary d.pgentry_peak_rss "$samples/c.pgentry.rss_mib" --unit MiB --target-max 8
bench_summary d.psql_floor_peak_rss "$samples/c.psql_floor.rss_mib" --unit MiB
[ "$ALEMBIC_C" = 1 ] && bench_summary d.alembic_peak_rss "$samples/c.alembic.rss_mib" --unit MiB
bench_summary d.pgentry_peak_rss_anon "$samples/c.pgentry.anon_mib" --unit MiB
bench_summary d.psql_floor_peak_rss_anon "$samples/c.psql_floor.anon_mib" --unit MiB

bench_table "migrate: results (ms unless noted; ratios are of medians / of p95s)"
if [ "$a2_failures" -gt 0 ]; then
    echo "RESULT name=a2.failures count=$a2_failures"
    echo "bench: pgentry failed in $a2_failures a2 run(s), see above" >&2
    exit 1
fi
