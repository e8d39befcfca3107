#!/usr/bin/env bash
# Supervisor benchmark: pgentry side by side with tini, dumb-init and catatonit (Debian's).
#
# Measures, for each init, in one run:
#   forwarding  latency of USR1 sent to the init until its child has it (median, p99, max over
#               SIGNALS signals, one at a time; init not PID 1)
#   reap        time for the init, as PID 1 of a fresh PID namespace, to reap ORPHANS orphans
#               released together (needs root; skipped otherwise)
#   idle RSS    VmRSS, its anonymous part and PSS (shared library pages divided among their
#               users) of the supervisor with `sleep` as its child
#   wake-ups    over IDLE_SECONDS of idling: syscalls entered (perf, raw_syscalls:sys_enter,
#               when perf can trace) and context switches (/proc/PID/task/*/status, always),
#               scaled to a minute
#   size        size of the binary on disk (pgentry: stripped Release build)
# The idle columns also have a row "pgentry+db": the run that matters in production, after
# waiting for a throwaway PostgreSQL (SCRAM), migrating it and closing the connection, with the
# health endpoint on.
# Usage: bench/supervise.sh   (env: SIGNALS=1000 ORPHANS=1000 IDLE_SECONDS=60 BENCH_DIR=build-bench)
set -euo pipefail

cd "$(dirname "$0")/.."
SIGNALS=${SIGNALS:-1000}
ORPHANS=${ORPHANS:-1000}
IDLE_SECONDS=${IDLE_SECONDS:-60}
DIR=${BENCH_DIR:-build-bench}

echo "building pgentry (Release) and the bench helper in $DIR ..." >&2
cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=Release -DPGENTRY_TESTS=OFF >/dev/null
cmake --build "$DIR" -j2 >/dev/null
strip -o "$DIR/pgentry.stripped" "$DIR/pgentry"
cc -O2 -Wall -Wextra -o "$DIR/supervise_bench" bench/supervise_bench.c
HELPER=$(realpath "$DIR/supervise_bench")
PGENTRY=$(realpath "$DIR/pgentry")

NAMES=(pgentry tini dumb-init catatonit)
declare -A PREFIX=(
  [pgentry]="$PGENTRY --health-addr off --no-migrate --log-level warn --"
  [tini]="tini -s --"
  [dumb-init]="dumb-init"
  [catatonit]="catatonit --"
)
declare -A BINARY=(
  [pgentry]="$DIR/pgentry.stripped"
  [tini]=$(command -v tini)
  [dumb-init]=$(command -v dumb-init)
  [catatonit]=$(command -v catatonit)
)
declare -A LAT REAP RSS ANON PSS SYSC CSW SIZE

tmp=$(mktemp -d)
chmod 755 "$tmp"
. scripts/lib/pg.sh
trap 'pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT

# ---- forwarding latency ----------------------------------------------------------------------
for n in "${NAMES[@]}"; do
  read -r -a pre <<<"${PREFIX[$n]}"
  LAT[$n]=$("$HELPER" latency "$SIGNALS" "$tmp/fifo" -- "${pre[@]}" "$HELPER" recv "$tmp/fifo")
done

# ---- reaping orphans as PID 1 ----------------------------------------------------------------
for n in "${NAMES[@]}"; do
  if [ "$(id -u)" != 0 ]; then
    REAP[$n]="skipped (needs root)"
    continue
  fi
  read -r -a pre <<<"${PREFIX[$n]}"
  REAP[$n]=$(unshare --pid --fork --mount-proc --kill-child "${pre[@]}" "$HELPER" orphans "$ORPHANS" 2>/dev/null |
    sed -n 's/^reap_ms=//p')
  REAP[$n]="${REAP[$n]:-failed} ms"
done

# ---- idle: RSS and wake-ups, all four side by side over the same window -----------------------
ctx_switches() { # pid -> voluntary + involuntary switches of all its threads
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {s += $2} END {print s + 0}'
}
declare -A PID CTX0
for n in "${NAMES[@]}"; do
  read -r -a pre <<<"${PREFIX[$n]}"
  "${pre[@]}" sleep 100000 >/dev/null 2>&1 &
  PID[$n]=$!
