#!/usr/bin/env bash
# How soon does pgentry notice that the standby it waits on was promoted, and what does waiting
# on a standby cost it?
#
# Usage: bench/failover.sh    (env: RUNS=10, RUNS_LONG=3, DWELLS="1 10 60",
#                              BEFORE=path to the binary to compare with; default: main's,
#                              built from `git archive ${BEFORE_REF:-main}`)
#
# Each run: a fresh hot standby (pg_basebackup -R from one primary), both binaries
#   pgentry wait --database-url STANDBY_URL --health-addr off --wait-timeout 300s
# started side by side against it; after DWELL seconds the standby is promoted (pg_ctl promote)
# and each binary's latency is (its exit time - the promoted server's "database system is
# ready to accept connections" line, stamped by log_line_prefix %n and moved onto the monotonic
# axis as bench/wait_latency.sh does). Exit times come from benchtool run (CLOCK_MONOTONIC after
# wait4()).
# Cost: the standby logs every connection (log_connections), so the attempts each binary made
# while it was a standby
# are counted per binary (each URL sets its own application_name) and divided by the time from
# its first connection to the promotion.
# DWELL 60 runs RUNS_LONG times (60 s each), the others RUNS times.
# Prints per-run rows, then one RESULT line per series. Exits non-zero only if the benchmark
# itself fails.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

RUNS=${RUNS:-10}
RUNS_LONG=${RUNS_LONG:-3}
DWELLS=${DWELLS:-"1 10 60"}

bench_begin runuser git

if [ -z "${BEFORE:-}" ]; then
    ref=${BEFORE_REF:-main}
    echo "bench: building the 'before' binary from $ref" >&2
    mkdir -p "$T/before-src"
    git -C "$BENCH_ROOT" archive "$ref" | tar -x -C "$T/before-src"
    cmake -S "$T/before-src" -B "$T/before-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$T/before-build" -j2 --target pgentry >/dev/null
    BEFORE=$T/before-build/pgentry
fi
printf 'before: %s (%s)\n' "$("$BEFORE" --version)" "$BEFORE"

primary=$T/primary
bench_pg_new "$primary"
bench_pg_start_wait "$primary"
samples=$T/samples
mkdir -p "$samples"

# A new standby of the primary in $1 on a free port, started and accepting read-only work.
new_standby() {
    local dir=$1 port
    port=$(pg_free_port)
    mkdir -p "$dir"
    chmod 700 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    pg_as "$(pg_bindir)/pg_basebackup" -D "$dir" -h "$primary" -p "$(cat "$primary/.port")" \
        -U postgres -R -X stream -c fast --no-sync 2>/dev/null
    BENCH_PGDIRS+=("$dir")
    cat >>"$dir/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$dir'
log_connections = on
log_line_prefix = '%n [%p] '
CONF
    echo "$port" >"$dir/.port"
    cp "$primary/.password" "$dir/.password"
    bench_pg_start_wait "$dir" "$dir/server.log"
}

for dwell in $DWELLS; do
    runs=$RUNS
    [ "$dwell" -ge 60 ] && runs=$RUNS_LONG
    bench_section "promotion after ${dwell}s on the standby: $runs runs (ms after the promoted server was ready; attempts/s while it was a standby)"
    printf '%4s %10s %10s %14s %14s\n' run before after before_att/s after_att/s
    for ((i = 1; i <= runs; i++)); do
        run=$T/d$dwell-r$i
        sb=$run/standby
        mkdir -p "$run"
        new_standby "$sb"
        url=$(pg_url "$sb")
        pids=()
        for who in before after; do
            bin=$PGENTRY
            [ "$who" = before ] && bin=$BEFORE
            bench_bg "$BT" run "$run/$who" -- "$bin" wait --database-url \
                "$url?application_name=bench_$who" --health-addr off --wait-timeout 300s \
                2>"$run/$who.log"
            pids+=("$BG_PID")
        done
        sleep "$dwell"
        "$BT" clock >"$run/clock"
        pg_as "$(pg_bindir)/pg_ctl" -D "$sb" -w -t 60 promote >/dev/null
        for p in "${pids[@]}"; do
            if ! wait "$p"; then
                echo "bench: a waiter failed in $run (pid $p)" >&2
                exit 1
            fi
        done
        pg_stop "$sb"
        "$BENCH_PY" - "$run" "$samples" "$dwell" <<'PY'
import os, re, sys
run, samples, dwell = sys.argv[1], sys.argv[2], float(sys.argv[3])
real, mono = map(int, open(os.path.join(run, "clock")).read().split())
log = open(os.path.join(run, "standby", "server.log")).read().splitlines()
# The last "ready" line is the promoted server's (the first is the standby's read-only one).
ready = [l.split()[0] for l in log if "ready to accept connections" in l]
if len(ready) < 2:
    sys.exit("bench: no 'ready to accept connections' line after the promotion in " + run)
sec, ms = ready[-1].split(".")
ready_mono = int(sec) * 10**9 + int(ms) * 10**6 + 500_000 - (real - mono)
ready_epoch = float(ready[-1])
# Connections each binary made before the promotion: its URL names it (application_name).
# Per second of the time from its first connection to the promotion.
counts = {"before": 0, "after": 0}
first = {}
for l in log:
    m = re.search(r"connection authorized: .*application_name=bench_(before|after)", l)
    if m and float(l.split()[0]) < ready_epoch:
        counts[m.group(1)] += 1
        first.setdefault(m.group(1), float(l.split()[0]))
row = []
for who in ("before", "after"):
    start, end, code = open(os.path.join(run, who)).read().split()[:3]
    if code != "0":
        sys.exit("bench: %s exited %s in %s" % (who, code, run))
    gap = (int(end) - ready_mono) / 1e6
    with open(os.path.join(samples, "d%d.%s" % (dwell, who)), "a") as f:
        f.write("%.3f\n" % gap)
    row.append("%.1f" % gap)
rates = []
for who in ("before", "after"):
    rate = counts[who] / max(ready_epoch - first.get(who, ready_epoch), 1e-3)
    with open(os.path.join(samples, "d%d.%s.rate" % (dwell, who)), "a") as f:
        f.write("%.3f\n" % rate)
    rates.append("%.2f" % rate)
print("%4s %10s %10s %14s %14s" % (os.path.basename(run).split("-r")[1], *row, *rates))
PY
    done
done

bench_section "summary"
for dwell in $DWELLS; do
    for who in before after; do
        bench_summary "failover.${dwell}s.$who" "$samples/d$dwell.$who"
        bench_summary "failover.${dwell}s.$who.attempts_per_s" "$samples/d$dwell.$who.rate" --unit per_s
    done
    bench_ratio "failover.${dwell}s.ratio.before_over_after" "failover.${dwell}s.before" "failover.${dwell}s.after"
done
bench_table "failover: promotion -> pgentry wait returned"
