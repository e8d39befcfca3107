/* What a fresh connection carries and must prove: its name, its notices, a writable primary. */
#include "pgentry/db/pgcheck.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/log.h"

/* Proves the server accepts work and may be written to. PostgreSQL 14 and later report
 * in_hot_standby and default_transaction_read_only at connection start, so a trivial query is
 * proof enough there (and cheap on a server that just started, with cold catalog caches);
 * older servers are asked. */
#define CHECK_SQL       "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
#define CHECK_SQL_LIGHT "SELECT 1"

const char *pge_pgcheck_application_name(void)
{
    static char name[80];
    if (!name[0]) {
        char host[40] = "";
        if (gethostname(host, sizeof host) < 0)
            host[0] = '\0';
        host[sizeof host - 1] = '\0';
        snprintf(name, sizeof name, "pgentry@%s:%ld", host[0] ? host : "unknown", (long)getpid());
    }
    return name;
}

static void on_notice(void *arg, const char *message)
{
    char line[512];
    (void)arg;
    snprintf(line, sizeof line, "%s", message);
    line[strcspn(line, "\n")] = '\0';
    pge_debug("postgres notice", PGE_STR("notice", line));
}

void pge_pgcheck_quiet_notices(PGconn *conn)
{
    PQsetNoticeProcessor(conn, on_notice, NULL);
}

const char *pge_pgcheck_sql(const PGconn *conn)
{
    const char *hs = PQparameterStatus(conn, "in_hot_standby");
    const char *ro = PQparameterStatus(conn, "default_transaction_read_only");
    return hs && ro ? CHECK_SQL_LIGHT : CHECK_SQL;
}

static int is_on(const PGconn *conn, const char *parameter)
{
    const char *v = PQparameterStatus(conn, parameter);
    return v && strcmp(v, "on") == 0;
}

/* Whether a server in recovery (or with read-only transactions) is what target wants. */
static int wanted(enum pge_conninfo_target target, int recovery, int readonly)
{
    switch (target) {
    case PGE_CONNINFO_PRIMARY:
        return !recovery;
    case PGE_CONNINFO_ANY:
        return 1;
    case PGE_CONNINFO_READ_ONLY:
        return recovery || readonly;
    case PGE_CONNINFO_STANDBY:
    case PGE_CONNINFO_PREFER_STANDBY:
        return recovery;
    case PGE_CONNINFO_READ_WRITE:
    default:
        return !recovery && !readonly;
    }
}

int pge_pgcheck_judge(const PGconn *conn, const PGresult *res, enum pge_conninfo_target target,
                      struct pge_pgconn_error *err)
{
    int recovery, readonly;
    memset(err, 0, sizeof *err);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        pge_errbuf_set(err->sqlstate, sizeof err->sqlstate, "%s", sqlstate ? sqlstate : "");
        pge_errbuf_set(err->message, sizeof err->message, "check query failed: %s",
                       PQresultErrorMessage(res));
        err->message[strcspn(err->message, "\n")] = '\0';
        err->verdict = pge_sqlstate_classify(err->sqlstate, err->message, 0, &err->outcome);
        return -1;
    }
    if (PQnfields(res) == 2) {
        recovery = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        readonly = strcmp(PQgetvalue(res, 0, 1), "on") == 0;
    } else {
        recovery = is_on(conn, "in_hot_standby");
        readonly = is_on(conn, "default_transaction_read_only");
    }
    if (wanted(target, recovery, readonly))
        return 0;
    err->verdict = PGE_OUT_NOT_READY;
    if (recovery || readonly) {
        err->outcome = PGE_ATTEMPT_STANDBY;
        pge_errbuf_set(err->message, sizeof err->message, "%s",
                       recovery ? "server is a read-only standby (in recovery), not the primary"
                                : "server accepts only read-only transactions "
                                  "(default_transaction_read_only is on)");
    } else {
        err->outcome = PGE_ATTEMPT_OTHER;
        pge_errbuf_set(err->message, sizeof err->message,
                       "server is a writable primary, not a standby (target_session_attrs=%s)",
                       pge_conninfo_target_name(target));
    }
    return -1;
}
