/* The migration lock: choose its kind, poll for the advisory lock, prepare the session, release. */
#include "engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/log.h"
#include "pgentry/common/runstate.h"
#include "pgentry/db/pgcheck.h"
#include "pgentry/migrate/histsql.h"

static void try_lock(struct pge_migrate *m);
static void after_session_kept(struct pge_migrate *m);

/* For /status and /metrics: the lock as we see it. holder is "NAME from HOST" as the holder
 * query gives it (NAME being the holder's "pgentry@host:pid"), or NULL. */
static void show_lock(struct pge_migrate *m, enum pge_lock_state state, const char *holder)
{
    char name[PGE_RUNSTATE_HOLDER_MAX];
    if (!m->o.state)
        return;
    if (state == PGE_LOCK_HELD) {
        pge_runstate_lock_held(m->o.state, pge_pgcheck_application_name(), pge_runstate_unix_ms());
        return;
    }
    if (state == PGE_LOCK_FREE) {
        pge_runstate_lock_free(m->o.state);
        return;
    }
    snprintf(name, sizeof name, "%s", holder ? holder : "");
    char *from = strstr(name, " from ");
    if (from)
        *from = '\0';
    pge_runstate_lock_waiting(m->o.state, holder ? name : NULL, pge_runstate_mono_ms());
}

static void on_unlocked(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int held = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
               strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    m->locked = 0;
    show_lock(m, PGE_LOCK_FREE, NULL);
    if (!held && m->op == PGE_MIGRATE_COMMAND && m->pending.kind == PGE_OUT_OK) {
        /* Our own migrations are protected by the history's primary key even then; an
         * external command is not: it may have run next to another one. */
        pge_error("the migration lock was not held any more when the migrate command ended: "
                  "another instance may have migrated at the same time; not starting the app");
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    pge_migrate_finish(m, m->pending);
}

/* Release the lock (if held) and report out. The lock is session-level: closing the
 * connection would release it too, but an explicit unlock lets waiting replicas go at once. */
void pge_migrate_release(struct pge_migrate *m, struct pge_outcome out)
{
    m->pending = out;
    if (m->locked && m->lease && m->q && !pge_pgquery_busy(m->q) &&
        PQstatus(m->conn) == CONNECTION_OK) {
        struct pge_histsql_buf b = {0};
        /* NOTIFY first: the query's answer is its last result, whether the row was ours. */
        if (m->applied_now)
            pge_histsql_appendf(&b, "NOTIFY " NOTIFY_CHANNEL "; ");
        if (pge_migrate_lease_release_sql(m, &b) == 0 &&
            pge_pgquery_send(m->q, b.s, -1, NULL, on_unlocked, m) == 0) {
            pge_histsql_buf_free(&b);
            return;
        }
        pge_histsql_buf_free(&b);
    } else if (m->locked && m->q && !pge_pgquery_busy(m->q) && PQstatus(m->conn) == CONNECTION_OK) {
        char sql[256];
        /* Replicas in --wait-migrations LISTEN: tell them once, when the work is done. */
        snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock((%s::bigint << 32) | %s::bigint)%s",
                 m->classid, m->objid, m->applied_now ? "; NOTIFY " NOTIFY_CHANNEL : "");
        if (pge_pgquery_send(m->q, sql, -1, NULL, on_unlocked, m) == 0)
            return;
    }
    pge_migrate_finish(m, out);
}

static void on_timer_try_lock(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    try_lock(w->data);
}

void pge_migrate_lock_init(struct pge_migrate *m)
{
    ev_init(&m->timer, on_timer_try_lock);
    m->timer.data = m;
    pge_throttle_init(&m->holder_log, FIRST_REPEAT_LOG, MAX_REPEAT_LOG);
}

void pge_migrate_lock_retry(struct pge_migrate *m, void (*retry)(struct ev_loop *, ev_timer *, int))
{
    int64_t now = now_ms(), delay = 0;
    int64_t deadline = m->o.lock_wait_ms ? m->lock_started_ms + m->o.lock_wait_ms : 0;
    if (pge_backoff_next(&m->backoff, now, deadline, &delay) == PGE_BACKOFF_EXPIRED) {
        pge_error("gave up waiting for the migration lock (--lock-wait): another pgentry is "
                  "migrating this database",
                  PGE_MS("waited", now - m->lock_started_ms));
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_LOCK_TIMEOUT, 0));
        return;
    }
    pge_migrate_set_timer(m, retry, delay);
    ev_timer_start(m->loop, &m->timer);
}

