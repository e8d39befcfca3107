#!/usr/bin/env bash
# Where pgentry's milliseconds go, for the targets wait_latency.sh and migrate.sh (b) miss.
#
# Usage: bench/breakdown.sh          (env: RUNS=20 wait runs, ROUNDS=30 start-up rounds)
#
# Part 1, wait (pgentry alone, server log_connections=on, pgentry --log-level debug, json):
#   per run, on one wall-clock axis (ms; server stamps %n, pgentry's ts, exit via benchtool):
#   backoff   server ready -> the server receives pgentry's successful connection
#   auth      connection received -> connection authorized (backend start, SCRAM round trips,
#             the client's PBKDF2 included)
#   query     connection authorized -> pgentry logs "database is ready" (the readiness query)
#   exit      that log line -> the process has exited (teardown)
#   plus how many attempts the server turned away as "starting up" (57P03) in that run and
#   how long the server listened before it was ready.
# Part 2, start-up with the server up (ROUNDS rounds, variants interleaved in random order so
#   that load drift hits all alike; medians):
#   exec_floor         benchtool run -> benchtool stamp (fork + exec of a static binary)
#   version            pgentry --version, start -> exit (exec + loading ~35 shared libraries)
#   wait.trust/.scram  pgentry wait, start -> exit, trust vs scram-sha-256 (same server)
#   wait.scram_nossl   the same with ?sslmode=disable&gssencmode=disable
#   head.trust/.scram  case (b) of migrate.sh: database at head, start -> COMMAND running
#   head.scram_exec    the same with --exec
#   head.scram_nossl   the same with ?sslmode=disable&gssencmode=disable
# Part 3, the statements the server sees at head (log_statement on the head database), one
#   round trip each.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-30}

bench_begin psql runuser shuf

data=$T/data
bench_pg_new "$data"
# A second role that logs in without a password, to price SCRAM against the same server.
sed -i '1i host all trustee 127.0.0.1/32 trust' "$data/pg_hba.conf"
echo "log_connections = on" >>"$data/postgresql.conf"
logs=$T/logs
mkdir -p "$logs"
[ "$(id -u)" = 0 ] && chown postgres "$logs"
bench_pg_start_wait "$data" "$logs/warmup.log"
psql -X -q -d "$PG_URL" -c "create role trustee superuser login" -c "create database head"
bench_pg_stop "$data"
samples=$T/samples
mkdir -p "$samples"

bench_section "wait: $RUNS runs, ms on the wall clock relative to 'ready to accept connections'"
printf '%4s %8s %8s %8s %8s %8s %6s %9s\n' run backoff auth query exit total 57P03 listen_ms
for ((i = 1; i <= RUNS; i++)); do
    run=$T/w$i
    bench_bg "$BT" run "$run.run" -- "$PGENTRY" wait --database-url "$PG_URL" --health-addr off \
        --wait-timeout 60s --log-level debug --log-format json 2>"$run.log"
    pid=$BG_PID
    d=$((500 + RANDOM % 1000))
    sleep "$((d / 1000)).$(printf %03d $((d % 1000)))"
    "$BT" clock >"$run.clock"
    bench_pg_start "$data" "$logs/w$i.log"
    wait "$pid" || { echo "bench: pgentry wait failed in run $i" >&2; cat "$run.log" >&2; exit 1; }
    bench_pg_stop "$data"
    "$BENCH_PY" - "$run" "$logs/w$i.log" "$samples" <<'PY'
import datetime, json, os, sys
run, log, samples = sys.argv[1:]
real, mono = map(int, open(run + ".clock").read().split())
off_ms = (real - mono) / 1e6
exit_ms = int(open(run + ".run").read().split()[1]) / 1e6 + off_ms
ready = listen = recv = auth = None
rejected = 0
for line in open(log):
    t = float(line.split()[0]) * 1000 + 0.5
    if "listening on IPv4" in line:
        listen = t
    elif "ready to accept connections" in line:
        ready = t
    elif "connection received" in line:
        recv = t
    elif "connection authorized" in line:
        auth = t
    elif "the database system is starting up" in line:
        rejected += 1
pg_ready = None
for line in open(run + ".log"):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("msg") == "database is ready":
        pg_ready = datetime.datetime.fromisoformat(j["ts"].replace("Z", "+00:00")).timestamp() * 1000 + 0.5
if None in (ready, recv, auth, pg_ready, listen):
    sys.exit("bench: missing a log line in " + run)
parts = {"backoff": recv - ready, "auth": auth - recv, "query": pg_ready - auth,
         "exit": exit_ms - pg_ready, "total": exit_ms - ready, "listen": ready - listen}
for k, v in parts.items():
    with open(os.path.join(samples, "wait." + k), "a") as f:
        f.write("%.3f\n" % v)
