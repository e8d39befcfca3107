/* The --help text: every option with its variable and default, subcommands and exit codes. */
#include "pgentry/config/config.h"

#include <string.h>

/* In parts: ISO C bounds one string literal to 4095 bytes. */
static const char *const parts[] = {
    "pgentry " PGENTRY_VERSION
    " - container entrypoint: wait for PostgreSQL, migrate, run the app\n"
    "\n"
    "Usage:\n"
    "  pgentry [OPTIONS] [--] COMMAND [ARG...]  wait, migrate, then run COMMAND as init\n"
    "  pgentry [OPTIONS]                        wait, migrate, exit 0 (init container)\n"
    "  pgentry wait [OPTIONS]                   wait for every dependency, exit 0\n"
    "  pgentry upgrade [head|+N|VERSION] [--sql] apply pending migrations\n"
    "  pgentry downgrade -N|VERSION|base [--sql] revert with the .down.sql files\n"
    "  pgentry current [--format json]          print the applied head version\n"
    "  pgentry history [--format json]          every migration and its state\n"
    "  pgentry status [--format json] [--exit-code]  history, plus drift and notes;\n"
    "                                           --exit-code: 0 up to date, 1 pending,\n"
    "                                           65 drift, out-of-order, INVALID index\n"
    "  pgentry stamp VERSION|head|base          record versions without running SQL\n"
    "  pgentry revision -m MESSAGE              create the next .up.sql/.down.sql pair\n"
    "  pgentry verify                           exit 65 if an applied file changed\n"
    "  pgentry healthcheck [URL]                exit 0 if healthy, 1 if not\n"
    "  pgentry --version | --help\n"
    "\n"
    "A first word that is not a subcommand starts COMMAND; -- always ends the options.\n"
    "Every option can also be set from the environment variable shown (flags win).\n"
    "\n"
    "Database:\n"
    "  --database-url URL        DATABASE_URL     postgres:// URI or key=value conninfo\n"
    "                                             (default: libpq's PG* variables)\n"
    "  --wait-timeout DUR        PGENTRY_WAIT_TIMEOUT     give up waiting (60s; 0 = never)\n"
    "  --connect-timeout DUR     PGENTRY_CONNECT_TIMEOUT  one attempt (5s)\n"
    "  --backoff-initial DUR     PGENTRY_BACKOFF_INITIAL  first retry ceiling (10ms)\n"
    "  --backoff-max DUR         PGENTRY_BACKOFF_MAX      retry ceiling cap (40ms)\n"
    "  --password-file PATH      PGENTRY_PASSWORD_FILE    password, read before every "
    "attempt\n"
    "  --password-command CMD    PGENTRY_PASSWORD_COMMAND  /bin/sh -c CMD before every "
    "attempt;\n"
    "                                             its stdout is the password\n"
    "  --create-database         PGENTRY_CREATE_DATABASE=1  on 3D000, CREATE DATABASE\n"
    "                                             (through postgres, else template1)\n"
    "  --wait-tcp HOST:PORT      PGENTRY_WAIT_TCP   also wait for a TCP listener (repeat)\n"
    "  --wait-http URL           PGENTRY_WAIT_HTTP  also wait for a 2xx (repeat)\n"
    "\n",
    "Migrations:\n"
    "  --migrations DIR          PGENTRY_MIGRATIONS       migration files (./migrations)\n"
    "  --table NAME              PGENTRY_TABLE            history table "
    "(pgentry_migrations)\n"
    "  --migrate-cmd CMD         PGENTRY_MIGRATE_CMD      run CMD via /bin/sh -c under "
    "the lock\n"
    "  --migrate-database-url URL  PGENTRY_MIGRATE_DATABASE_URL  direct connection for "
    "waiting,\n"
    "                                             the lock and migrations; COMMAND keeps "
    "DATABASE_URL\n"
    "  --no-migrate              PGENTRY_NO_MIGRATE=1     skip migrations\n"
    "  --wait-migrations         PGENTRY_WAIT_MIGRATIONS=1  apply nothing; wait until "
    "applied\n"
    "  --allow-out-of-order      PGENTRY_ALLOW_OUT_OF_ORDER=1  apply an older unapplied "
    "file (warn)\n"
    "  --lock-wait DUR           PGENTRY_LOCK_WAIT        max wait for the migration lock "
    "(0 = forever)\n"
    "  --lock-timeout DUR        PGENTRY_LOCK_TIMEOUT     SET lock_timeout per migration; "
    "retry on 55P03\n"
    "  --statement-timeout DUR   PGENTRY_STATEMENT_TIMEOUT  per migration (0 = no limit,\n"
    "                                             overriding the role's or server's)\n"
    "  --format text|json        (current, history, status) machine-readable output\n"
    "  --exit-code               (status) exit 1 if pending, 65 on drift/out-of-order/\n"
    "                                             INVALID index\n"
    "  --sql                     (upgrade/downgrade) print the SQL, change nothing\n"
    "  -m MESSAGE                (revision) the new migration's name\n"
    "\n"
    "Application:\n"
    "  --exec                    PGENTRY_EXEC=1   replace pgentry with COMMAND: no health\n"
    "                                             endpoint, no zombie reaping, no stop\n"
    "                                             timeout (COMMAND must do its own init);\n"
    "                                             without a COMMAND, PGENTRY_EXEC is\n"
    "                                             ignored and --exec is an error\n"
    "  --stop-timeout DUR        PGENTRY_STOP_TIMEOUT   then SIGKILL (10s)\n"
    "  --stop-delay DUR          PGENTRY_STOP_DELAY     after TERM/INT: readiness 503 at\n"
    "                                             once, COMMAND signalled after DUR (0)\n"
    "  --signal-group            PGENTRY_SIGNAL_GROUP=1 signal the child's process group\n"
    "  --rewrite SIG:SIG         PGENTRY_REWRITE  e.g. TERM:QUIT; TO may be 0 (repeat)\n"
    "  --user USER[:GROUP]       PGENTRY_USER     drop privileges for COMMAND and --migrate-cmd\n"
    "\n"
    "Health:\n"
    "  --health-addr HOST:PORT   PGENTRY_HEALTH_ADDR  endpoint (0.0.0.0:8081; off "
    "disables)\n"
    "  --app-health-url URL      PGENTRY_APP_HEALTH_URL  /readyz also needs this 2xx\n"
    "\n"
    "Logging:\n"
    "  --log-format text|json    PGENTRY_LOG_FORMAT  (text)\n"
    "  --log-level LEVEL         PGENTRY_LOG_LEVEL   debug, info, warn, error (info)\n"
    "\n"
    "Durations: 250ms, 10s, 2m, 1h, 1m30s; a bare number is seconds.\n"
    "Exit codes: 0 ok; COMMAND's own code (128+N on signal N); 126/127 COMMAND not\n"
    "executable/not found; 64 usage; 65 migration failed; 69 dependency not ready in\n"
    "time; 70 internal; 75 migration lock not obtained; 77 PostgreSQL refused us for\n"
    "good (password, pg_hba, database missing); 78 configuration error.\n",
};

const char *pge_config_help(void)
{
    static char text[8192];
    if (text[0] == '\0') {
        size_t used = 0;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            size_t n = strlen(parts[i]);
            if (used + n >= sizeof text)
                break;
            memcpy(text + used, parts[i], n);
            used += n;
        }
        text[used] = '\0';
    }
    return text;
}