done
pg_init "$tmp/pg" "$(pg_free_port)" bench-pw
pg_start "$tmp/pg"
# The port is chosen out here: a command substitution inside a backgrounded command runs in a
# subshell that inherits the EXIT trap, which then stopped the server and removed $tmp, so this
# row measured a pgentry still retrying against a stopped server.
health_port=$(pg_free_port)
DATABASE_URL=$(pg_url "$tmp/pg") "$PGENTRY" --migrations migrations --log-level warn \
  --health-addr "127.0.0.1:$health_port" -- sleep 100000 >/dev/null 2>&1 &
PID[pgentry+db]=$!
BINARY[pgentry+db]="$DIR/pgentry.stripped"
LAT[pgentry+db]="-"
REAP[pgentry+db]="-"
NAMES=(pgentry pgentry+db tini dumb-init catatonit)
sleep 2
perf_ok=0
if perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then perf_ok=1; fi
for n in "${NAMES[@]}"; do
  p=${PID[$n]}
  RSS[$n]=$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status)
  ANON[$n]=$(awk '/^RssAnon/ {print $2}' /proc/"$p"/status)
  PSS[$n]=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup)
  CTX0[$n]=$(ctx_switches "$p")
  if [ $perf_ok = 1 ]; then
    perf stat -x, -e raw_syscalls:sys_enter -p "$p" -o "$tmp/perf.$n" -- sleep "$IDLE_SECONDS" &
  fi
done
echo "idling for ${IDLE_SECONDS}s ..." >&2
sleep "$IDLE_SECONDS"
wait_perf() { while pgrep -f "perf stat -x, -e raw_syscalls" >/dev/null; do sleep 0.2; done; }
[ $perf_ok = 1 ] && wait_perf
for n in "${NAMES[@]}"; do
  p=${PID[$n]}
  CSW[$n]=$(($(ctx_switches "$p") - CTX0[$n]))
  CSW[$n]=$(awk -v c="${CSW[$n]}" -v s="$IDLE_SECONDS" 'BEGIN {printf "%.1f", c * 60 / s}')
  if [ $perf_ok = 1 ]; then
    # "<not counted>": the task never ran while perf watched, so it entered no syscall.
    c=$(awk -F, '/raw_syscalls:sys_enter/ {print ($1 ~ /^[0-9]+$/) ? $1 : 0}' "$tmp/perf.$n")
    SYSC[$n]=$(awk -v c="${c:-0}" -v s="$IDLE_SECONDS" 'BEGIN {printf "%.1f", c * 60 / s}')
  else
    SYSC[$n]="n/a"
  fi
  kill -TERM "$p" 2>/dev/null || true
done
wait 2>/dev/null || true

for n in "${NAMES[@]}"; do SIZE[$n]=$(stat -c %s "${BINARY[$n]}"); done

# ---- report ------------------------------------------------------------------------------------
printf '\n%-10s  %-44s  %-12s  %-22s  %-22s  %s\n' init "forwarding latency ($SIGNALS x USR1)" \
  "reap $ORPHANS" "idle KiB RSS/anon/PSS" "idle wake-ups/min" "size bytes"
printf '%-10s  %-44s  %-12s  %-22s  %-22s  %s\n' "" "" "" "" "syscalls / ctx-sw" ""
for n in "${NAMES[@]}"; do
  printf '%-10s  %-44s  %-12s  %-22s  %-22s  %s\n' "$n" "${LAT[$n]}" "${REAP[$n]}" \
    "${RSS[$n]}/${ANON[$n]}/${PSS[$n]}" "${SYSC[$n]} / ${CSW[$n]}" "${SIZE[$n]}"
done
echo
echo "targets for pgentry: p99 forwarding <= 1000 us, idle RSS <= 3072 KiB, <= 1 idle wake-up/min"
