#!/usr/bin/env bash
# How fast does each waiter notice that PostgreSQL came up, and what does waiting cost?
#
# Usage: bench/wait_latency.sh            (env: RUNS=20, CPU_SECONDS=30, POLLER=0|1)
#
# Part 1, latency (RUNS runs, side by side in each run): with the server stopped, start
#   pgentry wait --database-url URL --health-addr off
#   until psql "$URL" -c 'select 1'; do sleep 2; done
#   wait-for-it -q -t 60 127.0.0.1:PORT
# wait 0.5-1.5 s (random, so the psql loop is caught at a random point of its sleep), start the
# server (pg_ctl -W), and take for each waiter (its exit time - server ready).
#   Exit time: CLOCK_MONOTONIC right after wait4() in bench/benchtool.c ("run"), which forked it.
#   Server ready: the postmaster's "database system is ready to accept connections" log line,
#   stamped by log_line_prefix %n (epoch ms, truncated; +0.5 ms added) and moved onto the
#   monotonic axis with a REALTIME/MONOTONIC pair read back to back in the same run. That line
#   is logged as the postmaster switches to accepting connections, so it is the exact instant to
#   within the ms rounding. POLLER=1 also runs a 1 ms startup-packet poller (as pg_isready) to
#   cross-check it; it forks a backend per attempt during start-up, so it is off by default.
# Part 2, CPU while the server is down (CPU_SECONDS, side by side): pgentry against a closed
#   port on 127.0.0.1, pgentry against a black hole (a local listener whose accept queue is full,
#   so the kernel drops our SYNs: connect never completes) with --connect-timeout 250ms, and for
#   comparison the psql loop and wait-for-it against the closed port. utime+stime of each waiter
#   and every child it reaped, from wait4()'s rusage.
# Prints a table and one `RESULT name=... median_ms=... p95_ms=...` line per metric. Exits
# non-zero only if the benchmark itself fails (a waiter errs, no ready line), not on a missed
# target.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

RUNS=${RUNS:-20}
CPU_SECONDS=${CPU_SECONDS:-30}
POLLER=${POLLER:-0}

bench_begin psql wait-for-it timeout runuser

data=$T/data
bench_pg_new "$data"
port=$PG_PORT
url=$PG_URL
logs=$T/logs
mkdir -p "$logs"
[ "$(id -u)" = 0 ] && chown postgres "$logs"

# One sample file per series, one number per line (ms).
samples=$T/samples
mkdir -p "$samples"

# Start the server once so that initdb's first start (and its checkpoint) is not measured.
bench_pg_start_wait "$data" "$logs/warmup.log"
bench_pg_stop "$data"

bench_section "latency: $RUNS runs, server ready -> waiter returned"
printf '%4s %10s %10s %12s %10s\n' run pgentry psql-loop wait-for-it poller
for ((i = 1; i <= RUNS; i++)); do
    run=$T/run$i
    mkdir -p "$run"
    pids=()
    bench_bg "$BT" run "$run/pgentry" -- "$PGENTRY" wait --database-url "$url" --health-addr off \
        --wait-timeout 60s
    pids+=("$BG_PID")
    bench_bg "$BT" run "$run/psql" -- timeout 60 bash -c \
        'until psql "$1" -c "select 1" >/dev/null 2>&1; do sleep 2; done' _ "$url"
    pids+=("$BG_PID")
    bench_bg "$BT" run "$run/wfi" -- wait-for-it -q -t 60 "127.0.0.1:$port"
    pids+=("$BG_PID")
    if [ "$POLLER" = 1 ]; then
        bench_bg "$BT" ping 127.0.0.1 "$port" "$run/ping" 1000
        pids+=("$BG_PID")
    fi
    d=$((500 + RANDOM % 1000))
    sleep "$((d / 1000)).$(printf %03d $((d % 1000)))"
    "$BT" clock >"$run/clock"
    bench_pg_start "$data" "$logs/run$i.log"
    for p in "${pids[@]}"; do
        if ! wait "$p"; then
            echo "bench: a waiter failed in run $i (pid $p)" >&2
            exit 1
        fi
    done
    cp "$logs/run$i.log" "$run/server.log"
    bench_pg_stop "$data"
    "$BENCH_PY" - "$run" "$samples" <<'PY'
import os, sys
run, samples = sys.argv[1], sys.argv[2]
real, mono = map(int, open(os.path.join(run, "clock")).read().split())
ready = None
for line in open(os.path.join(run, "server.log")):
    if "ready to accept connections" in line:
        ready = line.split()[0]
if ready is None:
    sys.exit("bench: no 'ready to accept connections' line in " + run + "/server.log")
sec, ms = ready.split(".")
ready_mono = int(sec) * 10**9 + int(ms) * 10**6 + 500_000 - (real - mono)
row = []
for name in ("pgentry", "psql", "wfi"):
    start, end, code = open(os.path.join(run, name)).read().split()[:3]
    if code != "0":
        sys.exit("bench: %s exited %s in %s" % (name, code, run))
    gap = (int(end) - ready_mono) / 1e6
    with open(os.path.join(samples, name), "a") as f:
        f.write("%.3f\n" % gap)
    row.append("%.1f" % gap)
