#!/usr/bin/env bash
# The static binary (dist/pgentry, scripts/build-static.sh) side by side with the dynamic one
# (build/pgentry), in one run, against one throwaway server (SCRAM over TCP on 127.0.0.1).
#
# Usage: bench/static.sh      (env: RUNS=20 for a, RUNS_B=7 for b, N_TRIVIAL=200,
#                              STATIC=dist/pgentry, PGENTRY=build/pgentry, BEFORE=)
#
# BEFORE=path compares two builds instead of static vs dynamic: the binary at path (say the
# base commit's build/pgentry) runs in the "static" column, PGENTRY in the "dynamic" one, and
# every case and ratio reads the same way (dynamic_over_static = after / before).
#
#   a  database at head: start -> COMMAND running (`benchtool stamp`, as in migrate.sh case b),
#      static vs dynamic, with migrate.sh's bash + `alembic upgrade head` entrypoint as the
#      anchor; the three take turns in random order each round
#   b  N_TRIVIAL trivial migrations on an empty database: peak RSS of pgentry (`benchtool
#      runmem`: ru_maxrss of the fork from the static benchtool, and the peak RssAnon sampled
#      every ms), and start -> exit
#   c  idle supervisor after the database work: `pgentry --migrations ... -- sleep` (SCRAM,
#      migrations at head, health endpoint on), measured once /readyz answers 200 and the
#      supervisor has released its start-up memory; next to tini, dumb-init and catatonit
#      supervising the same `sleep`: VmRSS, RssAnon, RssFile and PSS from /proc, median of
#      SAMPLES reads; static-nodb is the static supervisor with no database work at all (the
#      floor of a forked-worker design), and the static one's resident mappings are listed
#   d  size on disk: dist/pgentry, build/pgentry stripped (and the shared libraries it loads),
#      tini-static, tini, dumb-init, catatonit
# Prints per-run rows, a table, and `RESULT` lines (bench/stats.py). Exits non-zero only if the
# benchmark itself failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

RUNS=${RUNS:-20}
RUNS_B=${RUNS_B:-7}
N_TRIVIAL=${N_TRIVIAL:-200}
SAMPLES=${SAMPLES:-5}
STATIC=${BEFORE:-${STATIC:-$BENCH_ROOT/dist/pgentry}}

bench_init
bench_need psql alembic tini tini-static dumb-init catatonit runuser
"$BENCH_PY" -c 'import sqlalchemy, psycopg2' 2>/dev/null ||
    { echo "bench: python3-sqlalchemy and python3-psycopg2 are needed (scripts/install-deps.sh bench)" >&2; exit 1; }
[ -x "$STATIC" ] || { echo "bench: no static binary at $STATIC (run scripts/build-static.sh)" >&2; exit 1; }
bench_tools
DYNAMIC=$PGENTRY
bench_section "machine"
bench_machine
printf 'static: %s (%s)\n' "$("$STATIC" --version)" "$STATIC"
[ -z "${BEFORE:-}" ] ||
    printf 'BEFORE is set: column "static" is the before binary, column "dynamic" the after one\n'

data=$T/data
bench_pg_new "$data"
base_url=$PG_URL
url_of() { echo "${base_url%/postgres}/$1"; }
bench_pg_start_wait "$data"
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$base_url" -c "$1" >/dev/null; }

