#!/usr/bin/env bash
# What slow clients cost pgentry: N clients each trickle a request head one byte every ~100 ms;
# pgentry's CPU (utime+stime from /proc/PID/stat) over a fixed window, per binary given.
# Usage: bench/slow_clients.sh [SECONDS] PGENTRY [PGENTRY...]
#        (env: CLIENTS=128, GAP_MS=100, PREFIX=8000: head bytes each client sends at once first,
#        so every trickled byte lands on a long unfinished head, the worst case for re-parsing)
# e.g.   bench/slow_clients.sh 20 /tmp/main/build/pgentry build/pgentry   (before, after)
set -euo pipefail

secs=${1:-20}
shift || true
[ $# -ge 1 ] || set -- build/pgentry
clients=${CLIENTS:-128}
prefix=${PREFIX:-8000}
gap_ms=${GAP_MS:-100}
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
hz=$(getconf CLK_TCK)

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The clients: a long head (a padded header, never finished within the window), one byte per
# gap per client; a client the server drops reconnects at once and starts over.
trickle() {
    "$py" - "$1" "$clients" "$gap_ms" "$2" "$prefix" <<'PY'
import socket, sys, time
port, n, gap, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000, float(sys.argv[4])
prefix = int(sys.argv[5])
head = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8100
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head[:prefix])
    s.setblocking(False)
    return [s, prefix]
cs = [connect() for _ in range(n)]
end = time.monotonic() + secs
sent = drops = 0
while time.monotonic() < end:
    t0 = time.monotonic()
    for c in cs:
        try:
            c[0].send(head[c[1]:c[1] + 1])
            c[1] = min(c[1] + 1, len(head) - 1)
            sent += 1
        except OSError:
            drops += 1
            c[0].close()
            c[:] = connect()
    time.sleep(max(0.0, gap - (time.monotonic() - t0)))
print(f"bytes_sent={sent} reconnects={drops}")
PY
}

for bin in "$@"; do
    port=$(free_port)
    "$bin" --no-migrate --health-addr "127.0.0.1:$port" -- sleep 100000 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/livez" >/dev/null 2>&1 && break
        sleep 0.05
    done
    # Let every client connect and start before the window opens.
    trickle "$port" $((secs + 4)) > /tmp/slow_clients.$$ &
    tpid=$!
    sleep 2
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep "$secs"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    wait "$tpid"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pct=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.2f", 100 * d / hz / s}')
    echo "$bin: clients=$clients prefix=$prefix gap=${gap_ms}ms window=${secs}s cpu_ticks=$((t1 - t0)) cpu=${pct}% of a core $(cat /tmp/slow_clients.$$)"
    rm -f /tmp/slow_clients.$$
done
