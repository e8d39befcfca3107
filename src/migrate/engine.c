/* The migration engine's driver: start, stop and free, and how every stage ends or fails. */
#include "engine_int.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/migrate/histsql.h"
#include "migfile_int.h"

struct cancel_job {
    struct pge_workqueue_job job;
    PGcancel *cancel;
};

void pge_migrate_drop_item(struct pge_migrate *m)
{
    free(m->text);
    m->text = NULL;
    free(m->raw);
    m->raw = NULL;
    m->in_tx = 0;
}

void pge_migrate_set_timer(struct pge_migrate *m, void (*cb)(struct ev_loop *, ev_timer *, int),
                           int64_t delay_ms)
{
    ev_timer_stop(m->loop, &m->timer);
    ev_timer_init(&m->timer, cb, (double)delay_ms / 1000.0, 0.0);
    m->timer.data = m;
}

void pge_migrate_finish(struct pge_migrate *m, struct pge_outcome out)
{
    if (m->finished)
        return;
    m->finished = 1;
    ev_timer_stop(m->loop, &m->timer);
    ev_timer_stop(m->loop, &m->stop_timer);
    ev_timer_stop(m->loop, &m->kick);
    ev_timer_stop(m->loop, &m->reconnect_timer);
    ev_io_stop(m->loop, &m->notify_io);
    pge_migrate_lease_stop(m);
    pge_migrate_drop_item(m);
    pge_progress_stop(m->progress);
    if (m->o.state)
        pge_runstate_lock_free(m->o.state);
    m->cb(m->arg, out);
}

void pge_migrate_on_rolled_back(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    PQclear(res);
    m->in_tx = 0;
    pge_migrate_release(m, m->pending);
}

/* Leave any open transaction, release the lock, report out. */
void pge_migrate_abort(struct pge_migrate *m, struct pge_outcome out)
{
    m->pending = out;
    ev_timer_stop(m->loop, &m->timer);
    if (m->in_tx && m->q && !pge_pgquery_busy(m->q) &&
        pge_pgquery_send(m->q, "ROLLBACK", -1, NULL, pge_migrate_on_rolled_back, m) == 0)
        return;
    pge_migrate_release(m, out);
}

void pge_migrate_error_at(const struct pge_migrate *m, const char *msg, unsigned line,
                          const char *at_key, struct pge_log_field extra)
{
    const struct pge_migplan_item *it = &m->plan.items[m->item];
    char where[600];
    snprintf(where, sizeof where, "%s:%u", m->path, line);
    if (extra.key)
        pge_error(msg, PGE_STR("migration", it->version_text), PGE_STR("name", it->name), extra,
                  PGE_STR(at_key, where));
    else
        pge_error(msg, PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR(at_key, where));
}

/* Every query callback starts here: after a stop, whatever came back, wind down. */
int pge_migrate_stopping(struct pge_migrate *m, PGresult *res)
{
    if (!m->stop_signo && !m->lease_lost)
        return 0;
    PQclear(res);
    if (m->text && m->no_tx && m->stmts_done > 0) {
        /* Nothing can roll back what a no-transaction migration already committed. */
        pge_migrate_error_at(m,
                             "stopped inside a no-transaction migration: the statements it "
                             "completed stay committed and it is not recorded; make them "
                             "idempotent (IF NOT EXISTS) or repair by hand, then run again",
                             m->stmt.line, "stopped_at",
                             PGE_INT("statements_committed", m->stmts_done));
    }
    pge_migrate_abort(m, m->stop_signo ? PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo)
                                       : PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
    return 1;
}

static const char *ordinal(unsigned n)
{
    if (n % 100 >= 11 && n % 100 <= 13)
        return "th";
    return n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
}

/* The connection went inside a no-transaction migration: what of it is committed. */
static void say_what_stays(const struct pge_migrate *m)
{
    struct pge_sqlsplit sp;
    struct pge_sqlsplit_stmt st;
    unsigned total = 0;
    char done[128];
    pge_sqlsplit_init(&sp, m->text, m->text_len);
    while (pge_sqlsplit_next(&sp, &st) == PGE_SQLSPLIT_STMT)
        total++;
    if (m->stmts_done == 0)
        snprintf(done, sizeof done, "no statement of %u completed; the 1st was interrupted", total);
    else if (m->stmts_done >= total)
        snprintf(done, sizeof done, "all %u statements completed; the record was interrupted",
                 total);
    else
        snprintf(done, sizeof done, "statements 1-%u of %u completed; the %u%s was interrupted",
                 m->stmts_done, total, m->stmts_done + 1, ordinal(m->stmts_done + 1));
    pge_migrate_error_at(m,
                         "connection lost inside a no-transaction migration: the statements it "
                         "completed stay committed and it is not recorded; make them idempotent "
                         "(IF NOT EXISTS) or repair by hand, then run again",
                         m->stmt.line, "at", PGE_STR("statements", done));
}

