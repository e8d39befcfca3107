#!/usr/bin/env bash
# The static binary in an empty root: a directory holding only /pgentry, the two files a
# container runtime injects (/etc/hosts, /etc/resolv.conf), a migrations folder, a CA file and
# busybox (from busybox-static) as the application. Run with chroot, sharing the host's network,
# against a throwaway PostgreSQL on 127.0.0.1 that this script starts and removes.
#
# Usage (as root): tests/static/empty_root.sh [BINARY]     (default dist/pgentry)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

bin=${1:-dist/pgentry}
die() {
    echo "empty_root: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (chroot, and the server runs as postgres)"
[ -x "$bin" ] || die "no static binary at $bin: run scripts/build-static.sh"
busybox=/bin/busybox
file -b "$busybox" | grep -q 'statically linked' || die "$busybox is not static: apt-get install busybox-static"
for c in openssl chroot file readelf python3 timeout; do
    command -v "$c" >/dev/null || die "missing $c (scripts/install-deps.sh static)"
done

# shellcheck source=tests/static/lib.sh
source tests/static/lib.sh
static_scratch empty-root
R=$T/root

host=db.pgentry.test
pw=empty-root-pw

# --- a test CA and a server certificate for $host ---------------------------------------------
mkdir -p "$T/ca" "$T/other"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgentry test CA" \
    -keyout "$T/ca/ca.key" -out "$T/ca/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout "$T/ca/server.key" \
    -out "$T/ca/server.csr" 2>/dev/null
openssl x509 -req -in "$T/ca/server.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" \
    -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=DNS:%s\n' "$host") \
    -out "$T/ca/server.crt" 2>/dev/null
# A second CA that signed nothing: verify-full must refuse the server with it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=unrelated CA" \
    -keyout "$T/other/ca.key" -out "$T/other/ca.crt" 2>/dev/null

# --- the throwaway server: TLS on; role tlsuser may only come in over TLS, md5user by MD5 -----
port=$(pg_free_port)
pg_init "$pgdir" "$port" "$pw"
install -o postgres -g postgres -m 600 "$T/ca/server.key" "$pgdir/server.key"
install -o postgres -g postgres -m 644 "$T/ca/server.crt" "$pgdir/server.crt"
cat >>"$pgdir/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
log_connections = on
CONF
{
    echo "hostnossl all tlsuser 127.0.0.1/32 reject"
    echo "host all md5user 127.0.0.1/32 md5"
    cat "$pgdir/pg_hba.conf"
} >"$pgdir/pg_hba.conf.new"
mv "$pgdir/pg_hba.conf.new" "$pgdir/pg_hba.conf"
chown postgres:postgres "$pgdir/pg_hba.conf"
pg_start "$pgdir"
psql_host() {
    PGPASSWORD=$pw "$(pg_bindir)/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}
psql_host -c "create role tlsuser login password 'tls-pw'" >/dev/null
# Only pgentry logs in as scramuser, so the server log's line for that identity is pgentry's.
psql_host -c "create role scramuser login password 'scram-pw'" >/dev/null
psql_host -c "set password_encryption = 'md5'" -c "create role md5user login password 'md5-pw'" >/dev/null

# --- the root: nothing but these files ---------------------------------------------------------
mkdir -p "$R/etc" "$R/migrations" "$R/certs" "$R/out"
chmod 1777 "$R/out"
install -m 755 "$bin" "$R/pgentry"
install -m 755 "$busybox" "$R/busybox"
printf '127.0.0.1\tlocalhost\n127.0.0.1\t%s\n' "$host" >"$R/etc/hosts"
# No resolver listens on 127.0.0.1:53: every name used here must come from /etc/hosts.
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$R/etc/resolv.conf"
cp "$T/ca/ca.crt" "$R/certs/root.crt"
cp "$T/other/ca.crt" "$R/certs/other.crt"
printf 'create table er_one (id int primary key);\n' >"$R/migrations/0001_one.up.sql"
printf 'create table er_two (id int primary key);\n' >"$R/migrations/0002_two.up.sql"

url="postgres://postgres:$pw@$host:$port/postgres?sslmode=disable"
tls_url="postgres://tlsuser:tls-pw@$host:$port/postgres?sslmode=verify-full&sslrootcert=/certs/root.crt"
# pgentry in the root; a hang fails the check instead of the whole test.
pge() {
    timeout 60 chroot "$R" /pgentry "$@"
}
common=(--health-addr off --wait-timeout 15s --migrations /migrations)

echo "== empty root: $(cd "$R" && find . -mindepth 1 -not -type d | sort | tr '\n' ' ')"

# 1. The binary is static and says so.
if desc=$(file -b "$bin") && [[ "$desc" == *"statically linked"* ]] &&
    ! readelf -lW "$bin" | grep -q INTERP && ! readelf -dW "$bin" | grep -q NEEDED; then
    ok "static: no interpreter, no NEEDED ($desc)"
else
    bad "$bin is not fully static" "$desc" "$(readelf -dW "$bin" | grep NEEDED || true)"
fi
if out=$(pge --version 2>&1) && [[ "$out" == "pgentry "*"(static; libpq "*"OpenSSL "*"libcurl "*"libev "* ]]; then
    ok "--version in the empty root: $out"
else
    bad "--version in the empty root did not name the static build and its libraries" "$out"
fi

# 2. Wait, migrate, run COMMAND; the database is reached by a name from /etc/hosts.
rc=0
out=$(pge "${common[@]}" --database-url "$url" -- /busybox sh -c 'echo ran >/out/ran' 2>&1) || rc=$?
applied=$(psql_host -c 'select count(*) from pgentry_migrations' 2>&1 || true)
if [ "$rc" = 0 ] && [ "$(cat "$R/out/ran" 2>/dev/null)" = ran ] && [ "$applied" = 2 ]; then
    ok "wait + migrate (2 applied) + COMMAND, database at $host via /etc/hosts"
else
    bad "wait + migrate + COMMAND: exit $rc, migrations applied: $applied, COMMAND ran: $(cat "$R/out/ran" 2>/dev/null || echo no)" "$out"
fi
if out=$(pge current --database-url "$url" --migrations /migrations 2>/dev/null) && [[ "$out" =~ ^0*2$ ]]; then
    ok "pgentry current: $out"
else
    bad "pgentry current" "$out"
fi

# 2b. SCRAM-SHA-256 (pg_hba's method for every TCP login here): the server holds a SCRAM secret
# with 4096 iterations, pgentry's login is authenticated by scram-sha-256 (the static libpq's
# SaltedPassword: scripts/static/patches/postgresql-15/), and a wrong password is 77.
scram_url="postgres://scramuser:scram-pw@$host:$port/postgres?sslmode=disable"
secret=$(psql_host -c "select split_part(rolpassword, ':', 1) from pg_authid where rolname = 'scramuser'" 2>&1 || true)
rc=0
out=$(pge wait --database-url "$scram_url" --wait-timeout 10s 2>&1) || rc=$?
if [ "$rc" = 0 ] && [ "$secret" = "SCRAM-SHA-256\$4096" ] &&
    grep -q 'connection authenticated: identity="scramuser" method=scram-sha-256' "$pgdir/server.log"; then
    ok "SCRAM-SHA-256 login ($secret), authenticated by scram-sha-256 says the server"
else
    bad "SCRAM login: exit $rc, secret $secret, server log: $(grep 'identity="scramuser"' "$pgdir/server.log" || echo none)" "$out"
fi
rc=0
out=$(pge wait --database-url "${scram_url/scram-pw/wrong-pw}" --wait-timeout 10s 2>&1) || rc=$?
if [ "$rc" = 77 ]; then
    ok "SCRAM with a wrong password is refused for good (exit 77)"
else
    bad "SCRAM with a wrong password: expected exit 77, got $rc" "$out"
fi
# MD5 logins hash with libpgcommon's own MD5 (common-builtin-hashes.patch), as SCRAM's other
# steps do: a right password gets in, a wrong one is 77.
md5_url="postgres://md5user:md5-pw@$host:$port/postgres?sslmode=disable"
rc=0
out=$(pge wait --database-url "$md5_url" --wait-timeout 10s 2>&1) || rc=$?
rc2=0
out2=$(pge wait --database-url "${md5_url/md5-pw/wrong-pw}" --wait-timeout 10s 2>&1) || rc2=$?
if [ "$rc" = 0 ] && [ "$rc2" = 77 ] &&
    grep -q 'connection authenticated: identity="md5user" method=md5' "$pgdir/server.log"; then
    ok "MD5 login, authenticated by md5 says the server; a wrong MD5 password is 77"
else
    bad "MD5 login: exit $rc (wrong password: $rc2), server log: $(grep 'identity="md5user"' "$pgdir/server.log" || echo none)" "$out $out2"
fi

# 3. A name that is not in /etc/hosts fails as a dependency that is not there (no NSS, no hang).
rc=0
out=$(pge wait --database-url "postgres://postgres:$pw@nowhere.pgentry.test:$port/postgres" \
    --wait-timeout 2s 2>&1) || rc=$?
if [ "$rc" = 69 ]; then
    ok "a name missing from /etc/hosts is not resolved (exit 69)"
else
    bad "a name missing from /etc/hosts: expected exit 69, got $rc" "$out"
fi

# 4. --user by number, with no /etc/passwd or /etc/group in the root.
rm -f "$R/out/ids"
rc=0
out=$(pge "${common[@]}" --database-url "$url" --user 10001:10001 -- \
    /busybox sh -c 'echo "$(/busybox id -u):$(/busybox id -g)" >/out/ids' 2>&1) || rc=$?
ids=$(cat "$R/out/ids" 2>/dev/null || echo none)
if [ "$rc" = 0 ] && [ "$ids" = 10001:10001 ]; then
    ok "--user 10001:10001 without /etc/passwd: the app runs as $ids"
else
    bad "--user 10001:10001: exit $rc, the app ran as $ids" "$out"
fi

# 5. TLS with sslmode=verify-full against the test CA; the role is refused without TLS.
rc=0
out=$(pge wait --database-url "$tls_url" --wait-timeout 10s 2>&1) || rc=$?
if [ "$rc" = 0 ]; then
    ok "TLS: sslmode=verify-full with sslrootcert=/certs/root.crt"
else
    bad "TLS verify-full: exit $rc" "$out"
fi
rc=0
out=$(pge wait --database-url "${tls_url/root.crt/other.crt}" --wait-timeout 2s 2>&1) || rc=$?
if [ "$rc" != 0 ] && grep -qi 'certificate' <<<"$out"; then
    ok "TLS: a server certificate from another CA is refused (exit $rc)"
else
    bad "TLS with the wrong CA: expected a certificate failure, got exit $rc" "$out"
fi
rc=0
out=$(pge wait --database-url "postgres://tlsuser:tls-pw@$host:$port/postgres?sslmode=disable" \
    --wait-timeout 2s 2>&1) || rc=$?
if [ "$rc" != 0 ]; then
    ok "the TLS-only role is refused without TLS (exit $rc): the check above did use TLS"
else
    bad "tlsuser got in without TLS: the server's pg_hba is not what this test expects"
fi

# 6. pgentry healthcheck against a running pgentry's health endpoint (HTTP through libcurl).
hport=$(pg_free_port)
# chroot itself, not the pge function: a function in the background is a subshell, and TERM must
# reach pgentry.
chroot "$R" /pgentry --health-addr "127.0.0.1:$hport" --migrations /migrations --database-url "$url" \
    -- /busybox sleep 600 >"$T/app.log" 2>&1 &
app_pid=$!
hc_url="http://$host:$hport/readyz"
health_term 15 "$hc_url" "$T/app.log"

# 7. Nothing was added to the root behind our back (no NSS files, no loader).
extra=$(cd "$R" && find . -mindepth 1 -not -type d | sort |
    grep -vxE './(pgentry|busybox|etc/hosts|etc/resolv.conf|certs/root.crt|certs/other.crt|migrations/000[12]_(one|two).up.sql|out/(ran|ids))' || true)
if [ -z "$extra" ]; then
    ok "the root still holds only what the test put there"
else
    bad "unexpected files in the root" "$extra"
fi

summary