static void on_holder(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int64_t now = now_ms();
    char sig[256], d1[32];
    if (!pge_migrate_result_back(m, res, "looking up the migration lock holder"))
        return;
    /* No row: the holder let go between our two queries; just try again. */
    int known = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    enum pge_throttle_verdict seen = PGE_THROTTLE_QUIET;
    if (known) {
        snprintf(sig, sizeof sig, "%s|%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        seen = pge_throttle_should_log(&m->holder_log, sig, now);
        show_lock(m, PGE_LOCK_WAITING, PQgetvalue(res, 0, 1));
    }
    if (seen != PGE_THROTTLE_QUIET) {
        int changed = seen == PGE_THROTTLE_CHANGED;
        char *bar = strchr(sig, '|');
        *bar = '\0';
        pge_info(
            changed ? "waiting for the migration lock" : "still waiting for the migration lock",
            PGE_STR("holder_backend_pid", sig), PGE_STR("holder", bar + 1),
            PGE_MS("waited", now - m->lock_started_ms),
            PGE_STR("time_left", m->o.lock_wait_ms
                                     ? pge_log_fmt_ms(m->lock_started_ms + m->o.lock_wait_ms - now,
                                                      d1, sizeof d1)
                                     : "forever"));
    }
    PQclear(res);
    pge_migrate_lock_retry(m, on_timer_try_lock);
}

static void on_try_lock(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        m->locked = 1;
    if (!pge_migrate_result_ok(m, res, PGRES_TUPLES_OK, "taking the migration lock"))
        return;
    PQclear(res);
    if (m->locked) {
        int64_t waited = now_ms() - m->lock_started_ms;
        if (m->o.state)
            m->o.state->mig.lock_wait_ms += waited;
        if (m->holder_log.seen)
            pge_info("migration lock obtained", PGE_MS("waited", waited));
        else
            pge_debug("migration lock obtained", PGE_MS("waited", waited));
        pge_migrate_locked(m);
        return;
    }
    /* Busy: say who holds it (pg_locks shows an advisory bigint key as classid/objid). */
    const char *params[2] = {m->classid, m->objid};
    pge_migrate_send(
        m,
        "SELECT a.pid::text, coalesce(nullif(a.application_name, ''), 'unknown') || ' from ' || "
        "coalesce(host(a.client_addr), 'local socket') FROM pg_locks l JOIN pg_stat_activity a "
        "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT "
        "oid FROM pg_database WHERE datname = current_database()) AND l.classid = $1::oid AND "
        "l.objid = $2::oid AND l.objsubid = 1 LIMIT 1",
        2, params, on_holder);
}

/* pg_try_advisory_lock polled with backoff: a blocked pg_advisory_lock waiter would deadlock
 * with the holder's CREATE INDEX CONCURRENTLY, which waits for every open transaction. */
static void try_lock(struct pge_migrate *m)
{
    const char *params[2] = {m->classid, m->objid};
    pge_migrate_send(m, "SELECT pg_try_advisory_lock(($1::bigint << 32) | $2::bigint)", 2, params,
                     on_try_lock);
}

static void chosen(struct pge_migrate *m, int lease, const char *why)
{
    m->lock_chosen = 1;
    m->lease = lease;
    if (!lease) {
        pge_info("migration lock: session advisory lock");
        try_lock(m);
        return;
    }
    pge_info(why, PGE_STR("table", m->qlease ? m->qlease : ""), PGE_STR("holder", m->lease_holder));
    pge_migrate_lease_start(m);
}

static long backend_pid(PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return -1;
    return strtol(PQgetvalue(res, 0, 0), NULL, 10);
}

static void on_second_pid(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_ok(m, res, PGRES_TUPLES_OK, "choosing the migration lock"))
        return;
    long pid = backend_pid(res);
    PQclear(res);
    chosen(m, 1,
           pid != m->first_backend_pid ? "migration lock: lease row (transaction pooling detected)"
                                       : "migration lock: lease row (connection pooler detected)");
}

