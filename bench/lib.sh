# Shared helpers of the bench/ scripts (sourced, not run).
#
# bench_begin CMD...         bench_init, bench_need CMD..., bench_tools, and the machine header
# bench_init                 temp dir $T (world-traversable, the server runs as postgres),
#                            $BENCH_RESULTS, a trap that stops every server and background
#                            process registered below and removes $T
# bench_tools                build $BT (bench/benchtool.c) and find $PGENTRY (build/pgentry,
#                            built with cmake if missing; override with PGENTRY=path)
# bench_need CMD...          fail early, naming scripts/install-deps.sh bench, if one is missing
# bench_pg_new DIR           initdb a throwaway server on a free port, logging with epoch-ms
#                            timestamps; registered for cleanup. Sets PG_PORT, PG_URL
# bench_pg_start DIR [LOG]   start without waiting (pg_ctl -W); bench_pg_stop DIR: fast stop
# bench_bg CMD...            start CMD in the background and register its pid (BG_PID)
# bench_summary / bench_ratio / bench_table   see bench/stats.py
# bench_section TITLE        a visible header on stdout
# shellcheck shell=bash

BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(dirname "$BENCH_HERE")
# shellcheck source=../scripts/lib/pg.sh
source "$BENCH_ROOT/scripts/lib/pg.sh"

# Debian's Python (the one Alembic runs on), not a pyenv shim earlier in PATH.
BENCH_PY=/usr/bin/python3
[ -x "$BENCH_PY" ] || BENCH_PY=$(command -v python3)

BENCH_PGDIRS=()
BENCH_PIDS=()

bench_cleanup() {
    local rc=$? d p
    trap - EXIT INT TERM
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for d in "${BENCH_PGDIRS[@]}"; do
        pg_stop "$d"
    done
    for p in "${BENCH_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    [ -n "${T:-}" ] && rm -rf "$T"
    exit "$rc"
}

bench_init() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/pgentry-bench.XXXXXX")
    chmod 755 "$T"
    export BENCH_RESULTS=$T/results.jsonl
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

bench_need() {
    local c missing=()
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench: missing ${missing[*]} (run scripts/install-deps.sh bench)" >&2
        exit 1
    fi
}

bench_tools() {
    bench_need cc cmake
    BT=$T/benchtool
    cc -O2 -Wall -Wextra -static -o "$BT" "$BENCH_HERE/benchtool.c" 2>/dev/null ||
        cc -O2 -Wall -Wextra -o "$BT" "$BENCH_HERE/benchtool.c"
    if [ -z "${PGENTRY:-}" ]; then
        PGENTRY=$BENCH_ROOT/build/pgentry
        if [ ! -x "$PGENTRY" ]; then
            echo "bench: building pgentry (RelWithDebInfo)" >&2
            cmake -S "$BENCH_ROOT" -B "$BENCH_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
            cmake --build "$BENCH_ROOT/build" -j2 --target pgentry >/dev/null
        fi
    fi
    [ -x "$PGENTRY" ] || { echo "bench: no pgentry binary at $PGENTRY" >&2; exit 1; }
}

bench_pg_new() {
    local dir=$1
    PG_PORT=$(pg_free_port)
    pg_init "$dir" "$PG_PORT"
    BENCH_PGDIRS+=("$dir")
    # %n: epoch seconds with milliseconds, the stamp of "ready to accept connections".
    cat >>"$dir/postgresql.conf" <<'CONF'
log_line_prefix = '%n [%p] '
log_timezone = 'UTC'
CONF
    PG_URL=$(pg_url "$dir")
}

bench_pg_start() {
    local dir=$1 log=${2:-$1/server.log}
    pg_as "$(pg_bindir)/pg_ctl" -D "$dir" -l "$log" -W start >/dev/null
}

bench_pg_start_wait() {
    local dir=$1 log=${2:-$1/server.log}
    pg_as "$(pg_bindir)/pg_ctl" -D "$dir" -l "$log" -w -t 60 start >/dev/null
}

bench_pg_stop() {
    pg_as "$(pg_bindir)/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null
}

bench_bg() {
    "$@" &
    BG_PID=$!
    BENCH_PIDS+=("$BG_PID")
}

bench_summary() { "$BENCH_PY" "$BENCH_HERE/stats.py" summary "$@"; }
bench_ratio() { "$BENCH_PY" "$BENCH_HERE/stats.py" ratio "$@"; }
bench_table() {
    "$BENCH_PY" "$BENCH_HERE/stats.py" table "$@"
    echo
    bench_load
}

bench_section() {
    printf '\n== %s ==\n' "$*"
}

bench_begin() {
    bench_init
    bench_need "$@"
    bench_tools
    bench_section "machine"
    bench_machine
}

# The machine, for the record: date, CPU, cores, kernel, PostgreSQL and pgentry versions.
bench_machine() {
    printf 'date: %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf 'cpu: %s x%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" "$(nproc)"
    printf 'kernel: %s\n' "$(uname -r)"
    printf 'postgresql: %s\n' "$("$(pg_bindir)/postgres" --version)"
    printf 'pgentry: %s (%s)\n' "$("$PGENTRY" --version)" "$PGENTRY"
    bench_load
}

# The load average: other work on the machine skews every number, so say how busy it was.
bench_load() {
    printf 'load average (1/5/15 min): %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
}