mig=$T/migrations
mkdir -p "$mig"
cp "$BENCH_ROOT"/migrations/*.sql "$mig/"
cp -r "$BENCH_ROOT/examples/alembic" "$T/alembic"
export ALEMBIC_DIR=$T/alembic
export PGENTRY_MIGRATIONS=$mig # the Alembic revisions read the same SQL from there
# migrate.sh's classic entrypoint, the anchor.
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

samples=$T/samples
out=$T/out
mkdir -p "$samples" "$out"
last() { tail -n1 "$samples/$1"; }
bin_of() { case "$1" in static) echo "$STATIC" ;; dynamic) echo "$DYNAMIC" ;; esac; }

# contest NAME DB: start -> `benchtool stamp` running, in ms, appended to $samples/a.NAME.
contest() {
    local name=$1 db=$2 tag=$out/a.$1.$RANDOM$RANDOM
    local -a cmd
    case "$name" in
    alembic) cmd=("$T/entrypoint.sh") ;;
    *) cmd=("$(bin_of "$name")" --health-addr off --migrations "$mig" --) ;;
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
    awk -v a="$start" -v b="$stamp" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }' >>"$samples/a.$name"
}

bench_section "a: database at head: start -> COMMAND running ($RUNS rounds)"
for c in static dynamic alembic; do
    sql "create database a_$c"
    contest "$c" "a_$c" # brings it to head; also the warm-up (page cache, Python bytecode)
    : >"$samples/a.$c"
done
sql "checkpoint"
printf '%4s %10s %10s %10s\n' run static dynamic alembic
for ((i = 1; i <= RUNS; i++)); do
    for c in $(printf '%s\n' static dynamic alembic | shuf); do
        contest "$c" "a_$c"
    done
    printf '%4d %10s %10s %10s\n' "$i" "$(last a.static)" "$(last a.dynamic)" "$(last a.alembic)"
done

bench_section "b: $N_TRIVIAL trivial migrations: peak RSS and start -> exit ($RUNS_B rounds)"
m200=$T/trivial
mkdir -p "$m200"
for ((k = 1; k <= N_TRIVIAL; k++)); do
    printf 'CREATE TABLE trivial_%d (id integer PRIMARY KEY, note text);\n' "$k" \
        >"$(printf '%s/%04d_trivial_%d.up.sql' "$m200" "$k" "$k")"
done
printf '%4s %10s %10s %12s %12s %12s %12s\n' run static-ms dynamic-ms static-MiB dynamic-MiB \
    static-anon dynamic-anon
for ((i = 1; i <= RUNS_B; i++)); do
    for c in $(printf '%s\n' static dynamic | shuf); do
        db=b_${c}_$i
        sql "create database $db"
        sql "checkpoint"
        tag=$out/b.$c.$i
        if ! DATABASE_URL=$(url_of "$db") "$BT" runmem "$tag.run" -- "$(bin_of "$c")" upgrade head \
            --health-addr off --migrations "$m200" >"$tag.log" 2>&1; then
            echo "bench: $c failed on database $db:" >&2
            cat "$tag.log" >&2
            exit 1
        fi
        awk '{ printf "%.3f\n", ($2 - $1) / 1e6 }' "$tag.run" >>"$samples/b.$c.ms"
        awk '{ printf "%.3f\n", $6 / 1024 }' "$tag.run" >>"$samples/b.$c.rss_mib"
        awk '{ printf "%.3f\n", $7 / 1024 }' "$tag.run" >>"$samples/b.$c.anon_mib"
        n=$(psql -X -At -d "$(url_of "$db")" -c "select count(*) from pgentry_migrations")
        [ "$n" = "$N_TRIVIAL" ] || { echo "bench: $c recorded $n of $N_TRIVIAL migrations" >&2; exit 1; }
    done
    printf '%4d %10s %10s %12s %12s %12s %12s\n' "$i" "$(last b.static.ms)" "$(last b.dynamic.ms)" \
        "$(last b.static.rss_mib)" "$(last b.dynamic.rss_mib)" "$(last b.static.anon_mib)" \
        "$(last b.dynamic.anon_mib)"
done

bench_section "c: idle supervisor RSS after the database work (median of $SAMPLES reads)"
declare -A PID
for c in static dynamic; do
    sql "create database c_$c"
    port=$(pg_free_port)
    DATABASE_URL=$(url_of "c_$c") bench_bg "$(bin_of "$c")" --migrations "$mig" --log-level warn \
        --health-addr "127.0.0.1:$port" -- sleep 100000 >"$out/c.$c.log" 2>&1
    PID[$c]=$BG_PID
    # Running means /readyz is 200: migrations done, COMMAND started, start-up memory released.
    for ((k = 0; k < 1500; k++)); do
        "$STATIC" healthcheck "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        kill -0 "$BG_PID" 2>/dev/null || { cat "$out/c.$c.log" >&2; exit 1; }
        sleep 0.02
    done
    "$STATIC" healthcheck "http://127.0.0.1:$port/readyz" >/dev/null ||
        { echo "bench: $c never became ready" >&2; cat "$out/c.$c.log" >&2; exit 1; }
done
# The same supervisor with no database work at all (--no-migrate, no DATABASE_URL): the floor a
# design that ran the database phases in a forked worker could reach, since the supervisor would
# then never touch libpq's or OpenSSL's pages or heap.
port=$(pg_free_port)
env -u DATABASE_URL "$STATIC" --no-migrate --log-level warn --health-addr "127.0.0.1:$port" -- \
    sleep 100000 >"$out/c.static-nodb.log" 2>&1 &
BG_PID=$!
BENCH_PIDS+=("$BG_PID")
PID[static-nodb]=$BG_PID
until "$STATIC" healthcheck "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$BG_PID" 2>/dev/null || { cat "$out/c.static-nodb.log" >&2; exit 1; }
    sleep 0.02
done
bench_bg tini -s -- sleep 100000
PID[tini]=$BG_PID
bench_bg tini-static -s -- sleep 100000
PID[tini-static]=$BG_PID
bench_bg dumb-init sleep 100000
PID[dumb-init]=$BG_PID
bench_bg catatonit -- sleep 100000
PID[catatonit]=$BG_PID
inits=(static static-nodb dynamic tini tini-static dumb-init catatonit)
# Every init has had its child running for a while before the first read.
for n in "${inits[@]}"; do
    until [ -n "$(cat /proc/"${PID[$n]}"/task/*/children 2>/dev/null)" ]; do sleep 0.01; done