/* The advisory lock's key, from the database's name and the schema of the history table as
 * the server sees them (a pooler's database alias is not the database). */
static void identified(struct pge_migrate *m, const PGresult *res)
{
    if (!m->schema[0])
        snprintf(m->schema, sizeof m->schema, "%s", PQgetvalue(res, 0, 2));
    const char *dot = strchr(m->o.table, '.');
    uint64_t k = (uint64_t)pge_histsql_lock_key(PQgetvalue(res, 0, 1), m->schema,
                                                dot ? dot + 1 : m->o.table);
    snprintf(m->classid, sizeof m->classid, "%" PRIu32, (uint32_t)(k >> 32));
    snprintf(m->objid, sizeof m->objid, "%" PRIu32, (uint32_t)(k & 0xffffffffu));
}

/* A pooler answers the startup with its own cancel key, so PQbackendPID() is not the server
 * process we talk to. Behind one, a session lock may stay with a pooled server connection
 * after we let go of it (transaction pooling), and whether the pooler pins our session cannot
 * be proven from here: the lease row is safe in both modes. A second look at the server pid
 * only says which mode it evidently is. */
static void on_first_pid(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_ok(m, res, PGRES_TUPLES_OK, "choosing the migration lock"))
        return;
    if (PQntuples(res) != 1 || PQnfields(res) != 3) {
        pge_migrate_query_failed(m, res, "choosing the migration lock");
        return;
    }
    m->first_backend_pid = backend_pid(res);
    identified(m, res);
    PQclear(res);
    if (m->first_backend_pid == (long)PQbackendPID(m->conn)) {
        chosen(m, 0, NULL);
        return;
    }
    pge_migrate_send(m, "SELECT pg_backend_pid()", -1, NULL, on_second_pid);
}

void pge_migrate_start_lock(struct pge_migrate *m)
{
    m->lock_started_ms = now_ms();
    show_lock(m, PGE_LOCK_WAITING, NULL);
    pge_backoff_init(
        &m->backoff, m->o.backoff_initial_ms,
        m->o.backoff_max_ms > LOCK_POLL_MAX_MS ? m->o.backoff_max_ms : LOCK_POLL_MAX_MS, m->o.seed);
    /* Chosen once per run, with the lock's key: a new session after a lost connection
     * keeps both. */
    if (!m->lock_chosen)
        pge_migrate_send(m,
                         "SELECT pg_backend_pid(), current_database(), "
                         "coalesce(current_schema(), '')",
                         -1, NULL, on_first_pid);
    else if (m->lease)
        pge_migrate_lease_try(m);
    else
        try_lock(m);
}

static void on_table_ready(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_ok(m, res, PGRES_COMMAND_OK, "creating the history table"))
        return;
    PQclear(res);
    m->rereading = 1;
    pge_migrate_read_history(m);
}

static void on_session_kept(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_back(m, res, "configuring the lock session"))
        return;
    /* A failure here (a pooler refusing SET, say) is not worth stopping for. */
    PQclear(res);
    after_session_kept(m);
}

/* The lock lives as long as the session: a server-side idle timeout (PostgreSQL 14+) must not
 * end it between two migrations or while --migrate-cmd works. */
void pge_migrate_locked(struct pge_migrate *m)
{
    show_lock(m, PGE_LOCK_HELD, NULL); /* the advisory lock or the lease */
    /* Behind a pooler a SET would stay with a server connection others get next. */
    if (!m->lease && PQserverVersion(m->conn) >= 140000) {
        pge_migrate_send(m, "SET idle_session_timeout = 0", -1, NULL, on_session_kept);
        return;
    }
    after_session_kept(m);
}

static void after_session_kept(struct pge_migrate *m)
{
    struct pge_histsql_buf b = {0};
    if (m->op == PGE_MIGRATE_COMMAND) {
        pge_migrate_run_command(m);
        return;
    }
    pge_histsql_create_table(&b, m->qtable);
    pge_migrate_send_buf(m, &b, on_table_ready);
}
