/* The migration engine: plan against the history table and apply it under the advisory lock,
 * one query at a time on the loop, cancellable at any point. */
#include "pgentry/migrate/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/backoff.h"
#include "pgentry/common/log.h"
#include "pgentry/migrate/migplan.h"
#include "pgentry/migrate/report.h"
#include "pgentry/migrate/histsql.h"
#include "pgentry/db/pgquery.h"
#include "pgentry/migrate/sqlsplit.h"
#include "pgentry/supervise/supervisor.h"

#define STOP_GRACE_MS    5000 /* cancel + rollback + unlock must fit in this after a stop */
#define LOCK_POLL_MAX_MS 1000 /* lock polling slows down to this */
#define WAIT_POLL_MAX_MS 500  /* --wait-migrations re-reads at least this often */
#define FIRST_REPEAT_LOG 1000
#define MAX_REPEAT_LOG   30000
#define NOTIFY_CHANNEL   "pgentry_migrations"

struct cancel_job {
    struct pge_workqueue_job job;
    PGcancel *cancel;
};

struct pge_migrate {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    PGconn *conn;
    struct pge_pgquery *q;
    struct pge_migrate_opts o;
    pge_migrate_cb cb;
    void *arg;
    enum pge_migrate_op op;
    const char *target;

    char *qtable;     /* "schema"."table" */
    char schema[128]; /* for messages */
    char classid[16], objid[16];
    char applied_by[128];

    PGresult *hist;
    struct pge_migplan_row *rows;
    size_t nrows;
    struct pge_migplan plan;
    int rereading; /* the history is being read again under the lock */

    int locked;
    int64_t lock_started_ms;
    struct pge_backoff backoff;
    ev_timer timer;
    char holder_sig[256];
    int64_t holder_logged_ms, holder_log_every_ms;
    int64_t wait_deadline_ms;
    int listening;

    /* the migration being run */
    size_t item;
    char *text;
    size_t text_len;
    const char *path;
    int no_tx;
    int in_tx;
    struct pge_sqlsplit split;
    struct pge_sqlsplit_stmt stmt;
    unsigned stmts_done; /* statements of this migration that completed */
    int64_t item_started_ms;
    int64_t lock_retry_started_ms;
    char checksum[PGE_MIGFILE_CHECKSUM_LEN + 1];
    unsigned applied_now;

    ev_io notify_io; /* --wait-migrations: a NOTIFY wakes us before the poll timer */

    /* --migrate-cmd */
    pid_t cmd_pid;
    ev_child cmd_child;
    ev_io lock_watch; /* the lock's session while the command runs: it must not go away */
    int lock_lost;

    /* stopping */
    int stop_signo;
    ev_timer stop_timer;
    struct pge_outcome pending; /* reported once the lock is released */
    int finished;
    ev_timer kick;
};

static int64_t now_ms(void)
{
    return pge_runstate_mono_ms();
}

/* ---- ending ------------------------------------------------------------------------------ */

static void free_item(struct pge_migrate *m)
{
    free(m->text);
    m->text = NULL;
    m->in_tx = 0;
}

static void finish(struct pge_migrate *m, struct pge_outcome out)
{
    if (m->finished)
        return;
    m->finished = 1;
    ev_timer_stop(m->loop, &m->timer);
    ev_timer_stop(m->loop, &m->stop_timer);
    ev_timer_stop(m->loop, &m->kick);
    ev_io_stop(m->loop, &m->notify_io);
    free_item(m);
    m->cb(m->arg, out);
}

static void on_unlocked(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int held = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
               strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    m->locked = 0;
    if (!held && m->op == PGE_MIGRATE_COMMAND && m->pending.kind == PGE_OUT_OK) {
        /* Our own migrations are protected by the history's primary key even then; an
         * external command is not: it may have run next to another one. */
        pge_error("the migration lock was not held any more when the migrate command ended: "
                  "another instance may have migrated at the same time; not starting the app");
        finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    finish(m, m->pending);
}

/* Release the lock (if held) and report out. The lock is session-level: closing the
 * connection would release it too, but an explicit unlock lets waiting replicas go at once. */
static void release_and_finish(struct pge_migrate *m, struct pge_outcome out)
{
    m->pending = out;
    if (m->locked && m->q && !pge_pgquery_busy(m->q) && PQstatus(m->conn) == CONNECTION_OK) {
        char sql[256];
        /* Replicas in --wait-migrations LISTEN: tell them once, when the work is done. */
        snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock((%s::bigint << 32) | %s::bigint)%s",
                 m->classid, m->objid, m->applied_now ? "; NOTIFY " NOTIFY_CHANNEL : "");
        if (pge_pgquery_send(m->q, sql, -1, NULL, on_unlocked, m) == 0)
            return;
    }
    finish(m, out);
}

static void on_rolled_back_then_release(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    PQclear(res);
    m->in_tx = 0;
    release_and_finish(m, m->pending);
}

/* Leave any open transaction, release the lock, report out. */
static void abort_with(struct pge_migrate *m, struct pge_outcome out)
{
    m->pending = out;
    ev_timer_stop(m->loop, &m->timer);
    if (m->in_tx && m->q && !pge_pgquery_busy(m->q) &&
        pge_pgquery_send(m->q, "ROLLBACK", -1, NULL, on_rolled_back_then_release, m) == 0)
        return;
    release_and_finish(m, out);
}