done
for ((s = 1; s <= SAMPLES; s++)); do
    sleep 0.2
    for n in "${inits[@]}"; do
        p=${PID[$n]}
        awk '/^VmRSS/ { printf "%.3f\n", $2 / 1024 }' /proc/"$p"/status >>"$samples/c.$n.rss"
        awk '/^RssAnon/ { printf "%.3f\n", $2 / 1024 }' /proc/"$p"/status >>"$samples/c.$n.anon"
        awk '/^RssFile/ { printf "%.3f\n", $2 / 1024 }' /proc/"$p"/status >>"$samples/c.$n.file"
        awk '/^Pss:/ { printf "%.3f\n", $2 / 1024 }' /proc/"$p"/smaps_rollup >>"$samples/c.$n.pss"
    done
done
printf '%-12s %10s %10s %10s %10s\n' init RSS-MiB anon-MiB file-MiB PSS-MiB
for n in "${inits[@]}"; do
    printf '%-12s %10s %10s %10s %10s\n' "$n" "$(last "c.$n.rss")" "$(last "c.$n.anon")" \
        "$(last "c.$n.file")" "$(last "c.$n.pss")"
done
# Where the static supervisor's resident kilobytes are, mapping by mapping (file-backed pages
# come back 64 KiB at a time: the kernel maps a page's cached neighbours on each fault).
echo "static, resident mappings (kB):"
awk '/^[0-9a-f]+-[0-9a-f]+ / { m = $2 " " ($6 == "" ? "[anon]" : $6) }
     /^Rss:/ && $2 > 0 { printf "  %-8s %6d  %s\n", "rss", $2, m }
     /^Anonymous:/ && $2 > 0 { printf "  %-8s %6d  %s\n", "anon", $2, m }' /proc/"${PID[static]}"/smaps
for n in "${inits[@]}"; do
    kill -TERM "${PID[$n]}" 2>/dev/null || true
done

bench_section "d: size on disk"
strip -o "$T/pgentry.dynamic.stripped" "$DYNAMIC"
# The shared libraries the dynamic binary loads, for what a runtime image must also carry.
# (With BEFORE set, the "dynamic" column may be a static binary: ldd then lists nothing.)
libs_bytes=$({ ldd "$DYNAMIC" || true; } | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' |
    xargs -r readlink -f | sort -u | xargs -r stat -L -c %s | awk '{ s += $1 } END { print s + 0 }')
