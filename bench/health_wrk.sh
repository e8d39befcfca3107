#!/usr/bin/env bash
# Benchmark the health endpoint with wrk: /readyz with and without keep-alive, idle CPU, RSS.
# Usage: bench/health_wrk.sh [seconds]   (env: BUILD=build-bench, PORT=18081, CONNS=50)
# The server is pinned to CPU 0 and wrk to CPU 1, so each has one core of a 2-core machine.
set -euo pipefail

cd "$(dirname "$0")/.."
secs=${1:-10}
build=${BUILD:-build-bench}
port=${PORT:-18081}
conns=${CONNS:-50}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPGENTRY_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target pge_health_server >/dev/null

pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin=(taskset -c); fi
on_cpu() { local cpu=$1; shift; if [ ${#pin[@]} -gt 0 ]; then "${pin[@]}" "$cpu" "$@"; else "$@"; fi; }

# taskset execs the server, so $! is the server itself.
if [ ${#pin[@]} -gt 0 ]; then
    taskset -c 0 "$build/bench/pge_health_server" "127.0.0.1:$port" ready 2>/dev/null &
else
    "$build/bench/pge_health_server" "127.0.0.1:$port" ready 2>/dev/null &
fi
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
up=0
for _ in $(seq 50); do
    if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
done
[ "$up" = 1 ] || { echo "the health server did not come up on port $port" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

run() {
    local name=$1; shift
    local out
    out=$(on_cpu 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "http://127.0.0.1:$port/readyz")
    local rps p99 errors
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr '\n' ' ' || true)
    printf '%-14s %10s req/s   p99 %8s   %s\n' "$name" "$rps" "$p99" "$errors"
}

echo "health endpoint: wrk -t1 -c$conns -d${secs}s /readyz (server on CPU 0, wrk on CPU 1)"
run keep-alive
run close -H "Connection: close"

ticks0=$(cpu_ticks)
sleep 5
ticks1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
echo "idle CPU over 5 s: $(( (ticks1 - ticks0) * 1000 / hz )) ms"
echo "server RSS after the runs: $(rss_kb) kB"