/* Every query callback starts here: after a stop, whatever came back, wind down. */
static int stopping(struct pge_migrate *m, PGresult *res)
{
    if (!m->stop_signo)
        return 0;
    PQclear(res);
    if (m->text && m->no_tx && m->stmts_done > 0) {
        /* Nothing can roll back what a no-transaction migration already committed. */
        const struct pge_migplan_item *it = &m->plan.items[m->item];
        char where[600];
        snprintf(where, sizeof where, "%s:%u", m->path, m->stmt.line);
        pge_error("stopped inside a no-transaction migration: the statements it completed stay "
                  "committed and it is not recorded; make them idempotent (IF NOT EXISTS) or "
                  "repair by hand, then run again",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_INT("statements_committed", m->stmts_done), PGE_STR("stopped_at", where));
    }
    abort_with(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
    return 1;
}

static void lost_connection(struct pge_migrate *m, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(m->conn));
    msg[strcspn(msg, "\n")] = '\0';
    pge_error("lost the database connection", PGE_STR("during", what), PGE_STR("error", msg));
    m->locked = 0;
    m->in_tx = 0;
    finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

/* A query failed outside a migration's own statements. */
static void query_failed(struct pge_migrate *m, PGresult *res, const char *what)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char msg[512];
    snprintf(msg, sizeof msg, "%s",
             PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                 ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                 : PQresultErrorMessage(res));
    pge_error("database query failed", PGE_STR("during", what), PGE_STR("sqlstate", st ? st : ""),
              PGE_STR("error", msg));
    PQclear(res);
    /* 3F000: the schema of --table does not exist; 42501: no right to create the table. */
    if (st && (strcmp(st, "3F000") == 0 || strcmp(st, "42501") == 0))
        abort_with(m, PGE_OUTCOME(PGE_OUT_CONFIG, 0));
    else
        abort_with(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

static int send_query(struct pge_migrate *m, const char *sql, int nparams,
                      const char *const *params, pge_pgquery_cb cb)
{
    if (pge_pgquery_send(m->q, sql, nparams, params, cb, m) == 0)
        return 0;
    lost_connection(m, "sending a query");
    return -1;
}

/* ---- state for the health endpoint -------------------------------------------------------- */

static void publish(struct pge_migrate *m)
{
    struct pge_runstate *st = m->o.state;
    if (!st)
        return;
    st->mig.known = 1;
    snprintf(st->mig.current, sizeof st->mig.current, "%s", m->plan.head_text);
    st->mig.applied =
        (unsigned)(m->plan.states[PGE_MIGPLAN_IS_APPLIED] + m->plan.states[PGE_MIGPLAN_IS_DRIFT] +
                   m->plan.states[PGE_MIGPLAN_IS_MISSING]);
    st->mig.pending = (unsigned)(m->plan.states[PGE_MIGPLAN_IS_PENDING] +
                                 m->plan.states[PGE_MIGPLAN_IS_OUT_OF_ORDER]);
}

/* ---- the history -------------------------------------------------------------------------- */

static void read_history(struct pge_migrate *m);
static void after_history(struct pge_migrate *m);

static int load_rows(struct pge_migrate *m, PGresult *res)
{
    int n = PQntuples(res);
    free(m->rows);
    m->rows = calloc((size_t)n + 1, sizeof *m->rows);
    if (!m->rows)
        return -1;
    for (int i = 0; i < n; i++) {
        m->rows[i].version = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        m->rows[i].name = PQgetvalue(res, i, 1);
        m->rows[i].checksum = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        m->rows[i].applied_at = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
    }
    m->nrows = (size_t)n;
    PQclear(m->hist);
    m->hist = res;
    return 0;
}

static void on_history(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "reading the migration history");
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* No table (or no schema) yet: nothing has been applied. */
        if (st && (strcmp(st, "42P01") == 0 || strcmp(st, "3F000") == 0)) {
            PQclear(res);
            PQclear(m->hist);
            m->hist = NULL;
            m->nrows = 0;
            after_history(m);
            return;
        }
        query_failed(m, res, "reading the migration history");
        return;
    }
    if (load_rows(m, res) < 0) {
        PQclear(res);
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    after_history(m);
}

static void read_history(struct pge_migrate *m)
{
    char sql[512];
    if (!m->conn) {
        m->nrows = 0;
        after_history(m);
        return;
    }
    snprintf(sql, sizeof sql,
             "SELECT version, name, checksum, applied_at::text FROM %s ORDER BY version",
             m->qtable);
    send_query(m, sql, 0, NULL, on_history);
}

/* ---- the lock ----------------------------------------------------------------------------- */

static void try_lock(struct pge_migrate *m);
static void locked(struct pge_migrate *m);

static void on_timer_try_lock(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    try_lock(w->data);
}

static void on_holder(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int64_t now = now_ms(), delay = 0;
    char sig[256], d1[32];
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "looking up the migration lock holder");
        return;
    }
    /* No row: the holder let go between our two queries; just try again. */
    int known = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    if (known)
        snprintf(sig, sizeof sig, "%s|%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    else
        snprintf(sig, sizeof sig, "%s", m->holder_sig);
    int changed = known && strcmp(sig, m->holder_sig) != 0;
    if (known && (changed || now - m->holder_logged_ms >= m->holder_log_every_ms)) {
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
        *bar = '|';
        if (changed) {
            snprintf(m->holder_sig, sizeof m->holder_sig, "%s", sig);
            m->holder_log_every_ms = FIRST_REPEAT_LOG;
        } else if (m->holder_log_every_ms < MAX_REPEAT_LOG) {
            m->holder_log_every_ms *= 2;
        }
        m->holder_logged_ms = now;
    }
    PQclear(res);
    int64_t deadline = m->o.lock_wait_ms ? m->lock_started_ms + m->o.lock_wait_ms : 0;
    if (pge_backoff_next(&m->backoff, now, deadline, &delay) == PGE_BACKOFF_EXPIRED) {
        pge_error("gave up waiting for the migration lock (--lock-wait): another pgentry is "
                  "migrating this database",
                  PGE_MS("waited", now - m->lock_started_ms));
        finish(m, PGE_OUTCOME(PGE_OUT_LOCK_TIMEOUT, 0));
        return;
    }
    ev_timer_stop(m->loop, &m->timer);
    ev_timer_init(&m->timer, on_timer_try_lock, (double)delay / 1000.0, 0.0);
    m->timer.data = m;
    ev_timer_start(m->loop, &m->timer);
}

