#!/usr/bin/env bash
# End-to-end tests in a real container runtime: build the images with podman (no registry
# needed), then run pgentry as a container ENTRYPOINT, in a pod next to PostgreSQL, as
# Kubernetes init container and replicas (podman kube play), and in the compose stack
# (podman-compose). Exits non-zero if any scenario fails; ends with "N passed, N failed".
#
# Usage: tests/e2e/run.sh [SCENARIO...]     (default: all; names below in SCENARIOS)
# Environment: PGENTRY_E2E_CACHE, PGENTRY_E2E_MIRROR (see images.sh); PGENTRY_E2E_KEEP=1 keeps
# the containers of the run for inspection. Runs as root (CI does); installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

SCENARIOS=(docs image base-image pod stop late-db bad-password alembic kube-init kube-replicas compose
    static-scratch static-debian deb)

if [ "$(id -u)" != 0 ]; then
    echo "e2e: must run as root (podman here needs it)" >&2
    exit 1
fi
scripts/install-deps.sh e2e
export CONTAINERS_CONF=$root/tests/e2e/containers.conf

run=pge2e-$$                      # prefix of every name this run creates
logdir=${PGENTRY_E2E_CACHE:-$root/build-e2e}/logs-$run
mkdir -p "$logdir"
password=pw-$RANDOM$RANDOM        # PostgreSQL password of the run; must never be logged
app_image=localhost/pgentry-example:latest
alembic_image=localhost/pgentry-example-alembic:latest
base_image=localhost/pgentry:latest
pg_image=localhost/pgentry-e2e-postgres:15
redis_image=localhost/pgentry-e2e-redis:7
static_image=localhost/pgentry-static:latest
debian_image=docker.io/library/debian:bookworm-slim   # the debootstrap base (images.sh)
static_busybox_image=localhost/pgentry-e2e-static-busybox:latest
static_debian_image=localhost/pgentry-e2e-static-debian:latest
kube_init=compose/kubernetes.yaml
kube_every=compose/kubernetes-every-replica-migrates.yaml
secret=pgentry-example-db         # the name the Kubernetes manifests refer to

# ---------------------------------------------------------------------------------------------
# Helpers. Inside a scenario `fail` ends that scenario only (each runs in a subshell).

ok() { printf '    ok   %s\n' "$*"; }
fail() {
    printf '    FAIL %s\n' "$*" >&2 # stderr: also seen from inside $(...)
    exit 1
}
note() { printf '    ..   %s\n' "$*"; }

# podman without the noise this sandbox adds (no systemd for healthcheck timers).
pm() {
    local err rc=0
    err=$(mktemp)
    podman "$@" 2>"$err" || rc=$?
    grep -v -e 'unable to get systemd connection' -e 'from database: no container with ID' \
        -e 'failed to connect to syslog' "$err" >&2 || true
    rm -f "$err"
    return $rc
}

# wait_for SECONDS WHAT CMD...: poll CMD every 0.25 s until it succeeds, or fail.
wait_for() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            fail "$what: not within ${limit}s"
        fi
        sleep 0.25
    done
}

logs() { podman logs "$1" 2>&1; }

# Save containers' logs in the run's log directory (kept when a scenario fails).
keep_logs() {
    local c
    for c in "$@"; do
        podman logs "$c" >"$logdir/$c.log" 2>&1 || true
    done
}

# http CONTAINER METHOD URL [JSON]: an HTTP request from inside CONTAINER (any image with
# python3); prints the status code on the first line, then the body. Code 0: no answer.
http() {
    pm exec -i "$1" python3 - "$2" "$3" "${4:-}" <<'PY'
import sys, urllib.error, urllib.request
method, url, body = sys.argv[1:4]
req = urllib.request.Request(url, method=method, data=body.encode() or None,
                             headers={"Content-Type": "application/json"} if body else {})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        code, data = r.status, r.read()
except urllib.error.HTTPError as e:
    code, data = e.code, e.read()
except Exception as e:
    code, data = 0, repr(e).encode()
print(code)
sys.stdout.write(data.decode(errors="replace"))
PY
}
http_code() { http "$@" | head -n1; }
http_ok() { [ "$(http_code "$@")" = 200 ]; }

# expect_http CONTAINER METHOD URL CODE [JSON]: print the body; fail on another code.
expect_http() {
    local out code
    out=$(http "$1" "$2" "$3" "${5:-}")
    code=${out%%$'\n'*}
    [ "$code" = "$4" ] || fail "$2 $3 answered $code, expected $4: ${out#*$'\n'}"
    printf '%s' "${out#*$'\n'}"
}

# json FIELD.PATH < JSON: print one field (dotted path, list indexes allowed).
json() {
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1"
}

# sql PGCONTAINER DB QUERY: one query through psql in the PostgreSQL container.
sql() { pm exec "$1" psql -U app -d "$2" -XAtq -v ON_ERROR_STOP=1 -c "$3"; }

# start_pg NAME [podman run options...]: the PostgreSQL stand-in with user/db app.
start_pg() {
    local name=$1
    shift
    pm run -d --name "$name" --label "pgentry-e2e=$run" "$@" \
        -e POSTGRES_USER=app -e POSTGRES_PASSWORD="$password" -e POSTGRES_DB=app \
        "$pg_image" >/dev/null
}
# new_pod NAME: a pod without any network: its containers share only localhost.
new_pod() { pm pod create --name "$1" --network none --label "pgentry-e2e=$run" >/dev/null; }