libs_count=$({ ldd "$DYNAMIC" || true; } | grep -c '=> /' || true)
declare -A SIZE=(
    [static]=$(stat -c %s "$STATIC")
    [dynamic]=$(stat -c %s "$T/pgentry.dynamic.stripped")
    [tini-static]=$(stat -L -c %s "$(command -v tini-static)")
    [tini]=$(stat -L -c %s "$(command -v tini)")
    [dumb-init]=$(stat -L -c %s "$(command -v dumb-init)")
    [catatonit]=$(stat -L -c %s "$(command -v catatonit)")
)
printf '%-12s %12s  %s\n' binary bytes note
printf '%-12s %12s  %s\n' static "${SIZE[static]}" "dist/pgentry, everything included"
printf '%-12s %12s  %s\n' dynamic "${SIZE[dynamic]}" \
    "stripped; plus $libs_count shared libraries, $libs_bytes bytes"
for n in tini-static tini dumb-init catatonit; do
    printf '%-12s %12s  %s\n' "$n" "${SIZE[$n]}" "$(file -b -L "$(command -v "$n")" | grep -o '[a-z]*ally linked')"
done
for n in static dynamic tini-static dumb-init; do
    echo "${SIZE[$n]}" >"$samples/d.$n"
done
echo $((SIZE[dynamic] + libs_bytes)) >"$samples/d.dynamic_with_libs"

bench_section "summary"
bench_summary a.static "$samples/a.static"
bench_summary a.dynamic "$samples/a.dynamic"
bench_summary a.alembic "$samples/a.alembic"
bench_ratio a.ratio.dynamic_over_static a.dynamic a.static
bench_ratio a.ratio.alembic_over_static a.alembic a.static
bench_summary b.static_peak_rss "$samples/b.static.rss_mib" --unit MiB
bench_summary b.dynamic_peak_rss "$samples/b.dynamic.rss_mib" --unit MiB
bench_ratio b.ratio.rss_dynamic_over_static b.dynamic_peak_rss b.static_peak_rss
bench_summary b.static_peak_rss_anon "$samples/b.static.anon_mib" --unit MiB
bench_summary b.dynamic_peak_rss_anon "$samples/b.dynamic.anon_mib" --unit MiB
bench_summary b.static_ms "$samples/b.static.ms"
bench_summary b.dynamic_ms "$samples/b.dynamic.ms"
bench_ratio b.ratio.ms_dynamic_over_static b.dynamic_ms b.static_ms
for n in "${inits[@]}"; do
    bench_summary "c.$n.idle_rss" "$samples/c.$n.rss" --unit MiB
done
bench_ratio c.ratio.rss_dynamic_over_static c.dynamic.idle_rss c.static.idle_rss
for n in "${inits[@]}"; do
    bench_summary "c.$n.idle_pss" "$samples/c.$n.pss" --unit MiB
done
bench_summary c.static.idle_anon "$samples/c.static.anon" --unit MiB
bench_summary c.static.idle_file "$samples/c.static.file" --unit MiB
bench_summary c.static-nodb.idle_anon "$samples/c.static-nodb.anon" --unit MiB
bench_summary c.static-nodb.idle_file "$samples/c.static-nodb.file" --unit MiB
bench_summary c.dynamic.idle_anon "$samples/c.dynamic.anon" --unit MiB
bench_summary d.static_bytes "$samples/d.static" --unit B
bench_summary d.dynamic_bytes "$samples/d.dynamic" --unit B
bench_summary d.dynamic_with_libs_bytes "$samples/d.dynamic_with_libs" --unit B
bench_summary d.tini_static_bytes "$samples/d.tini-static" --unit B
bench_summary d.dumb_init_bytes "$samples/d.dumb-init" --unit B
bench_ratio d.ratio.static_over_tini_static d.static_bytes d.tini_static_bytes
bench_ratio d.ratio.static_over_dumb_init d.static_bytes d.dumb_init_bytes
bench_table "static vs dynamic: results (ms unless noted; ratios are of medians / of p95s)"