static void on_try_lock(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        m->locked = 1;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "taking the migration lock");
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        query_failed(m, res, "taking the migration lock");
        return;
    }
    PQclear(res);
    if (m->locked) {
        int64_t waited = now_ms() - m->lock_started_ms;
        if (m->o.state)
            m->o.state->mig.lock_wait_ms += waited;
        if (m->holder_sig[0])
            pge_info("migration lock obtained", PGE_MS("waited", waited));
        else
            pge_debug("migration lock obtained", PGE_MS("waited", waited));
        locked(m);
        return;
    }
    /* Busy: say who holds it (pg_locks shows an advisory bigint key as classid/objid). */
    const char *params[2] = {m->classid, m->objid};
    send_query(
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
    send_query(m, "SELECT pg_try_advisory_lock(($1::bigint << 32) | $2::bigint)", 2, params,
               on_try_lock);
}

static void start_lock(struct pge_migrate *m)
{
    m->lock_started_ms = now_ms();
    pge_backoff_init(
        &m->backoff, m->o.backoff_initial_ms,
        m->o.backoff_max_ms > LOCK_POLL_MAX_MS ? m->o.backoff_max_ms : LOCK_POLL_MAX_MS, m->o.seed);
    m->holder_log_every_ms = FIRST_REPEAT_LOG;
    try_lock(m);
}

/* ---- running one migration ---------------------------------------------------------------- */

static void next_item(struct pge_migrate *m);
static void next_statement(struct pge_migrate *m);
static void start_item(struct pge_migrate *m);

static const struct pge_migplan_item *cur(const struct pge_migrate *m)
{
    return &m->plan.items[m->item];
}

static void on_timer_retry_item(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    start_item(w->data);
}

/* What state the database is in now, for error messages. */
static void describe_state(const struct pge_migrate *m, char *buf, size_t size)
{
    if (m->item == 0) {
        snprintf(buf, size, "database unchanged at version %s", m->plan.head_text);
        return;
    }
    const struct pge_migplan_item *prev = &m->plan.items[m->item - 1];
    if (prev->action == PGE_MIGPLAN_DO_APPLY)
        snprintf(buf, size,
                 "database at version %s: %zu migration(s) applied by this run, %zu "
                 "pending",
                 prev->version_text, m->item, m->plan.count - m->item);
    else
        snprintf(buf, size, "%zu migration(s) reverted by this run, down to before version %s",
                 m->item, prev->version_text);
}

static void on_rolled_back_failure(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    PQclear(res);
    m->in_tx = 0;
    release_and_finish(m, m->pending);
}

static void on_rolled_back_retry(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    m->in_tx = 0;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "rolling back");
        return;
    }
    PQclear(res);
    ev_timer_start(m->loop, &m->timer);
}

/* A statement of the migration failed: report it with its file and line, roll back. */
static void statement_failed(struct pge_migrate *m, PGresult *res)
{
    const struct pge_migplan_item *it = cur(m);
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    unsigned line = m->stmt.line;
    char where[600], state_desc[256];

    if (pos) {
        size_t off = pge_sqlsplit_char_offset(m->text + m->stmt.offset, m->stmt.length,
                                              strtoul(pos, NULL, 10) - 1);
        line = pge_sqlsplit_line_at(m->text, m->text_len, m->stmt.offset + off);
    }
    snprintf(where, sizeof where, "%s:%u", m->path, line);

    /* lock_timeout fired: somebody holds a lock we need; retry the whole migration later. */
    if (st && strcmp(st, "55P03") == 0 && m->o.lock_timeout_ms > 0 &&
        (m->in_tx || m->stmts_done == 0)) {
        int64_t now = now_ms(), delay = 0;
        int64_t deadline = m->o.lock_wait_ms ? m->lock_retry_started_ms + m->o.lock_wait_ms : 0;
        if (pge_backoff_next(&m->backoff, now, deadline, &delay) != PGE_BACKOFF_EXPIRED) {
            pge_warn("migration hit lock_timeout: rolled back, will retry",
                     PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                     PGE_STR("at", where), PGE_MS("next_delay", delay));
            PQclear(res);
            free(m->text);
            m->text = NULL;
            m->pending = PGE_OUTCOME(PGE_OUT_OK, 0);
            ev_timer_stop(m->loop, &m->timer);
            ev_timer_init(&m->timer, on_timer_retry_item, (double)delay / 1000.0, 0.0);
            m->timer.data = m;
            if (!m->in_tx) {
                /* Nothing of a no-transaction migration ran yet: just try again later. */
                ev_timer_start(m->loop, &m->timer);
                return;
            }
            /* ROLLBACK first, then the timer. */
            if (pge_pgquery_send(m->q, "ROLLBACK", -1, NULL, on_rolled_back_retry, m) < 0)
                lost_connection(m, "rolling back");
            return;
        }
    }

    describe_state(m, state_desc, sizeof state_desc);
    if (m->no_tx) {
        pge_error("migration failed; it runs without a transaction, so the statements before "
                  "this one stay committed: make them idempotent (IF NOT EXISTS) or repair by "
                  "hand, then run again",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR("at", where), PGE_STR("sqlstate", st ? st : ""),
                  PGE_STR("error", primary ? primary : PQresultErrorMessage(res)),
                  PGE_STR("detail", detail ? detail : ""), PGE_STR("state", state_desc));
    } else {
        pge_error("migration failed and was rolled back: nothing of it was applied",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR("at", where), PGE_STR("sqlstate", st ? st : ""),
                  PGE_STR("error", primary ? primary : PQresultErrorMessage(res)),
                  PGE_STR("detail", detail ? detail : ""), PGE_STR("state", state_desc));
    }
    PQclear(res);
    m->pending = PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0);
    if (m->in_tx) {
        if (pge_pgquery_send(m->q, "ROLLBACK", -1, NULL, on_rolled_back_failure, m) < 0)
            lost_connection(m, "rolling back");
        return;
    }
    release_and_finish(m, m->pending);
}