with open(os.path.join(samples, "wait.rejected"), "a") as f:
    f.write("%d\n" % rejected)
print("%4s %8.1f %8.1f %8.1f %8.1f %8.1f %6d %9.1f" % (os.path.basename(run)[1:], parts["backoff"],
      parts["auth"], parts["query"], parts["exit"], parts["total"], rejected, parts["listen"]))
PY
done

bench_section "start-up with the server up: $ROUNDS rounds, interleaved"
bench_pg_start_wait "$data" "$logs/startup.log"
mig=$T/migrations
mkdir -p "$mig"
cp "$BENCH_ROOT"/migrations/*.sql "$mig/"
scram=${PG_URL%/postgres}/head
trust="postgres://trustee@127.0.0.1:$PG_PORT/head"
nossl="?sslmode=disable&gssencmode=disable"
"$PGENTRY" --database-url "$scram" --migrations "$mig" --health-addr off --log-level warn

# variant NAME: run it once; append ms (to COMMAND running, or to exit) to $samples/NAME
variant() {
    local name=$1 tag=$T/v.$1.$RANDOM$RANDOM
    local -a head=("$PGENTRY" --migrations "$mig" --health-addr off --log-level warn)
    local stamp=1
    case "$name" in
    exec_floor) cmd=("$BT" stamp "$tag.stamp") ;;
    version) cmd=("$PGENTRY" --version) stamp=0 ;;
    wait.trust) cmd=("$PGENTRY" wait --health-addr off --database-url "$trust") stamp=0 ;;
    wait.scram) cmd=("$PGENTRY" wait --health-addr off --database-url "$scram") stamp=0 ;;
    wait.scram_nossl) cmd=("$PGENTRY" wait --health-addr off --database-url "$scram$nossl") stamp=0 ;;
    head.trust) cmd=("${head[@]}" --database-url "$trust" -- "$BT" stamp "$tag.stamp") ;;
    head.scram) cmd=("${head[@]}" --database-url "$scram" -- "$BT" stamp "$tag.stamp") ;;
    head.scram_exec) cmd=("${head[@]}" --exec --database-url "$scram" -- "$BT" stamp "$tag.stamp") ;;
    head.scram_nossl) cmd=("${head[@]}" --database-url "$scram$nossl" -- "$BT" stamp "$tag.stamp") ;;
    esac
    "$BT" run "$tag.run" -- "${cmd[@]}" >/dev/null 2>"$tag.err" ||
        { echo "bench: variant $name failed" >&2; cat "$tag.err" >&2; exit 1; }
    if [ "$stamp" = 1 ]; then
        awk -v s="$(head -n1 "$tag.stamp")" '{ printf "%.3f\n", (s - $1) / 1e6 }' "$tag.run"
    else
        awk '{ printf "%.3f\n", ($2 - $1) / 1e6 }' "$tag.run"
    fi >>"$samples/$name"
    awk '{ printf "%.3f\n", ($4 + $5) / 1e3 }' "$tag.run" >>"$samples/$name.cpu"
}
variants=(exec_floor version wait.trust wait.scram wait.scram_nossl head.trust head.scram
    head.scram_exec head.scram_nossl)
for v in "${variants[@]}"; do variant "$v"; done # warm-up
rm -f "$samples"/exec_floor* "$samples"/version* "$samples"/wait.trust* "$samples"/wait.scram* \
    "$samples"/head.*
for ((r = 1; r <= ROUNDS; r++)); do
    for v in $(printf '%s\n' "${variants[@]}" | shuf); do variant "$v"; done
done

bench_section "statements at head: what the server is asked between authentication and COMMAND"
# log_statement for the head database only: nothing else runs there. Each statement is one
# round trip (pgentry sends one at a time); the SSL request and the authentication exchange
# come before them.
psql -X -q -d "$PG_URL" -c "alter database head set log_statement = 'all'"
log_lines=$(wc -l <"$logs/startup.log")
"$PGENTRY" --migrations "$mig" --health-addr off --log-level warn --database-url "$scram" -- true
sed -n "$((log_lines + 1)),\$p" "$logs/startup.log" | grep -E 'LOG:  (statement|execute)' |
    sed -E 's/^[0-9.]+ \[[0-9]+\] LOG:  /  /' | tee "$T/statements"
echo "statements at head: $(wc -l <"$T/statements")"
psql -X -q -d "$PG_URL" -c "alter database head reset log_statement"

bench_section "summary"
for k in backoff auth query exit total listen; do bench_summary "wait.$k" "$samples/wait.$k"; done
bench_summary wait.rejected_57P03 "$samples/wait.rejected" --unit attempts
for v in "${variants[@]}"; do
    bench_summary "startup.$v" "$samples/$v"
    bench_summary "startup.$v.cpu" "$samples/$v.cpu"
done
bench_table "breakdown (ms; .cpu = user+sys of the process and its children)"