void pge_migrate_lost(struct pge_migrate *m, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(m->conn));
    msg[strcspn(msg, "\n")] = '\0';
    if (pge_migrate_can_reconnect(m)) {
        pge_migrate_reconnect(m, what, msg);
        return;
    }
    pge_error("lost the database connection", PGE_STR("during", what), PGE_STR("error", msg));
    if (m->text && m->no_tx && m->item < m->plan.count)
        say_what_stays(m);
    else if (m->text && m->in_tx && m->item < m->plan.count)
        pge_error("the server rolled the migration back: nothing of it was applied; run again",
                  PGE_STR("migration", m->plan.items[m->item].version_text),
                  PGE_STR("name", m->plan.items[m->item].name));
    m->locked = 0;
    m->in_tx = 0;
    pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

/* A query failed outside a migration's own statements. */
void pge_migrate_query_failed(struct pge_migrate *m, PGresult *res, const char *what)
{
    if (PQstatus(m->conn) != CONNECTION_OK) {
        /* The session ended under the query (a restart, pg_terminate_backend). */
        PQclear(res);
        pge_migrate_lost(m, what);
        return;
    }
    /* Copies: the fields live in res, which is cleared before they are looked at again. */
    const char *field = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char st[8], msg[512];
    snprintf(st, sizeof st, "%s", field ? field : "");
    snprintf(msg, sizeof msg, "%s",
             PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                 ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                 : PQresultErrorMessage(res));
    msg[strcspn(msg, "\n")] = '\0';
    PQclear(res);
    /* 3F000: the schema of --table does not exist; 42501: no right to create the table. */
    int config = strcmp(st, "3F000") == 0 || strcmp(st, "42501") == 0;
    if (config)
        pge_error("database query failed", PGE_STR("during", what), PGE_STR("sqlstate", st),
                  PGE_STR("error", msg),
                  PGE_STR("fix", st[0] == '3' ? "create the schema, or name an existing one in "
                                                "--table (schema.table) or the search_path"
                                              : "grant the role CREATE on the schema of --table, "
                                                "or name another schema in --table"));
    else
        pge_error("database query failed", PGE_STR("during", what), PGE_STR("sqlstate", st),
                  PGE_STR("error", msg));
    if (config)
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_CONFIG, 0));
    else
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

int pge_migrate_send(struct pge_migrate *m, const char *sql, int nparams, const char *const *params,
                     pge_pgquery_cb cb)
{
    if (pge_pgquery_send(m->q, sql, nparams, params, cb, m) == 0)
        return 0;
    pge_migrate_lost(m, "sending a query");
    return -1;
}

void pge_migrate_send_buf_params(struct pge_migrate *m, struct pge_histsql_buf *b, int nparams,
                                 const char *const *params, pge_pgquery_cb cb)
{
    if (b->failed)
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
    else
        pge_migrate_send(m, b->s, nparams, params, cb);
    pge_histsql_buf_free(b);
}

void pge_migrate_send_buf(struct pge_migrate *m, struct pge_histsql_buf *b, pge_pgquery_cb cb)
{
    pge_migrate_send_buf_params(m, b, -1, NULL, cb);
}

int pge_migrate_result_back(struct pge_migrate *m, PGresult *res, const char *what)
{
    if (pge_migrate_stopping(m, res))
        return 0;
    if (!res) {
        pge_migrate_lost(m, what);
        return 0;
    }
    return 1;
}