static void on_recorded(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    const struct pge_migplan_item *it;
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok)
        m->in_tx = 0;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "recording the migration");
        return;
    }
    if (!ok) {
        statement_failed(m, res);
        return;
    }
    PQclear(res);
    it = cur(m);
    int64_t ms = now_ms() - m->item_started_ms;
    if (it->action == PGE_MIGPLAN_DO_APPLY) {
        pge_info("migration applied", PGE_STR("migration", it->version_text),
                 PGE_STR("name", it->name), PGE_MS("duration", ms),
                 PGE_STR("transaction", m->no_tx ? "none" : "one"));
        if (m->o.state) {
            m->o.state->mig.applied_this_run++;
            m->o.state->mig.applied_seconds_sum += (double)ms / 1000.0;
            m->o.state->mig.applied++;
            if (m->o.state->mig.pending)
                m->o.state->mig.pending--;
            snprintf(m->o.state->mig.current, sizeof m->o.state->mig.current, "%s",
                     it->version_text);
        }
    } else {
        pge_info("migration reverted", PGE_STR("migration", it->version_text),
                 PGE_STR("name", it->name), PGE_MS("duration", ms));
    }
    m->applied_now++;
    free_item(m);
    m->item++;
    next_item(m);
}

static void record(struct pge_migrate *m)
{
    const struct pge_migplan_item *it = cur(m);
    struct pge_histsql_buf b = {0};
    if (it->action == PGE_MIGPLAN_DO_APPLY)
        pge_histsql_insert(&b, m->qtable, it->version, it->name, m->checksum,
                           m->no_tx ? now_ms() - m->item_started_ms : -1, m->applied_by);
    else
        pge_histsql_delete(&b, m->qtable, it->version);
    if (m->no_tx && m->o.lock_timeout_ms > 0)
        pge_histsql_appendf(&b, "; RESET lock_timeout");
    if (!m->no_tx)
        pge_histsql_appendf(&b, "; COMMIT");
    if (b.failed) {
        pge_histsql_buf_free(&b);
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    /* The record step has no statement of the file: errors point at its last line. */
    m->stmt.offset = m->text_len;
    m->stmt.length = 0;
    m->stmt.line = pge_sqlsplit_line_at(m->text, m->text_len, m->text_len);
    send_query(m, b.s, -1, NULL, on_recorded);
    pge_histsql_buf_free(&b);
}

static void on_statement(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "running a migration");
        return;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        statement_failed(m, res);
        return;
    }
    PQclear(res);
    m->stmts_done++;
    if (m->in_tx && PQtransactionStatus(m->conn) != PQTRANS_INTRANS) {
        /* Something (a procedure that commits, say) ended pgentry's transaction: what ran so
         * far is committed and cannot be taken back. Stop before anything else runs. */
        const struct pge_migplan_item *it = cur(m);
        char where[600];
        snprintf(where, sizeof where, "%s:%u", m->path, m->stmt.line);
        pge_error("a statement ended the migration's transaction: the statements before it are "
                  "committed, the migration is not recorded; remove the transaction control "
                  "or mark the file -- pgentry:no-transaction, repair, then run again",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR("at", where));
        m->in_tx = 0;
        release_and_finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    next_statement(m);
}

/* A migration that pgentry wraps in a transaction must not manage its own: refuse the file
 * before anything of it runs. Returns 0, or -1 after reporting. */
static int check_transaction_control(struct pge_migrate *m)
{
    struct pge_sqlsplit sp;
    struct pge_sqlsplit_stmt st;
    pge_sqlsplit_init(&sp, m->text, m->text_len);
    while (pge_sqlsplit_next(&sp, &st) == PGE_SQLSPLIT_STMT) {
        if (!pge_histsql_is_transaction_control(m->text + st.offset, st.length))
            continue;
        const struct pge_migplan_item *it = cur(m);
        char where[600];
        snprintf(where, sizeof where, "%s:%u", m->path, st.line);
        pge_error("migration controls its own transaction, but pgentry already runs it in one "
                  "(with its history row): remove BEGIN/COMMIT/ROLLBACK, or put "
                  "-- pgentry:no-transaction on its first line; nothing was run",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR("at", where));
        return -1;
    }
    return 0;
}

static void next_statement(struct pge_migrate *m)
{
    const struct pge_migplan_item *it = cur(m);
    switch (pge_sqlsplit_next(&m->split, &m->stmt)) {
    case PGE_SQLSPLIT_STMT: {
        /* libpq copies the query at once, so a NUL can stand in the file text meanwhile. */
        char *end = m->text + m->stmt.offset + m->stmt.length;
        char saved = *end;
        *end = '\0';
        int rc = pge_pgquery_send(m->q, m->text + m->stmt.offset, -1, NULL, on_statement, m);
        *end = saved;
        if (rc < 0)
            lost_connection(m, "running a migration");
        return;
    }
    case PGE_SQLSPLIT_END:
        record(m);
        return;
    case PGE_SQLSPLIT_UNTERMINATED: {
        char where[600];
        snprintf(where, sizeof where, "%s:%u", m->path, m->stmt.line);
        pge_error("migration has an unterminated construct: close it and run again",
                  PGE_STR("migration", it->version_text), PGE_STR("at", where),
                  PGE_STR("what", pge_sqlsplit_what(&m->split)));
        abort_with(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    }
}

static void on_began(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok && !m->no_tx)
        m->in_tx = 1;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "starting a migration");
        return;
    }
    if (!ok) {
        query_failed(m, res, "starting a migration");
        return;
    }
    PQclear(res);
    next_statement(m);
}

