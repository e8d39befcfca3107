# Throwaway PostgreSQL servers for the demo and the benchmarks (sourced, not run).
# pg_bindir                      print the directory of initdb/pg_ctl
# pg_init DIR PORT [PASSWORD]    initdb DIR (as the postgres user when root), listen on 127.0.0.1:PORT
# pg_start DIR / pg_stop DIR     start (waits until it accepts connections) / stop immediately
# pg_url DIR DB                  postgres:// URL for the superuser over TCP

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    echo "${d:-/usr/bin}"
}

# Run a command as the postgres user when we are root (initdb and postgres refuse root).
pg_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_init() {
    local dir=$1 port=$2 password=${3:-pgentry-demo-pw}
    mkdir -p "$dir"
    chmod 700 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    local pwfile
    pwfile=$(mktemp)
    echo "$password" >"$pwfile"
    chmod 644 "$pwfile"
    pg_as "$(pg_bindir)/initdb" -D "$dir" -U postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >/dev/null
    rm -f "$pwfile"
    cat >>"$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
logging_collector = off
CONF
    echo "$port" >"$dir/.port"
    echo "$password" >"$dir/.password"
}

pg_start() {
    pg_as "$(pg_bindir)/pg_ctl" -D "$1" -l "$1/server.log" -w -t 60 start >/dev/null
}

pg_stop() {
    [ -f "$1/postmaster.pid" ] && pg_as "$(pg_bindir)/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1
    return 0
}

pg_url() {
    echo "postgres://postgres:$(cat "$1/.password")@127.0.0.1:$(cat "$1/.port")/${2:-postgres}"
}

pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
