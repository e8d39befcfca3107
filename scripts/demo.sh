#!/usr/bin/env bash
# The whole job against a throwaway PostgreSQL: pgentry starts before the database exists,
# waits for it, applies the migrations, runs the example application, answers health checks,
# and stops cleanly on SIGTERM. Installs what is missing (Debian 12, root or sudo) and builds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/lib/pg.sh

scripts/install-deps.sh build demo
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
pgentry=$root/build/pgentry

work=$(mktemp -d /tmp/pgentry-demo-XXXXXX)
chmod 755 "$work"
pgdir=$work/pg
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    pg_stop "$pgdir"
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port=$(pg_free_port)
health_port=$(pg_free_port)
app_port=$(pg_free_port)
pg_init "$pgdir" "$port" "demo-Secret-pw"
export DATABASE_URL
DATABASE_URL=$(pg_url "$pgdir" postgres)

# The example service (docker/example-app) with Debian's FastAPI and uvicorn: the interpreter
# apt installed them for, not whatever python3 comes first on PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if "$py" -c 'import fastapi, uvicorn, psycopg2' 2>/dev/null; then
    app=("$py" -m uvicorn --app-dir docker/example-app app:app --host 127.0.0.1 --port "$app_port")
    app_url=http://127.0.0.1:$app_port
else
    echo "python3-fastapi, python3-uvicorn or python3-psycopg2 missing for $py: using a stand-in app"
    app=("$py" -m http.server --bind 127.0.0.1 "$app_port")
    app_url=
fi

step "1. pgentry starts before PostgreSQL exists: it waits (password printed as ***)"
"$pgentry" --migrations migrations --health-addr "127.0.0.1:$health_port" \
    --wait-timeout 60s --stop-timeout 5s -- "${app[@]}" >"$work/app.out" 2>"$work/pgentry.log" &
pid=$!
sleep 1
cat "$work/pgentry.log"

step "2. PostgreSQL starts; pgentry notices within milliseconds, migrates, starts the app"
pg_start "$pgdir"
for _ in $(seq 200); do
    grep -q "command started" "$work/pgentry.log" && break
    sleep 0.05
done
sleep 0.5
cat "$work/pgentry.log"

step "3. the health endpoint (what Docker, compose and Kubernetes probes read)"
if curl -fsS -o /dev/null "http://127.0.0.1:$health_port/livez" 2>/dev/null; then
    for _ in $(seq 50); do
        curl -fsS -o /dev/null "http://127.0.0.1:$health_port/readyz" 2>/dev/null && break
        sleep 0.1
    done
    echo "GET /readyz?verbose"
    curl -sS "http://127.0.0.1:$health_port/readyz?verbose" || true
    echo
    echo "GET /status"
    curl -sS "http://127.0.0.1:$health_port/status" | python3 -m json.tool
    echo "pgentry healthcheck →"
    "$pgentry" healthcheck "http://127.0.0.1:$health_port/healthz" && echo "exit 0 (healthy)"
else
    echo "(health endpoint not available in this build)"
fi

if [ -n "$app_url" ]; then
    step "4. the application works on the migrated schema"
    for _ in $(seq 100); do curl -fsS -o /dev/null "$app_url/health" 2>/dev/null && break; sleep 0.1; done
    curl -sS -X POST "$app_url/meetings" -H 'content-type: application/json' \
        -d '{"user_id": "u1", "title": "Kickoff"}'
    echo
    curl -sS "$app_url/meetings"
    echo
fi

step "5. the migration history, with the same verbs as Alembic"
"$pgentry" --migrations migrations current 2>/dev/null
"$pgentry" --migrations migrations history 2>/dev/null

step "6. SIGTERM: forwarded to the app, which stops; pgentry exits with its code"
kill -TERM "$pid"
set +e
wait "$pid"
code=$?
set -e
pid=
tail -n 3 "$work/pgentry.log"
echo "pgentry exit code: $code"

step "7. a wrong password is refused at once (77), and the password never appears"
set +e
DATABASE_URL="postgres://postgres:Wrong-Password-123@127.0.0.1:$port/postgres" \
    "$pgentry" wait 2>&1 | tail -n 1
echo "exit code: ${PIPESTATUS[0]}"
set -e
echo
echo "demo finished"