int pge_migrate_result_ok(struct pge_migrate *m, PGresult *res, ExecStatusType want,
                          const char *what)
{
    if (!pge_migrate_result_back(m, res, what))
        return 0;
    if (PQresultStatus(res) != want) {
        pge_migrate_query_failed(m, res, what);
        return 0;
    }
    return 1;
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
    pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)loop;
    (void)revents;
    if (!m->qtable || (!m->qrtable && m->o.files && m->o.files->nrepeatables)) {
        pge_error("--table must be NAME or SCHEMA.NAME, each at most 63 bytes (52 for NAME with "
                  "repeatable migrations, which are recorded in NAME_repeatable)",
                  PGE_STR("table", m->o.table));
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_CONFIG, 0));
        return;
    }
    /* The history first, with no other question: at head it is the only one. What the lock
     * needs (its key) is asked together with the lock (pge_migrate_start_lock). */
    if (m->conn && m->op == PGE_MIGRATE_COMMAND)
        pge_migrate_start_lock(m);
    else
        pge_migrate_read_history(m);
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
    char *rtable = pge_migfile_fmt("%s_repeatable", opts->table);
    m->qrtable = rtable ? pge_histsql_quote_table(rtable, NULL) : NULL;
    free(rtable);
    char lease_table[300];
    snprintf(lease_table, sizeof lease_table, "%s_lock", opts->table);
    m->qlease = pge_histsql_quote_table(lease_table, NULL);
    if (slen)
        snprintf(m->schema, sizeof m->schema, "%.*s", (int)slen, opts->table);
    char host[64] = "";
    if (gethostname(host, sizeof host) < 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    snprintf(m->applied_by, sizeof m->applied_by, "pgentry %s on %s", PGENTRY_VERSION,
             host[0] ? host : "unknown host");
    if (opts->progress_db && opts->state)
        m->progress = pge_progress_new(loop, off, opts->progress_db, opts->connect_timeout_ms,
                                       opts->state); /* NULL: no progress, nothing else lost */
    pge_migrate_lock_init(m);
    pge_migrate_lease_init(m);
    ev_timer_init(&m->stop_timer, on_stop_grace, STOP_GRACE_MS / 1000.0, 0.0);
    m->stop_timer.data = m;
    ev_timer_init(&m->kick, on_kick, 0.0, 0.0);
    m->kick.data = m;
    pge_migrate_wait_init(m);
    pge_migrate_extcmd_init(m);
    pge_migrate_reconnect_init(m);
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

/* When a query is in flight, cancel it and return 1 (its callback winds down); else 0. */
static int cancel_running(struct pge_migrate *m, const char *msg)
{
    if (!m->q || !pge_pgquery_busy(m->q))
        return 0;
    /* PQcancel opens its own connection and blocks: it runs on a worker thread. The
     * running query then ends with 57014 and pge_migrate_stopping() rolls back. */
    struct cancel_job *j = calloc(1, sizeof *j);
    if (j && (j->cancel = PQgetCancel(m->conn))) {
        j->job.work = cancel_work;
        j->job.release = cancel_release;
        if (pge_workqueue_submit(m->off, &j->job) == 0) {
            pge_info(msg);
            return 1;
        }
        cancel_release(&j->job);
    } else {
        free(j);
    }
    return 1;
}

void pge_migrate_interrupt(struct pge_migrate *m)
{
    if (m->finished)
        return;
    if (m->cmd_pid > 0) {
        /* on_cmd_exit reports MIGRATION_FAILED once it is gone. */
        m->lock_lost = 1;
        kill(-m->cmd_pid, SIGTERM);
        return;
    }
    if (cancel_running(m, "migration lock lost: cancelling the running statement"))
        return;
    ev_timer_stop(m->loop, &m->timer);
    ev_io_stop(m->loop, &m->notify_io);
    pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

void pge_migrate_stop(struct pge_migrate *m, int signo)
{
    if (m->finished || m->stop_signo)
        return;
    m->stop_signo = signo;
    if (m->reconnecting) {
        /* No session: nothing is open on the server, no lock is held. */
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_STOPPED, signo));
        return;
    }
    if (m->cmd_pid > 0) {
        /* The command gets the signal and --stop-timeout, like an application would; then it
         * is killed, and only then is the lock released (on_cmd_exit). */
        ev_timer_set(&m->stop_timer, (double)m->o.stop_timeout_ms / 1000.0, 0.0);
        ev_timer_start(m->loop, &m->stop_timer);
        kill(-m->cmd_pid, signo);
        return;
    }
    ev_timer_start(m->loop, &m->stop_timer);
    if (cancel_running(m, "stop signal: cancelling the running statement"))
        return;
    /* Idle (waiting for the lock, or between polls): wind down now. */
    ev_timer_stop(m->loop, &m->timer);
    ev_io_stop(m->loop, &m->notify_io);
    pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_STOPPED, signo));
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
    ev_timer_stop(m->loop, &m->reconnect_timer);
    if (m->cmd_pid > 0)
        ev_child_stop(m->loop, &m->cmd_child);
    if (m->cmd_report_fd >= 0)
        close(m->cmd_report_fd);
    pge_pgquery_free(m->q);
    pge_migplan_free(&m->plan);
    PQclear(m->hist);
    free(m->rows);
    PQclear(m->rhist);
    free(m->rrows);
    free(m->qrtable);
    free(m->text);
    free(m->raw);
    pge_migrate_lease_stop(m);
    pge_progress_free(m->progress);
    free(m->qtable);
    free(m->qlease);
    free(m);
}