static void start_item(struct pge_migrate *m)
{
    const struct pge_migplan_item *it = cur(m);
    char err[1024];
    int down = it->action == PGE_MIGPLAN_DO_REVERT;
    struct pge_histsql_buf b = {0};

    m->path = down ? it->file->down_path : it->file->up_path;
    free(m->text);
    m->text = NULL;
    enum pge_migfile_result r =
        pge_migfile_read(m->path, &m->text, &m->text_len, m->checksum, err, sizeof err);
    if (r != PGE_MIGFILE_OK) {
        pge_error(err);
        abort_with(m, PGE_OUTCOME(pge_migfile_outcome(r), 0));
        return;
    }
    if (!down && strcmp(m->checksum, it->file->checksum) != 0) {
        pge_error("migration file changed while pgentry was running: run again",
                  PGE_STR("file", m->path));
        abort_with(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    m->no_tx = pge_migfile_no_transaction(m->text, m->text_len);
    if (!m->no_tx && check_transaction_control(m) < 0) {
        abort_with(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    m->stmts_done = 0;
    pge_sqlsplit_init(&m->split, m->text, m->text_len);
    m->item_started_ms = now_ms();
    pge_debug(down ? "reverting migration" : "applying migration",
              PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
              PGE_STR("file", m->path));
    if (m->no_tx) {
        if (m->o.lock_timeout_ms <= 0) {
            next_statement(m);
            return;
        }
        pge_histsql_lock_timeout(&b, m->o.lock_timeout_ms, 0);
    } else {
        pge_histsql_appendf(&b, "BEGIN");
        if (m->o.lock_timeout_ms > 0) {
            pge_histsql_appendf(&b, "; ");
            pge_histsql_lock_timeout(&b, m->o.lock_timeout_ms, 1);
        }
    }
    if (b.failed) {
        pge_histsql_buf_free(&b);
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    send_query(m, b.s, -1, NULL, on_began);
    pge_histsql_buf_free(&b);
}

static void on_stamped(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "stamping");
        return;
    }
    if (!ok) {
        query_failed(m, res, "stamping");
        return;
    }
    PQclear(res);
    pge_info("history stamped: no SQL was run", PGE_STR("target", m->target ? m->target : "head"),
             PGE_INT("changed_rows", (long long)m->plan.count));
    release_and_finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
}

/* Stamp rows in one transaction: all recorded or none. */
static void stamp(struct pge_migrate *m, FILE *print_to)
{
    struct pge_histsql_buf b = {0};
    pge_histsql_appendf(&b, "BEGIN;\n");
    for (size_t i = 0; i < m->plan.count; i++) {
        const struct pge_migplan_item *it = &m->plan.items[i];
        if (it->action == PGE_MIGPLAN_DO_RECORD)
            pge_histsql_insert(&b, m->qtable, it->version, it->name, it->file->checksum, 0,
                               m->applied_by);
        else
            pge_histsql_delete(&b, m->qtable, it->version);
        pge_histsql_appendf(&b, ";\n");
    }
    pge_histsql_appendf(&b, "COMMIT;\n");
    if (b.failed) {
        pge_histsql_buf_free(&b);
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    if (print_to) {
        fputs(b.s, print_to);
        pge_histsql_buf_free(&b);
        finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    send_query(m, b.s, -1, NULL, on_stamped);
    pge_histsql_buf_free(&b);
}

static void next_item(struct pge_migrate *m)
{
    if (m->stop_signo) {
        abort_with(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
        return;
    }
    if (m->item == m->plan.count) {
        if (m->op == PGE_MIGRATE_UPGRADE)
            pge_info("database is up to date",
                     PGE_STR("version", m->o.state && m->o.state->mig.known
                                            ? m->o.state->mig.current
                                            : m->plan.head_text),
                     PGE_INT("applied_now", m->applied_now));
        release_and_finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    m->lock_retry_started_ms = now_ms();
    pge_backoff_init(&m->backoff, m->o.backoff_initial_ms * 10, m->o.backoff_max_ms * 20,
                     m->o.seed ^ (uint64_t)m->item);
    start_item(m);
}

/* ---- --sql --------------------------------------------------------------------------------- */

static void print_sql(struct pge_migrate *m)
{
    struct pge_histsql_buf b = {0};
    char err[1024];
    pge_histsql_create_table(&b, m->qtable);
    printf("-- pgentry %s: %s %s; nothing was run\n%s;\n", PGENTRY_VERSION,
           m->op == PGE_MIGRATE_UPGRADE ? "upgrade" : "downgrade", m->target ? m->target : "head",
           b.s ? b.s : "");
    pge_histsql_buf_free(&b);
    for (size_t i = 0; i < m->plan.count; i++) {
        const struct pge_migplan_item *it = &m->plan.items[i];
        int down = it->action == PGE_MIGPLAN_DO_REVERT;
        const char *path = down ? it->file->down_path : it->file->up_path;
        char *text = NULL;
        size_t len = 0;
        char sum[PGE_MIGFILE_CHECKSUM_LEN + 1];
        enum pge_migfile_result r = pge_migfile_read(path, &text, &len, sum, err, sizeof err);
        if (r != PGE_MIGFILE_OK) {
            pge_error(err);
            finish(m, PGE_OUTCOME(pge_migfile_outcome(r), 0));
            return;
        }
        int no_tx = pge_migfile_no_transaction(text, len);
        printf("\n-- %s %s_%s (%s)\n", down ? "revert" : "apply", it->version_text, it->name, path);
        if (!no_tx) {
            printf("BEGIN;\n");
            if (m->o.lock_timeout_ms > 0)
                printf("SET LOCAL lock_timeout = '%lldms';\n", (long long)m->o.lock_timeout_ms);
        } else if (m->o.lock_timeout_ms > 0) {
            printf("SET lock_timeout = '%lldms';\n", (long long)m->o.lock_timeout_ms);
        }
        fwrite(text, 1, len, stdout);
        if (len && text[len - 1] != '\n')
            putchar('\n');
        /* A last statement without ';' must not swallow the history row. */
        struct pge_sqlsplit sp;
        struct pge_sqlsplit_stmt st, last = {0, 0, 0};
        pge_sqlsplit_init(&sp, text, len);
        while (pge_sqlsplit_next(&sp, &st) == PGE_SQLSPLIT_STMT)
            last = st;
        if (last.length && text[last.offset + last.length - 1] != ';')
            printf(";\n");
        free(text);
        b = (struct pge_histsql_buf){0};
        if (down)
            pge_histsql_delete(&b, m->qtable, it->version);
        else
            pge_histsql_insert(&b, m->qtable, it->version, it->name, sum, no_tx ? 0 : -1,
                               m->applied_by);
        printf("%s;\n", b.s ? b.s : "");
        pge_histsql_buf_free(&b);
        if (no_tx && m->o.lock_timeout_ms > 0)
            printf("RESET lock_timeout;\n");
        if (!no_tx)
            printf("COMMIT;\n");
    }
    fflush(stdout);
    finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
}

/* ---- --wait-migrations ------------------------------------------------------------------- */

static void on_timer_reread(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)revents;
    ev_io_stop(loop, &m->notify_io);
    read_history(m);
}

static void on_notify_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_migrate *m = w->data;
    PGnotify *n;
    int got = 0;
    (void)revents;
    if (!PQconsumeInput(m->conn)) {
        ev_io_stop(loop, w);
        ev_timer_stop(loop, &m->timer);
        lost_connection(m, "waiting for migrations");
        return;
    }
    while ((n = PQnotifies(m->conn))) {
        got = 1;
        PQfreemem(n);
    }
    if (got) {
        ev_io_stop(loop, w);
        ev_timer_stop(loop, &m->timer);
        read_history(m);
    }
}

static void on_listen(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (stopping(m, res))
        return;
    PQclear(res);
    m->listening = 1;
    read_history(m);
}

/* The migrating replica NOTIFYs after each migration; poll too, in case it is an older tool. */
static void wait_again(struct pge_migrate *m)
{
    int64_t now = now_ms(), delay = 0;
    if (pge_backoff_next(&m->backoff, now, m->wait_deadline_ms, &delay) == PGE_BACKOFF_EXPIRED) {
        pge_error("gave up waiting for migrations to be applied (--wait-timeout)",
                  PGE_STR("current", m->plan.head_text),
                  PGE_INT("pending", (long long)m->plan.count));
        finish(m, PGE_OUTCOME(PGE_OUT_NOT_READY, 0));
        return;
    }
    ev_timer_stop(m->loop, &m->timer);
    ev_timer_init(&m->timer, on_timer_reread, (double)delay / 1000.0, 0.0);
    m->timer.data = m;
    ev_timer_start(m->loop, &m->timer);
    ev_io_stop(m->loop, &m->notify_io);
    ev_io_set(&m->notify_io, PQsocket(m->conn), EV_READ);
    ev_io_start(m->loop, &m->notify_io);
}

/* ---- after reading the history ------------------------------------------------------------ */

static void warn_ahead(const struct pge_migrate *m)
{
    for (size_t i = 0; i < m->plan.nahead; i++)
        pge_warn("database has a migration these files do not know (a newer release applied "
                 "it?): continuing",
                 PGE_STR("version", m->plan.ahead[i].version_text),
                 PGE_STR("name", m->plan.ahead[i].name));
}

static void after_history(struct pge_migrate *m)
{
    char err[1024];
    enum pge_migplan_result r;
    const struct pge_migset *f = m->o.files;

    pge_migplan_free(&m->plan);
    switch (m->op) {
    case PGE_MIGRATE_UPGRADE:
    case PGE_MIGRATE_WAIT:
        r = pge_migplan_upgrade(&m->plan, f, m->rows, m->nrows,
                                m->op == PGE_MIGRATE_WAIT ? NULL : m->target, err, sizeof err);
        break;
    case PGE_MIGRATE_DOWNGRADE:
        r = pge_migplan_downgrade(&m->plan, f, m->rows, m->nrows, m->target, err, sizeof err);
        break;
    case PGE_MIGRATE_STAMP:
        r = pge_migplan_stamp(&m->plan, f, m->rows, m->nrows, m->target, err, sizeof err);
        break;
    case PGE_MIGRATE_VERIFY:
        r = pge_migplan_verify(&m->plan, f, m->rows, m->nrows, err, sizeof err);
        break;
    default:
        r = pge_migplan_history(&m->plan, f, m->rows, m->nrows, err, sizeof err);
        break;
    }
    if (r != PGE_MIGPLAN_OK) {
        pge_error(err);
        abort_with(m, PGE_OUTCOME(pge_migplan_outcome(r), 0));
        return;
    }
    if (!m->rereading)
        warn_ahead(m);
    publish(m);
    if (m->o.state && m->op == PGE_MIGRATE_UPGRADE)
        m->o.state->mig.pending = (unsigned)m->plan.count;

    switch (m->op) {
    case PGE_MIGRATE_CURRENT:
        printf("%s\n", m->plan.head_text);
        fflush(stdout);
        finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    case PGE_MIGRATE_HISTORY:
    case PGE_MIGRATE_STATUS:
        pge_report_print(stdout, &m->plan, m->op == PGE_MIGRATE_STATUS, m->o.table);
        fflush(stdout);
        finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    case PGE_MIGRATE_VERIFY:
        printf("ok: every applied migration matches its file (%zu applied)\n",
               m->plan.states[PGE_MIGPLAN_IS_APPLIED]);
        fflush(stdout);
        finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    case PGE_MIGRATE_WAIT:
        if (m->plan.count == 0) {
            pge_info("every migration is applied", PGE_STR("version", m->plan.head_text));
            finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
            return;
        }
        if (!m->listening) {
            pge_info("waiting for another instance to apply migrations",
                     PGE_STR("current", m->plan.head_text),
                     PGE_INT("pending", (long long)m->plan.count));
            send_query(m, "LISTEN " NOTIFY_CHANNEL, -1, NULL, on_listen);
            return;
        }
        wait_again(m);
        return;
    default:
        break;
    }

    /* upgrade, downgrade, stamp */
    if (m->o.sql_only) {
        if (m->op == PGE_MIGRATE_STAMP)
            stamp(m, stdout);
        else
            print_sql(m);
        return;
    }
    if (m->plan.count == 0) {
        /* The fast path: nothing to do, no lock taken (or, re-read under it, nothing left). */
        if (m->op == PGE_MIGRATE_UPGRADE)
            pge_info("database is up to date", PGE_STR("version", m->plan.head_text));
        else
            pge_info("nothing to do", PGE_STR("version", m->plan.head_text));
        release_and_finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (!m->locked) {
        start_lock(m);
        return;
    }
    if (m->op == PGE_MIGRATE_STAMP) {
        stamp(m, NULL);
        return;
    }
    pge_info(m->op == PGE_MIGRATE_UPGRADE ? "applying migrations" : "reverting migrations",
             PGE_STR("from", m->plan.head_text), PGE_INT("count", (long long)m->plan.count));
    m->item = 0;
    next_item(m);
}

/* ---- --migrate-cmd ------------------------------------------------------------------------- */

static void on_lock_watch(struct ev_loop *loop, ev_io *w, int revents);

static void on_cmd_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_migrate *m = w->data;
    int st = w->rstatus;
    (void)revents;
    if (!WIFEXITED(st) && !WIFSIGNALED(st))
        return;
    ev_child_stop(loop, w);
    ev_io_stop(loop, &m->lock_watch);
    m->cmd_pid = 0;
    if (m->lock_lost) {
        finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    if (m->stop_signo) {
        abort_with(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
        return;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        pge_info("migrate command succeeded", PGE_STR("command", m->o.migrate_cmd));
        release_and_finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    pge_error(
        "migrate command failed: the application is not started",
        PGE_STR("command", m->o.migrate_cmd),
        PGE_INT(WIFEXITED(st) ? "code" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st)));
    release_and_finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

static void run_command(struct pge_migrate *m)
{
    char **env;
    size_t n = 0, k = 0;
    for (char **e = m->o.envp; e && *e; e++)
        n++;
    env = calloc(n + 2, sizeof *env);
    char *url = NULL;
    if (!env) {
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    for (char **e = m->o.envp; e && *e; e++)
        if (!m->o.database_url || strncmp(*e, "DATABASE_URL=", 13) != 0)
            env[k++] = *e;
    if (m->o.database_url) {
        url = malloc(strlen(m->o.database_url) + 14);
        if (!url) {
            free(env);
            abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
            return;
        }
        sprintf(url, "DATABASE_URL=%s", m->o.database_url);
        env[k++] = url;
    }
    env[k] = NULL;
    pge_info("running migrate command under the migration lock",
             PGE_STR("command", m->o.migrate_cmd));
    fflush(stdout);
    char *argv[] = {"/bin/sh", "-c", (char *)m->o.migrate_cmd, NULL};
    pid_t pid = pge_supervisor_spawn("/bin/sh", argv, env, m->o.orig_mask);
    int e = errno;
    free(url);
    free(env);
    if (pid < 0) {
        pge_error("could not start the migrate command", PGE_STR("error", strerror(e)));
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    m->cmd_pid = pid;
    ev_child_init(&m->cmd_child, on_cmd_exit, pid, 0);
    m->cmd_child.data = m;
    ev_child_start(m->loop, &m->cmd_child);
    /* Idle while the command works, the session must still be there: it holds the lock. */
    ev_io_set(&m->lock_watch, PQsocket(m->conn), EV_READ);
    ev_io_start(m->loop, &m->lock_watch);
}

static void on_lock_watch(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)revents;
    if (PQconsumeInput(m->conn) && PQstatus(m->conn) == CONNECTION_OK)
        return; /* a notice or a parameter change: the session lives */
    ev_io_stop(loop, w);
    m->lock_lost = 1;
    m->locked = 0;
    char why[256];
    snprintf(why, sizeof why, "%s", PQerrorMessage(m->conn));
    why[strcspn(why, "\n")] = '\0';
    pge_error("lost the database session holding the migration lock while the migrate command "
              "ran: another instance could migrate at the same time; stopping the command, the "
              "app is not started",
              PGE_STR("error", why));
    if (m->cmd_pid > 0) {
        kill(-m->cmd_pid, SIGTERM);
        ev_timer_set(&m->stop_timer, (double)m->o.stop_timeout_ms / 1000.0, 0.0);
        ev_timer_start(m->loop, &m->stop_timer);
    }
}

/* ---- entry points ------------------------------------------------------------------------- */

static void on_table_ready(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "creating the history table");
        return;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        query_failed(m, res, "creating the history table");
        return;
    }
    PQclear(res);
    m->rereading = 1;
    read_history(m);
}

static void after_session_kept(struct pge_migrate *m);

static void on_session_kept(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "configuring the lock session");
        return;
    }
    /* A failure here (a pooler refusing SET, say) is not worth stopping for. */
    PQclear(res);
    after_session_kept(m);
}

/* The lock lives as long as the session: a server-side idle timeout (PostgreSQL 14+) must not
 * end it between two migrations or while --migrate-cmd works. */
static void locked(struct pge_migrate *m)
{
    if (PQserverVersion(m->conn) >= 140000) {
        send_query(m, "SET idle_session_timeout = 0", -1, NULL, on_session_kept);
        return;
    }
    after_session_kept(m);
}

static void after_session_kept(struct pge_migrate *m)
{
    struct pge_histsql_buf b = {0};
    if (m->op == PGE_MIGRATE_COMMAND) {
        run_command(m);
        return;
    }
    pge_histsql_create_table(&b, m->qtable);
    if (b.failed) {
        pge_histsql_buf_free(&b);
        abort_with(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    send_query(m, b.s, -1, NULL, on_table_ready);
    pge_histsql_buf_free(&b);
}

static void on_identified(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (stopping(m, res))
        return;
    if (!res) {
        lost_connection(m, "identifying the database");
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        query_failed(m, res, "identifying the database");
        return;
    }
    const char *db = PQgetvalue(res, 0, 0);
    if (!m->schema[0])
        snprintf(m->schema, sizeof m->schema, "%s", PQgetvalue(res, 0, 1));
    const char *dot = strchr(m->o.table, '.');
    int64_t key = pge_histsql_lock_key(db, m->schema, dot ? dot + 1 : m->o.table);
    uint64_t k = (uint64_t)key;
    snprintf(m->classid, sizeof m->classid, "%" PRIu32, (uint32_t)(k >> 32));
    snprintf(m->objid, sizeof m->objid, "%" PRIu32, (uint32_t)(k & 0xffffffffu));
    PQclear(res);
    if (m->op == PGE_MIGRATE_COMMAND) {
        start_lock(m);
        return;
    }
    read_history(m);
}

static void on_stop_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)loop;
    (void)revents;
    if (m->cmd_pid > 0) {
        /* The lock is released only once the command is gone (on_cmd_exit). */
        pge_warn("migrate command did not stop in time: killing it", PGE_INT("pid", m->cmd_pid),
                 PGE_MS("waited", m->o.stop_timeout_ms));
        kill(-m->cmd_pid, SIGKILL);
        return;
    }
    pge_warn("database did not finish the cancellation in time: closing the connection "
             "(PostgreSQL rolls back what was open)");
    m->locked = 0;
    m->in_tx = 0;
    finish(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)loop;
    (void)revents;
    if (!m->qtable) {
        pge_error("--table must be NAME or SCHEMA.NAME, each at most 63 bytes",
                  PGE_STR("table", m->o.table));
        finish(m, PGE_OUTCOME(PGE_OUT_CONFIG, 0));
        return;
    }
    if (!m->conn) {
        read_history(m);
        return;
    }
    send_query(m, "SELECT current_database(), coalesce(current_schema(), '')", -1, NULL,
               on_identified);
}

struct pge_migrate *pge_migrate_new(struct ev_loop *loop, struct pge_workqueue *off, PGconn *conn,
                                    const struct pge_migrate_opts *opts, pge_migrate_cb cb,
                                    void *arg)
{
    struct pge_migrate *m = calloc(1, sizeof *m);
    size_t slen = 0;
    if (!m)
        return NULL;
    m->loop = loop;
    m->off = off;
    m->conn = conn;
    m->o = *opts;
    m->cb = cb;
    m->arg = arg;
    if (conn) {
        m->q = pge_pgquery_new(loop, conn);
        if (!m->q) {
            free(m);
            return NULL;
        }
    }
    m->qtable = pge_histsql_quote_table(opts->table, &slen);
    if (slen)
        snprintf(m->schema, sizeof m->schema, "%.*s", (int)slen, opts->table);
    char host[64] = "";
    if (gethostname(host, sizeof host) < 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    snprintf(m->applied_by, sizeof m->applied_by, "pgentry %s on %s", PGENTRY_VERSION,
             host[0] ? host : "unknown host");
    ev_init(&m->timer, on_timer_try_lock);
    m->timer.data = m;
    ev_timer_init(&m->stop_timer, on_stop_grace, STOP_GRACE_MS / 1000.0, 0.0);
    m->stop_timer.data = m;
    ev_timer_init(&m->kick, on_kick, 0.0, 0.0);
    m->kick.data = m;
    ev_init(&m->notify_io, on_notify_io);
    m->notify_io.data = m;
    ev_init(&m->lock_watch, on_lock_watch);
    m->lock_watch.data = m;
    if (m->o.stop_timeout_ms <= 0)
        m->o.stop_timeout_ms = STOP_GRACE_MS;
    return m;
}

void pge_migrate_start(struct pge_migrate *m, enum pge_migrate_op op, const char *target)
{
    m->op = op;
    m->target = target;
    if (op == PGE_MIGRATE_WAIT) {
        int64_t now = now_ms();
        m->wait_deadline_ms = m->o.wait_timeout_ms > 0 ? now + m->o.wait_timeout_ms : 0;
        pge_backoff_init(&m->backoff, m->o.backoff_initial_ms * 5, WAIT_POLL_MAX_MS, m->o.seed);
    }
    ev_timer_start(m->loop, &m->kick);
}

static void cancel_work(struct pge_workqueue_job *job)
{
    struct cancel_job *j = (struct cancel_job *)job;
    char err[256];
    PQcancel(j->cancel, err, sizeof err);
}

static void cancel_release(struct pge_workqueue_job *job)
{
    struct cancel_job *j = (struct cancel_job *)job;
    PQfreeCancel(j->cancel);
    free(j);
}

void pge_migrate_stop(struct pge_migrate *m, int signo)
{
    if (m->finished || m->stop_signo)
        return;
    m->stop_signo = signo;
    if (m->cmd_pid > 0) {
        /* The command gets the signal and --stop-timeout, like an application would; then it
         * is killed, and only then is the lock released (on_cmd_exit). */
        ev_timer_set(&m->stop_timer, (double)m->o.stop_timeout_ms / 1000.0, 0.0);
        ev_timer_start(m->loop, &m->stop_timer);
        kill(-m->cmd_pid, signo);
        return;
    }
    ev_timer_start(m->loop, &m->stop_timer);
    if (m->q && pge_pgquery_busy(m->q)) {
        /* PQcancel opens its own connection and blocks: it runs on a worker thread. The
         * running query then ends with 57014 and stopping() rolls back. */
        struct cancel_job *j = calloc(1, sizeof *j);
        if (j && (j->cancel = PQgetCancel(m->conn))) {
            j->job.work = cancel_work;
            j->job.release = cancel_release;
            if (pge_workqueue_submit(m->off, &j->job) == 0) {
                pge_info("stop signal: cancelling the running statement");
                return;
            }
            cancel_release(&j->job);
        } else {
            free(j);
        }
        return;
    }
    /* Idle (waiting for the lock, or between polls): wind down now. */
    ev_timer_stop(m->loop, &m->timer);
    ev_io_stop(m->loop, &m->notify_io);
    abort_with(m, PGE_OUTCOME(PGE_OUT_STOPPED, signo));
}

void pge_migrate_free(struct pge_migrate *m)
{
    if (!m)
        return;
    ev_io_stop(m->loop, &m->notify_io);
    ev_io_stop(m->loop, &m->lock_watch);
    ev_timer_stop(m->loop, &m->timer);
    ev_timer_stop(m->loop, &m->stop_timer);
    ev_timer_stop(m->loop, &m->kick);
    if (m->cmd_pid > 0)
        ev_child_stop(m->loop, &m->cmd_child);
    pge_pgquery_free(m->q);
    pge_migplan_free(&m->plan);
    PQclear(m->hist);
    free(m->rows);
    free(m->text);
    free(m->qtable);
    free(m);
}
