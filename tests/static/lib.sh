# shellcheck shell=bash
# Helpers for the static-binary tests in tests/static/ (sourced, not run): ok/bad lines and
# their counts, and polling a condition instead of sleeping.
# ok DESC                 print "ok - DESC", count a pass
# bad DESC [DETAIL...]    print "FAIL - DESC" and each DETAIL on stderr, count a failure
# poll SECS CMD...        run CMD every 20 ms until it succeeds; 1 if it never did in SECS
# health_term SECS URL LOG   the health check and TERM checks (below)
# summary                 print the counts; non-zero if anything failed
# static_scratch NAME     make $T (a scratch directory) and $pgdir, and on exit kill the
#                         processes named in $app_pid and $wait_pid (if set), stop the server
#                         in $pgdir and remove $T, keeping the script's exit status

passed=0
failed=0
ok() {
    echo "ok   - $1"
    passed=$((passed + 1))
}
bad() {
    echo "FAIL - $1" >&2
    [ $# -gt 1 ] && printf '       %s\n' "${@:2}" >&2
    failed=$((failed + 1))
}

poll() {
    local secs=$1 deadline
    shift
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.02
    done
}

# health_term SECS URL LOG: pgentry (pid $app_pid, started in the background by the caller,
# supervising a long-running COMMAND, its output in LOG) answers `pge healthcheck URL` with 0
# within SECS; TERM reaches the app and pgentry exits 143; then the health check is 1. Uses the
# caller's pge function; clears app_pid once pgentry has been waited for.
health_term() {
    local secs=$1 url=$2 log=$3 rc out
    if poll "$secs" pge healthcheck "$url"; then
        ok "pgentry healthcheck $url: healthy while COMMAND runs"
    else
        bad "pgentry healthcheck never reported healthy" "$(pge healthcheck "$url" 2>&1 || true)" "$(cat "$log")"
    fi
    kill -TERM "$app_pid" 2>/dev/null || true
    rc=0
    wait "$app_pid" || rc=$?
    app_pid=
    if [ "$rc" = 143 ]; then
        ok "TERM reaches the supervised app; pgentry exits 143"
    else
        bad "after TERM pgentry exited $rc, expected 143" "$(cat "$log")"
    fi
    rc=0
    out=$(pge healthcheck "$url" 2>&1) || rc=$?
    if [ "$rc" = 1 ]; then
        ok "pgentry healthcheck says unhealthy (1) once pgentry is gone"
    else
        bad "pgentry healthcheck with nothing listening: expected 1, got $rc" "$out"
    fi
}

summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}

static_cleanup() {
    local rc=$?
    [ -n "${app_pid:-}" ] && kill -KILL "$app_pid" 2>/dev/null
    [ -n "${wait_pid:-}" ] && kill -KILL "$wait_pid" 2>/dev/null
    pg_stop "$pgdir"
    rm -rf "$T"
    exit "$rc"
}

static_scratch() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/pgentry-$1.XXXXXX")
    chmod 755 "$T"
    pgdir=$T/pg
    app_pid=
    wait_pid=
    trap static_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