# start_app POD NAME IMAGE: the backend in POD, PostgreSQL on the pod's localhost.
start_app() {
    pm run -d --pod "$1" --name "$2" --label "pgentry-e2e=$run" \
        -e DATABASE_URL="postgres://app:$password@127.0.0.1:5432/app" "$3" >/dev/null
}

# pod_with_app POD IMAGE: PostgreSQL (POD-pg) and the backend (POD-app) started together in a
# new pod; returns once uvicorn answers /health, with the backend's log saved.
pod_with_app() {
    new_pod "$1"
    start_pg "$1-pg" --pod "$1"
    start_app "$1" "$1-app" "$2"
    wait_for 90 "uvicorn answers /health" http_ok "$1-app" GET http://127.0.0.1:8000/health
    keep_logs "$1-app"
}

pg_ready() { podman exec "$1" pg_isready -q -h 127.0.0.1 -U app -d app; }

running() { [ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
exit_code() { podman inspect -f '{{.State.ExitCode}}' "$1"; }

# processes CONTAINER: "pid ppid state comm" for every process in the container.
processes() {
    pm exec -i "$1" python3 - <<'PY'
import os
for p in sorted(os.listdir("/proc"), key=lambda s: (len(s), s)):
    if p.isdigit():
        try:
            st = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        print(p, rest[1], rest[0], st[st.index("(") + 1:st.rindex(")")])
PY
}

# no_password_in LOGFILE: the database password never appears (pgentry prints it as ***).
no_password_in() {
    if grep -q -- "$password" "$1"; then
        fail "the database password appears in $1"
    fi
    ok "the password is not in the log (redacted as ***)"
}

# kube_pg NAME NETWORK: PostgreSQL for the Kubernetes scenarios, and the Secret the manifests
# read (DATABASE_URL). The URL holds the server's address, not a name: aardvark-dns 1.4
# (podman's DNS here) sometimes leaves a new container without name resolution for up to a
# minute, which is the sandbox's problem, not what these scenarios test.
kube_pg() {
    start_pg "$1" --network "$2"
    wait_for 30 "PostgreSQL ready" pg_ready "$1"
    local ip
    ip=$(podman inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1")
    make_kube_secret "postgres://app:$password@$ip:5432/app"
}

# A podman secret in the form podman kube play reads for secretKeyRef (JSON, base64 values).
make_kube_secret() {
    pm secret rm "$secret" >/dev/null 2>&1 || true
    printf '{"url":"%s"}' "$(printf '%s' "$1" | base64 -w0)" | pm secret create "$secret" - >/dev/null
}

# podman 4.3 applies the pod's restartPolicy to init containers too, so under a Deployment's
# Always an init container that exited 0 is restarted and the pod never starts. The manifests
# are played unchanged except for restartPolicy: OnFailure on the pod template.
kube_play() {
    sed 's/^    spec:$/    spec:\n      restartPolicy: OnFailure/' "$1" |
        timeout 180 podman kube play --replace --network "$2" - >"$logdir/kube-play-$(basename "$1").log" 2>&1 ||
        {
            grep -v systemd "$logdir/kube-play-$(basename "$1").log" >&2
            fail "podman kube play $1 failed"
        }
}
kube_down() { timeout 120 podman kube play --down "$1" >/dev/null 2>&1 || true; }

# Remove everything this run created; never stops half-way (errors are ignored here).
cleanup() {
    local rc=$? p c v n
    trap - EXIT INT TERM
    set +e
    if [ "${PGENTRY_E2E_KEEP:-0}" = 1 ]; then
        echo "e2e: PGENTRY_E2E_KEEP=1: leaving the containers of run $run in place" >&2
        exit $rc
    fi
    kube_down "$kube_init"
    kube_down "$kube_every"
    for p in $(podman pod ls -q --filter "label=pgentry-e2e=$run" 2>/dev/null); do
        podman pod rm -f -t 0 "$p" >/dev/null 2>&1
    done
    for c in $(podman ps -a -q --filter "label=pgentry-e2e=$run" 2>/dev/null) \
        $(podman ps -a -q --filter "label=io.podman.compose.project=$run-compose" 2>/dev/null); do
        podman rm -f -t 0 "$c" >/dev/null 2>&1
    done
    for v in $(podman volume ls -q 2>/dev/null | grep "^$run"); do
        podman volume rm -f "$v" >/dev/null 2>&1
    done
    for n in $(podman network ls -q 2>/dev/null | grep "^$run"); do
        podman network rm -f "$n" >/dev/null 2>&1
    done
    podman secret rm "$secret" >/dev/null 2>&1
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Scenarios

# README.md and docs/*.md show the tested files: each block opening with "# from PATH" must be
# a contiguous excerpt of PATH (relative to the repository root). Every page is checked, so a
# snippet stays honest wherever it moves; the README must keep one of each of the three kinds.
scenario_docs() {
    local out
    out=$(python3 - README.md docs/*.md <<'PY'
import os, re, sys
blocks, bad, readme = 0, [], set()
for page in sys.argv[1:]:
    text = open(page).read()
    for path, body in re.findall(r"^```[a-z]*\n# from (\S+)\n(.*?)^```", text, re.M | re.S):
        blocks += 1
        if page == "README.md":
            readme.add(path)
        if not os.path.isfile(path) or body not in open(path).read():
            bad.append(f"{page}:{path}")
need = {"docker/Dockerfile", "compose/docker-compose.yml", "compose/kubernetes.yaml"}
bad += [f"README.md:no-snippet-of:{p}" for p in sorted(need - readme)]
print(blocks, " ".join(bad))
PY
    )
    [ "${out#* }" = "" ] || fail "snippets not found verbatim: ${out#* }"
    [ "${out%% *}" -ge 8 ] || fail "only ${out%% *} snippets checked"
    ok "${out%% *} snippets in README.md and docs/*.md are verbatim excerpts of the tested files"
}

# The images: the contract of docker/Dockerfile.
scenario_image() {
    local cfg hc out
    cfg=$(podman image inspect "$base_image" --format '{{json .Config}}')
    hc=$(podman image inspect "$base_image" --format '{{json .HealthCheck}}')
    [ "$(json Entrypoint <<<"$cfg")" = '["pgentry", "--"]' ] ||
        fail "ENTRYPOINT is $(json Entrypoint <<<"$cfg")"
    ok 'ENTRYPOINT ["pgentry", "--"]'
    [ "$(json Test <<<"$hc")" = '["CMD", "pgentry", "healthcheck"]' ] || fail "HEALTHCHECK is $hc"
    ok 'HEALTHCHECK CMD ["pgentry", "healthcheck"]'
    [ "$(pm run --rm --entrypoint id "$base_image" -u)" = 10001 ] || fail "the image runs as root"
    ok "runs as uid 10001 (non-root)"
    out=$(pm run --rm --entrypoint pgentry "$base_image" --version)
    [[ "$out" == "pgentry "*+g* ]] || fail "the image does not say which commit it is: $out"
    ok "says which commit it was built from: $out"
    out=$(pm run --rm --entrypoint ls "$app_image" /app/migrations)
    grep -qx 0001_initial_schema.up.sql <<<"$out" || fail "migrations not in the example's /app/migrations: $out"
    ok "the example image has its migrations in /app/migrations (PGENTRY_MIGRATIONS)"
    out=$(pm run --rm --entrypoint sh "$base_image" -c 'command -v cc gcc cmake make || true')
    [ -z "$out" ] || fail "build tools in the runtime image: $out"
    ok "no compiler or build tools in the runtime image"
    out=$(pm run --rm --entrypoint ldd "$base_image" /usr/local/bin/pgentry)
    if grep -q 'not found' <<<"$out"; then fail "unresolved libraries: $out"; fi
    ok "every shared library resolves: $(awk '/=>/ { print $1 }' <<<"$out" |
        grep -E 'libpq|libev|libcurl|libcrypto' | tr '\n' ' ')"
    local rc=0
    out=$(pm run --rm "$app_image" 2>&1) || rc=$?
    [ "$rc" = 78 ] && grep -q 'migration files are present but no database is configured' <<<"$out" ||
        fail "no DATABASE_URL: expected exit 78 and a configuration error, got $rc: $out"
    ok "the example without DATABASE_URL refuses to skip its migrations (exit 78)"
    note "$(podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
        grep -E '^localhost/pgentry(-example)?(-alembic)?:latest' | tr '\n' ';' | sed 's/;$//')"
}

# The generic base image carries no migrations of the example: an image built FROM it has
# exactly its own in /app/migrations, and pgentry finds them there by default.
scenario_base_image() {
    local env out ctx tag=localhost/$run-user-image:latest
    env=$(podman image inspect "$base_image" --format '{{json .Config.Env}}')
    if grep -q PGENTRY_MIGRATIONS <<<"$env"; then fail "the base image sets PGENTRY_MIGRATIONS: $env"; fi
    pm run --rm --entrypoint sh "$base_image" -c 'test ! -e /app/migrations' ||
        fail "the base image has /app/migrations: $(pm run --rm --entrypoint ls "$base_image" -R /app/migrations 2>&1)"
    ok "the base image has no /app/migrations and no PGENTRY_MIGRATIONS"
    ctx=$(mktemp -d "$logdir/user-image.XXXXXX")
    mkdir "$ctx/migrations"
    echo 'CREATE TABLE user_things (id bigint PRIMARY KEY);' >"$ctx/migrations/0001_user_things.up.sql"
    printf 'FROM %s\nCOPY migrations /app/migrations\n' "$base_image" >"$ctx/Containerfile"
    timeout 300 podman build --format docker -q -t "$tag" "$ctx" >"$logdir/user-image.log" 2>&1 ||
        fail "building an image FROM pgentry failed: $(tail -5 "$logdir/user-image.log")"
    out=$(pm run --rm --entrypoint ls "$tag" /app/migrations)
    [ "$out" = 0001_user_things.up.sql ] || fail "FROM pgentry + COPY migrations: /app/migrations holds $out"
    ok "FROM pgentry + COPY migrations /app/migrations: only the user's file is there"
    local rc=0
    out=$(pm run --rm "$tag" 2>&1) || rc=$?
    [ "$rc" = 78 ] && grep -q 'migration files are present' <<<"$out" ||
        fail "expected exit 78 for migrations without a database, got $rc: $out"
    ok "pgentry finds them at the default ./migrations (WORKDIR /app): no database is exit 78"
    pm rmi -f "$tag" >/dev/null 2>&1 || true
}

# A pod with PostgreSQL and the backend: migrations applied, uvicorn serving, health endpoint.
scenario_pod() {
    local app=$run-pod-app pg=$run-pod-pg
    pod_with_app "$run-pod" "$app_image"
    ok "uvicorn serves the application"
    grep -q 'migration applied.*migration=0001' "$logdir/$app.log" || fail "no 'migration applied' line"
    ok "pgentry applied migration 0001 (log)"
    [ "$(sql "$pg" app 'SELECT version FROM pgentry_migrations')" = 1 ] || fail "history table"
    ok "pgentry_migrations holds version 1"

    local m p t
    m=$(expect_http "$app" POST http://127.0.0.1:8000/meetings 201 \
        '{"user_id":"u1","title":"Kick-off","transcript":"We build pgentry."}')
    p=$(expect_http "$app" POST "http://127.0.0.1:8000/meetings/$(json id <<<"$m")/prd" 201 \
        '{"title":"pgentry PRD","content":{"goals":["wait","migrate","supervise"]}}')
    t=$(expect_http "$app" POST "http://127.0.0.1:8000/prds/$(json id <<<"$p")/tasks" 201 \
        '{"title":"Write the Dockerfile","priority":"high","estimated_hours":2.5}')
    expect_http "$app" POST "http://127.0.0.1:8000/meetings/$(json id <<<"$m")/prd" 409 \
        '{"title":"again","content":{}}' >/dev/null
    [ "$(json 0.id <<<"$(expect_http "$app" GET "http://127.0.0.1:8000/prds/$(json id <<<"$p")/tasks" 200)")" = "$(json id <<<"$t")" ] ||
        fail "GET tasks does not list the new task"
    [ "$(sql "$pg" app "SELECT m.status || ' ' || t.priority FROM meetings m JOIN prds p ON p.meeting_id = m.id JOIN tasks t ON t.prd_id = p.id")" = "processed high" ] ||
        fail "rows in PostgreSQL do not match what the API wrote"
    ok "POST meeting, PRD, task; GET tasks; 409 on a second PRD; rows in PostgreSQL"

    pm healthcheck run "$app" >/dev/null || fail "podman healthcheck run: unhealthy"
    ok "podman healthcheck run: healthy (HEALTHCHECK pgentry healthcheck)"
    local status
    status=$(expect_http "$app" GET http://127.0.0.1:8081/status 200)
    [ "$(json phase <<<"$status")" = running ] || fail "/status phase: $status"
    [ "$(json app.running <<<"$status")" = true ] || fail "/status app.running: $status"
    ok "/status: phase running, app running (pid $(json app.pid <<<"$status"))"
    expect_http "$app" GET http://127.0.0.1:8081/livez 200 >/dev/null
    expect_http "$app" GET http://127.0.0.1:8081/readyz 200 >/dev/null
    ok "/livez 200, /readyz 200"

    # An orphan in the container is adopted by pgentry (PID 1) and reaped when it exits.
    pm exec "$app" sh -c 'sleep 1.5 >/dev/null 2>&1 & exit 0'
    local ps
    ps=$(processes "$app")
    awk '$4 == "sleep" && $2 == 1 { found = 1 } END { exit !found }' <<<"$ps" ||
        fail "the orphan was not re-parented to PID 1: $ps"
    ok "an orphaned 'sleep' is re-parented to pgentry (PID 1)"
    sleep 2.5
    ps=$(processes "$app")
    if awk '$3 == "Z" { z = 1 } END { exit !z }' <<<"$ps"; then fail "zombie left: $ps"; fi
    if awk '$4 == "sleep" { s = 1 } END { exit !s }' <<<"$ps"; then fail "sleep still there: $ps"; fi
    [ "$(awk '$1 == 1 { print $4 }' <<<"$ps")" = pgentry ] || fail "PID 1 is not pgentry: $ps"
    ok "after it exits: no zombie in the container"
    keep_logs "$app"
    no_password_in "$logdir/$app.log"
}

# podman stop: SIGTERM goes through pgentry to uvicorn, which drains; its code is pgentry's.
scenario_stop() {
    local app=$run-pod-app
    running "$app" || fail "needs the running backend of scenario 'pod'"
    local t=$SECONDS
    pm stop -t 15 "$app" >/dev/null
    local took=$((SECONDS - t))
    keep_logs "$app"
    [ "$(exit_code "$app")" = 0 ] || fail "container exit code $(exit_code "$app"), expected 0"
    [ "$took" -lt 10 ] || fail "stop took ${took}s (was the app killed?)"
    ok "podman stop: container exited 0 after ${took}s (no SIGKILL)"
    grep -q 'Shutting down' "$logdir/$app.log" || fail "uvicorn did not log 'Shutting down'"
    grep -q 'example-app: shutting down cleanly' "$logdir/$app.log" ||
        fail "the app's shutdown handler did not run"
    grep -q 'Finished server process' "$logdir/$app.log" || fail "uvicorn did not finish"
    ok "uvicorn got SIGTERM: 'Shutting down', shutdown handler ran, 'Finished server process'"
    grep -E -q 'command exited .*code=0' "$logdir/$app.log" || fail "pgentry did not report the exit code"
    ok "pgentry reported 'command exited ... code=0'"
}

# The backend starts before PostgreSQL: it waits (health says so), then migrates and serves.
scenario_late_db() {
    local pod=$run-late app=$run-late-app pg=$run-late-pg
    new_pod "$pod"
    start_app "$pod" "$app" "$app_image"
    wait_for 20 "'waiting for dependency' logged" grep_log "$app" 'waiting for dependency'
    sleep 2
    running "$app" || fail "the backend exited while PostgreSQL was down: $(logs "$app" | tail -3)"
    ok "backend keeps waiting while PostgreSQL is down"
    local status
    status=$(expect_http "$app" GET http://127.0.0.1:8081/status 200)
    [ "$(json phase <<<"$status")" = waiting ] || fail "/status phase: $status"
    ok "/status: phase waiting, $(json database.attempts <<<"$status") attempts"
    expect_http "$app" GET http://127.0.0.1:8081/livez 200 >/dev/null
    expect_http "$app" GET http://127.0.0.1:8081/readyz 503 >/dev/null
    ok "/livez 200 and /readyz 503 while waiting"
    if pm healthcheck run "$app" >/dev/null; then fail "podman healthcheck run: healthy while waiting"; fi
    ok "podman healthcheck run: not healthy while waiting"
    local t=$SECONDS
    start_pg "$pg" --pod "$pod"
    wait_for 60 "backend serving after PostgreSQL started" http_ok "$app" GET http://127.0.0.1:8000/health
    ok "PostgreSQL started: backend migrated and serves $((SECONDS - t))s later"
    keep_logs "$app"
    grep 'database is ready' "$logdir/$app.log" | grep -Eq 'attempts=([2-9]|[1-9][0-9]+)' ||
        fail "no 'database is ready ... attempts>1' line"
    grep -q 'migration applied.*migration=0001' "$logdir/$app.log" || fail "no migration applied"
    ok "'database is ready' after several attempts, then 'migration applied'"
}
grep_log() { logs "$1" | grep -q -- "$2"; }

# A wrong password is final: exit 77 at once, with a line saying why.
scenario_bad_password() {
    local pod=$run-badpw app=$run-badpw-app pg=$run-badpw-pg
    new_pod "$pod"
    start_pg "$pg" --pod "$pod"
    wait_for 30 "PostgreSQL ready" pg_ready "$pg"
    local t rc=0
    t=$(date +%s%N)
    timeout 60 podman run --pod "$pod" --name "$app" --label "pgentry-e2e=$run" \
        -e DATABASE_URL="postgres://app:not-$password@127.0.0.1:5432/app" "$app_image" \
        >"$logdir/$app.log" 2>&1 || rc=$?
    local ms=$((($(date +%s%N) - t) / 1000000))
    [ "$rc" = 77 ] || fail "exit code $rc, expected 77: $(tail -3 "$logdir/$app.log")"
    [ "$(exit_code "$app")" = 77 ] || fail "container exit code $(exit_code "$app")"
    [ "$ms" -lt 5000 ] || fail "took ${ms}ms to give up"
    ok "container exited 77 after ${ms}ms (podman run included)"
    grep -E 'refused the connection for good.*sqlstate=28P01.*password authentication failed' \
        "$logdir/$app.log" >/dev/null || fail "no clear log line: $(cat "$logdir/$app.log")"
    ok "log: $(grep -o 'PostgreSQL refused.*' "$logdir/$app.log" | cut -c1-110)..."
    no_password_in "$logdir/$app.log"
    if grep -q 'Started server process' "$logdir/$app.log"; then fail "uvicorn was started"; fi
    ok "uvicorn never started"
}

# The drop-in path: Alembic still migrates (--migrate-cmd), under pgentry's lock.
scenario_alembic() {
    local app=$run-alembic-app pg=$run-alembic-pg
    pod_with_app "$run-alembic" "$alembic_image"
    grep -q 'running migrate command under the migration lock' "$logdir/$app.log" ||
        fail "pgentry did not run the migrate command under its lock"
    grep -q 'Running upgrade  -> 0001' "$logdir/$app.log" || fail "Alembic did not run revision 0001"
    grep -q 'migrate command succeeded' "$logdir/$app.log" || fail "no 'migrate command succeeded'"
    ok "pgentry ran 'alembic upgrade head' under the migration lock; Alembic applied 0001"
    [ "$(sql "$pg" app 'SELECT version_num FROM alembic_version')" = 0001 ] || fail "alembic_version"
    [ "$(sql "$pg" app "SELECT to_regclass('tasks') IS NOT NULL")" = t ] || fail "no tasks table"
    ok "alembic_version is 0001 and the tables exist"
    expect_http "$app" POST http://127.0.0.1:8000/meetings 201 '{"user_id":"u2","title":"Alembic"}' >/dev/null
    ok "the app serves (POST /meetings 201)"
    pm stop -t 15 "$app" >/dev/null
    pm start "$app" >/dev/null
    wait_for 60 "restarted app answers" http_ok "$app" GET http://127.0.0.1:8000/health
    [ "$(logs "$app" | grep -c 'Running upgrade  -> 0001')" = 1 ] || fail "0001 ran twice"
    ok "restart: Alembic found nothing to do, app serves again"

    # Leaving Alembic (README.md): stamp once, then pgentry's own migrations take over.
    pm stop -t 15 "$app" >/dev/null
    local out
    out=$(pm run --rm --pod "$run-alembic" --label "pgentry-e2e=$run" --entrypoint pgentry \
        -e DATABASE_URL="postgres://app:$password@127.0.0.1:5432/app" "$app_image" stamp head 2>&1) ||
        fail "pgentry stamp head failed: $out"
    [ "$(sql "$pg" app 'SELECT version FROM pgentry_migrations')" = 1 ] || fail "stamp recorded nothing"
    ok "pgentry stamp head: 0001 recorded as applied, no SQL run"
    start_app "$run-alembic" "$run-alembic-next" "$app_image"
    wait_for 60 "the plain image answers" http_ok "$run-alembic-next" GET http://127.0.0.1:8000/health
    keep_logs "$run-alembic-next"
    grep -q 'database is up to date' "$logdir/$run-alembic-next.log" || fail "no 'up to date' line"
    if grep -q 'migration applied' "$logdir/$run-alembic-next.log"; then fail "0001 ran again"; fi
    [ "$(sql "$pg" app 'SELECT count(*) FROM meetings')" = 1 ] || fail "the data is gone"
    ok "the image without Alembic starts on that database: nothing re-applied, data kept"
}

# Kubernetes with an init container: podman kube play compose/kubernetes.yaml.
scenario_kube_init() {
    local net=$run-kube pg=$run-kube-pg since
    since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    pm network create --internal "$net" >/dev/null
    kube_pg "$pg" "$net"
    local t=$SECONDS replicas
    replicas=$(awk '/^  replicas:/ { print $2; exit }' "$kube_init")
    [ "$replicas" -gt 1 ] || fail "the Deployment has $replicas replica(s)"
    kube_play "$kube_init" "$net"
    ok "podman kube play returned after $((SECONDS - t))s (init containers ran first)"
    local i app died
    died=$(podman events --since "$since" --stream=false --filter event=died \
        --format '{{.Name}} {{.ContainerExitCode}}' 2>/dev/null | grep -- '-migrate ' || true)
    for i in $(seq 0 $((replicas - 1))); do
        grep -qx "pgentry-example-pod-$i-migrate 0" <<<"$died" ||
            fail "init container of pod $i did not exit 0: $died"
    done
    ok "the init container of each of the $replicas pods exited 0"
    [ "$(sql "$pg" app 'SELECT count(*) FROM pgentry_migrations')" = 1 ] || fail "history table"
    local by
    by=$(sql "$pg" app 'SELECT applied_by FROM pgentry_migrations')
    ok "migration 0001 applied once, by an init container ($by)"
    for i in $(seq 0 $((replicas - 1))); do
        app=pgentry-example-pod-$i-app
        wait_for 60 "pod $i ready (/readyz)" http_ok "$app" GET http://127.0.0.1:8081/readyz
        expect_http "$app" GET http://127.0.0.1:8081/livez 200 >/dev/null
        expect_http "$app" GET http://127.0.0.1:8000/health 200 >/dev/null
        pm exec "$app" pgentry healthcheck http://127.0.0.1:8081/readyz >/dev/null ||
            fail "pgentry healthcheck /readyz failed in pod $i"
        keep_logs "$app"
        if grep -q 'migration applied' "$logdir/$app.log"; then fail "app container $i migrated"; fi
        grep -q 'every migration is applied' "$logdir/$app.log" ||
            fail "app container $i did not check the migrations (--wait-migrations)"
    done
    ok "every app container: /livez 200, /readyz 200, /health 200; none migrated itself"
    kube_down "$kube_init"
}

# Three replicas, each migrating, started together on an empty database: the advisory lock lets
# one apply the migrations. PostgreSQL is frozen (SIGSTOP) while the pods start, so all three
# get their first connection in the same instant when it resumes.
scenario_kube_replicas() {
    local net=$run-replicas pg=$run-replicas-pg
    pm network create --internal "$net" >/dev/null
    kube_pg "$pg" "$net"
    pm kill -s STOP "$pg" >/dev/null
    local replicas i app applied=0 waited=0
    replicas=$(awk '/^  replicas:/ { print $2; exit }' "$kube_every")
    [ "$replicas" -ge 3 ] || fail "the Deployment has $replicas replica(s)"
    kube_play "$kube_every" "$net"
    for i in $(seq 0 $((replicas - 1))); do
        wait_for 30 "replica $i started" running "pgentry-example-lock-pod-$i-app"
    done
    sleep 2
    for i in $(seq 0 $((replicas - 1))); do
        if grep_log "pgentry-example-lock-pod-$i-app" 'database is ready'; then
            fail "replica $i reached a frozen PostgreSQL"
        fi
    done
    ok "$replicas replicas started, all waiting for PostgreSQL"
    pm kill -s CONT "$pg" >/dev/null
    for i in $(seq 0 $((replicas - 1))); do
        app=pgentry-example-lock-pod-$i-app
        wait_for 60 "replica $i serving" http_ok "$app" GET http://127.0.0.1:8000/health
        expect_http "$app" GET http://127.0.0.1:8081/readyz 200 >/dev/null
        keep_logs "$app"
        if grep -q 'migration applied' "$logdir/$app.log"; then applied=$((applied + 1)); fi
        if grep -q 'waiting for the migration lock' "$logdir/$app.log"; then waited=$((waited + 1)); fi
    done
    [ "$applied" = 1 ] || fail "$applied replicas logged 'migration applied', expected exactly 1"
    [ "$(sql "$pg" app 'SELECT count(*) FROM pgentry_migrations')" = 1 ] || fail "history table"
    ok "exactly one replica applied migration 0001; all $replicas serve, /readyz 200"
    note "$waited replica(s) waited for the migration lock, then found nothing pending"
    kube_down "$kube_every"
}

# The compose file, run for real with podman-compose.
scenario_compose() {
    local proj=$run-compose backend_port health_port
    backend_port=$(free_port)
    health_port=$(free_port)
    local envs=(POSTGRES_IMAGE="$pg_image" REDIS_IMAGE="$redis_image" BACKEND_IMAGE="$app_image"
        POSTGRES_PASSWORD="$password" DATABASE_URL="postgres://app:$password@postgres:5432/app"
        BACKEND_PORT="$backend_port" HEALTH_PORT="$health_port")
    env "${envs[@]}" timeout 300 podman-compose -p "$proj" -f compose/docker-compose.yml up -d \
        >"$logdir/compose-up.log" 2>&1 || {
        grep -v systemd "$logdir/compose-up.log" | tail -20
        fail "podman-compose up failed"
    }
    ok "podman-compose up -d: postgres, redis, backend created"
    local backend=${proj}_backend_1
    wait_for 90 "backend answers on the published port" \
        curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:$backend_port/health"
    ok "GET http://127.0.0.1:$backend_port/health from the host: 200"
    curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:$health_port/readyz" ||
        fail "health port $health_port: /readyz not 200"
    ok "GET http://127.0.0.1:$health_port/readyz (pgentry's health port) from the host: 200"
    keep_logs "$backend"
    grep -q 'dependency is ready.*redis:6379' "$logdir/$backend.log" || fail "did not wait for redis:6379"
    grep -q 'migration applied.*migration=0001' "$logdir/$backend.log" || fail "no migration applied"
    ok "pgentry waited for redis:6379 and PostgreSQL, applied 0001"
    local t=$SECONDS
    env "${envs[@]}" timeout 120 podman-compose -p "$proj" -f compose/docker-compose.yml stop -t 20 \
        >>"$logdir/compose-up.log" 2>&1 || fail "podman-compose stop failed"
    [ "$(exit_code "$backend")" = 0 ] || fail "backend exit code $(exit_code "$backend")"
    ok "podman-compose stop: backend exited 0 after $((SECONDS - t))s"
    env "${envs[@]}" timeout 120 podman-compose -p "$proj" -f compose/docker-compose.yml down -v \
        >>"$logdir/compose-up.log" 2>&1 || fail "podman-compose down failed"
}
# static_stack NAME IMAGE: a network NAME, PostgreSQL NAME-pg on it, and IMAGE as NAME-app,
# which reaches PostgreSQL by its container name (DNS of podman's network). Returns once
# `pgentry healthcheck` inside the application container says healthy.
static_stack() {
    local net=$1 pg=$1-pg app=$1-app
    pm network create --internal "$net" >/dev/null
    start_pg "$pg" --network "$net"
    # The backend first: pgentry waits for the name to resolve and the server to accept work.
    pm run -d --name "$app" --network "$net" --label "pgentry-e2e=$run" \
        -e DATABASE_URL="postgres://app:$password@$pg:5432/app" -e PGENTRY_WAIT_TIMEOUT=150s \
        "$2" >/dev/null
    wait_for 180 "pgentry healthcheck healthy in $app" pm exec "$app" /usr/local/bin/pgentry healthcheck
    keep_logs "$app"
}

# stop_static APP EXPECTED_CODE: podman stop; pgentry forwards TERM and exits with the app's code.
stop_static() {
    local t=$SECONDS code
    pm stop -t 20 "$1" >/dev/null
    code=$(exit_code "$1")
    keep_logs "$1"
    [ "$code" = "$2" ] || fail "container exit code $code after podman stop, expected $2: $(tail -3 "$logdir/$1.log")"
    [ $((SECONDS - t)) -lt 15 ] || fail "stop took $((SECONDS - t))s (killed?)"
    grep -Eq 'command (exited|was killed)' "$logdir/$1.log" || fail "pgentry did not report how the command ended"
    ok "podman stop: exit $code after $((SECONDS - t))s; $(grep -Eo 'command (exited|was killed).*' "$logdir/$1.log" | tail -1 | cut -c1-70)"
}

# The static binary FROM scratch, with Debian's busybox-static as the application.
scenario_static_scratch() {
    local name=$run-sscratch app=$run-sscratch-app pg=$run-sscratch-pg out
    out=$(podman image inspect "$static_image" --format '{{.RootFS.Layers}} {{json .Config.Entrypoint}}')
    [ "$(wc -w <<<"${out%% *}")" = 1 ] || fail "pgentry-static has more than one layer: $out"
    out=$(podman image save "$static_image" 2>/dev/null | tar -xO --wildcards '*.tar' 2>/dev/null | tar -t 2>/dev/null || true)
    [ "$out" = pgentry ] || fail "pgentry-static holds more than /pgentry: $(tr '\n' ' ' <<<"$out")"
    ok "pgentry-static (FROM scratch) holds only /pgentry"
    out=$(pm run --rm --entrypoint /usr/local/bin/pgentry "$static_busybox_image" --version)
    ok "in a scratch image: $out"
    static_stack "$name" "$static_busybox_image"
    ok "pgentry healthcheck: healthy (waited for PostgreSQL at $pg by name)"
    grep -q 'migration applied.*migration=0001' "$logdir/$app.log" || fail "no 'migration applied' line"
    [ "$(sql "$pg" app 'SELECT version FROM pgentry_migrations')" = 1 ] || fail "history table"
    ok "migration 0001 applied and recorded"
    out=$(pm exec "$app" /bin/busybox wget -q -O - http://127.0.0.1:8000/) || fail "busybox httpd does not answer"
    [ "$out" = 'hello from busybox httpd' ] || fail "busybox httpd answered: $out"
    out=$(pm exec "$app" /bin/busybox wget -q -O - http://127.0.0.1:8081/status)
    grep -q '"phase": *"running"' <<<"$out" || fail "/status: $out"
    ok "busybox httpd serves under pgentry; /status phase running"
    no_password_in "$logdir/$app.log"
    # busybox httpd does not catch SIGTERM: it dies of it, and pgentry exits 128+15.
    stop_static "$app" 143
}

# The static binary on the bare Debian base: no PostgreSQL client, curl, libpq, libcurl or libev.
scenario_static_debian() {
    local name=$run-sdeb app=$run-sdeb-app pg=$run-sdeb-pg out
    out=$(pm run --rm --entrypoint bash "$static_debian_image" -c \
        'command -v psql pg_isready curl; ls /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu 2>/dev/null | grep -E "^lib(pq|curl|ev)\.so"' || true)
    [ -z "$out" ] || fail "the bare base has: $out"
    ok "the image has no psql, pg_isready, curl, libpq, libcurl or libev"
    static_stack "$name" "$static_debian_image"
    ok "pgentry healthcheck: healthy (waited for PostgreSQL at $pg by name)"
    grep -q 'migration applied.*migration=0001' "$logdir/$app.log" || fail "no 'migration applied' line"
    [ "$(sql "$pg" app 'SELECT version FROM pgentry_migrations')" = 1 ] || fail "history table"
    ok "migration 0001 applied and recorded"
    grep -q 'app: running' "$logdir/$app.log" || fail "the application did not start"
    no_password_in "$logdir/$app.log"
    # The application traps SIGTERM and exits 0: so does pgentry.
    stop_static "$app" 0
    grep -q 'app: stopping' "$logdir/$app.log" || fail "the application did not get SIGTERM"
    ok "the application got SIGTERM from pgentry and stopped"
}
# scripts/package.sh: the .deb of the static binary installs with dpkg into the bare Debian
# base (with the slim image's man-page exclusion lifted, as on a full system) and works there.
scenario_deb() {
    local out deb
    rm -f dist/pgentry_*_amd64.deb
    out=$(scripts/package.sh 2>&1) || fail "scripts/package.sh failed: $out"
    deb=$(ls dist/pgentry_*_amd64.deb)
    ok "$(grep -o 'wrote .*' <<<"$out")"
    grep -q 'lintian: no error or warning' <<<"$out" || fail "lintian did not pass: $out"
    ok "lintian: no error or warning"
    out=$(pm run --rm --network none -v "$root/dist:/dist:ro" --entrypoint bash "$debian_image" -c '
        set -e
        rm -f /etc/dpkg/dpkg.cfg.d/slim
        dpkg -i /dist/'"${deb#dist/}"' >/dev/null
        pgentry --version
        test -f /usr/share/man/man1/pgentry.1.gz && echo man-page-installed
        zcat /usr/share/man/man1/pgentry.1.gz | grep -c "^\.SH" | sed "s/^/man-sections=/"
        test -f /usr/share/doc/pgentry/copyright && echo copyright-installed
        dpkg -s pgentry | sed -n "s/^Status: //p"
        dpkg --purge pgentry >/dev/null
        test ! -e /usr/bin/pgentry && echo purged' 2>&1) || fail "dpkg -i in the bare base failed: $out"
    grep -q '^pgentry ' <<<"$out" || fail "pgentry --version after dpkg -i: $out"
    ok "dpkg -i in the bare Debian base; /usr/bin/pgentry runs: $(grep '^pgentry ' <<<"$out")"
    grep -qx man-page-installed <<<"$out" && grep -qx copyright-installed <<<"$out" ||
        fail "man page or copyright not installed: $out"
    ok "/usr/share/man/man1/pgentry.1.gz ($(grep -o 'man-sections=.*' <<<"$out" | cut -d= -f2) sections) and the copyright file installed"
    grep -qx 'install ok installed' <<<"$out" && grep -qx purged <<<"$out" || fail "dpkg status or purge: $out"
    ok "dpkg -s: install ok installed; dpkg --purge removes it"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------------------------
# Main: build, then every scenario in order; a summary at the end.

want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${SCENARIOS[@]}")
for s in "${want[@]}"; do
    [[ " ${SCENARIOS[*]} " == *" $s "* ]] || {
        echo "e2e: unknown scenario $s (${SCENARIOS[*]})" >&2
        exit 64
    }
done

echo "== e2e: podman $(podman version --format '{{.Client.Version}}'), run $run (container logs kept in $logdir on failure)"
t0=$SECONDS
tests/e2e/images.sh
echo "== images ready in $((SECONDS - t0))s"

declare -a results=()
passed=0
failed=0
for s in "${want[@]}"; do
    echo "== $s"
    t=$SECONDS
    set +e
    (
        set -euo pipefail
        "scenario_${s//-/_}"
    )
    rc=$?
    set -e
    if [ $rc = 0 ]; then
        passed=$((passed + 1))
        results+=("$(printf 'PASS  %-14s %4ss' "$s" $((SECONDS - t)))")
    else
        failed=$((failed + 1))
        results+=("$(printf 'FAIL  %-14s %4ss' "$s" $((SECONDS - t)))")
    fi
done

echo "== summary (total $((SECONDS - t0))s)"
printf '   %s\n' "${results[@]}"
echo "e2e: $passed passed, $failed failed"
if [ "$failed" = 0 ]; then
    rm -rf "$logdir"
else
    echo "e2e: container logs kept in $logdir" >&2
    exit 1
fi