ping = os.path.join(run, "ping")
if os.path.exists(ping):
    last_refused, first_ok, _ = map(int, open(ping).read().split())
    with open(os.path.join(samples, "ping_first_ok"), "a") as f:
        f.write("%.3f\n" % ((first_ok - ready_mono) / 1e6))
    with open(os.path.join(samples, "ping_last_refused"), "a") as f:
        f.write("%.3f\n" % ((last_refused - ready_mono) / 1e6))
    row.append("%.1f" % ((first_ok - ready_mono) / 1e6))
else:
    row.append("-")
print("%4s %10s %10s %12s %10s" % (os.path.basename(run)[3:], *row))
PY
done

bench_section "latency summary (ms after the server was ready; negative = returned before)"
bench_summary wait.pgentry "$samples/pgentry" --target-median 25 --target-p95 60
bench_summary wait.psql_loop "$samples/psql"
bench_summary wait.wait_for_it "$samples/wfi"
if [ "$POLLER" = 1 ]; then
    bench_summary wait.check.poller_first_ok "$samples/ping_first_ok"
    bench_summary wait.check.poller_last_refused "$samples/ping_last_refused"
fi
bench_ratio wait.ratio.psql_loop_over_pgentry wait.psql_loop wait.pgentry

bench_section "CPU while the server is down: ${CPU_SECONDS} s each, side by side"
closed=$(pg_free_port)
hole_port_file=$T/hole.port
# A black hole on loopback: listen(backlog 0) and fill the accept queue with one connection
# that is never accepted; further SYNs are dropped, so connect() hangs until our timeout.
bench_bg "$BENCH_PY" -c '
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(0)
fill = [socket.create_connection(l.getsockname(), timeout=1)]
for _ in range(3):
    try:
        fill.append(socket.create_connection(l.getsockname(), timeout=0.3))
    except OSError:
        break
else:
    sys.exit("black hole: the accept queue never filled up")
open(sys.argv[1], "w").write("%d\n" % l.getsockname()[1])
time.sleep(3600)
' "$hole_port_file"
hole_pid=$BG_PID
for _ in $(seq 100); do [ -s "$hole_port_file" ] && break; sleep 0.05; done
hole=$(cat "$hole_port_file" 2>/dev/null || true)
[ -n "$hole" ] || { echo "bench: could not set up the black hole listener" >&2; exit 1; }

cpu=$T/cpu
mkdir -p "$cpu"
down_url="postgres://postgres:pw@127.0.0.1:$closed/postgres"
hole_url="postgres://postgres:pw@127.0.0.1:$hole/postgres"
pids=()
bench_bg "$BT" run "$cpu/pgentry_closed" -- "$PGENTRY" wait --database-url "$down_url" \
    --health-addr off --wait-timeout "${CPU_SECONDS}s" --log-level error 2>"$cpu/pgentry_closed.err"
pids+=("$BG_PID")
bench_bg "$BT" run "$cpu/pgentry_blackhole" -- "$PGENTRY" wait --database-url "$hole_url" \
    --health-addr off --wait-timeout "${CPU_SECONDS}s" --connect-timeout 250ms --log-level error 2>"$cpu/pgentry_blackhole.err"
pids+=("$BG_PID")
bench_bg "$BT" run "$cpu/psql_loop_closed" -- timeout "$CPU_SECONDS" bash -c \
    'until psql "$1" -c "select 1" >/dev/null 2>&1; do sleep 2; done' _ "$down_url"
pids+=("$BG_PID")
bench_bg "$BT" run "$cpu/wait_for_it_closed" -- wait-for-it -q -t "$CPU_SECONDS" "127.0.0.1:$closed"
pids+=("$BG_PID")
for p in "${pids[@]}"; do
    wait "$p" || true # they all give up at the deadline: 69 (pgentry), 124 (timeout), 1
done
kill "$hole_pid" 2>/dev/null || true

printf '%-22s %6s %9s %9s %9s %10s %8s\n' waiter exit wall_s user_ms sys_ms cpu_pct target
for f in pgentry_closed pgentry_blackhole psql_loop_closed wait_for_it_closed; do
    read -r start end code ut st _ <"$cpu/$f"
    "$BENCH_PY" - "$f" "$start" "$end" "$code" "$ut" "$st" <<'PY'
import sys
name, start, end, code, ut, st = sys.argv[1], *map(int, sys.argv[2:])
wall = (end - start) / 1e9
pct = (ut + st) / 1e6 / wall * 100
target = "< 1%" if name.startswith("pgentry") else ""
print("%-22s %6d %9.2f %9.1f %9.1f %10.3f %8s" % (name, code, wall, ut / 1e3, st / 1e3, pct, target))
met = (" target_met=%s" % ("yes" if pct < 1 else "no")) if target else ""
print("RESULT name=cpu_down.%s cpu_pct=%.3f user_ms=%.1f sys_ms=%.1f wall_s=%.2f exit=%d%s"
      % (name, pct, ut / 1e3, st / 1e3, wall, code, met))
PY
done
for f in pgentry_closed pgentry_blackhole; do
    code=$(awk '{print $3}' "$cpu/$f")
    [ "$code" = 69 ] || { echo "bench: $f exited $code, expected 69 (not ready)" >&2; exit 1; }
done

bench_table "wait_latency: results (ms; ratio = psql loop median / pgentry median)"
