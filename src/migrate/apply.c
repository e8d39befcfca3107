/* Apply or revert the plan one migration at a time (with or without a transaction), and stamp. */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/log.h"
#include "pgentry/migrate/histsql.h"
#include "pgentry/migrate/indexcheck.h"

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

static void on_rolled_back_retry(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    m->in_tx = 0;
    if (!pge_migrate_result_back(m, res, "rolling back"))
        return;
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
    char where[600], state_desc[256], pbuf[1024], dbuf[1024];

    if (PQstatus(m->conn) != CONNECTION_OK) {
        /* The session ended (pg_terminate_backend, a restart): not the statement's fault. */
        PQclear(res);
        pge_migrate_lost(m, "running a migration");
        return;
    }

    if (pos)
        line = pge_sqlsplit_position_line(m->text, m->text_len, m->stmt.offset, m->stmt.length,
                                          strtoul(pos, NULL, 10));
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
            pge_migrate_set_timer(m, on_timer_retry_item, delay);
            if (!m->in_tx) {
                /* Nothing of a no-transaction migration ran yet: just try again later. */
                ev_timer_start(m->loop, &m->timer);
                return;
            }
            /* ROLLBACK first, then the timer. */
            if (pge_pgquery_send(m->q, "ROLLBACK", -1, NULL, on_rolled_back_retry, m) < 0)
                pge_migrate_lost(m, "rolling back");
            return;
        }
    }

    describe_state(m, state_desc, sizeof state_desc);
    /* PostgreSQL's message may quote what a placeholder put in the statement. */
    primary = pge_migrate_mask_values(m, primary ? primary : PQresultErrorMessage(res), pbuf,
                                      sizeof pbuf);
    detail = pge_migrate_mask_values(m, detail, dbuf, sizeof dbuf);
    if (m->no_tx) {
        pge_error("migration failed; it runs without a transaction, so the statements before "
                  "this one stay committed: make them idempotent (IF NOT EXISTS) or repair by "
                  "hand, then run again",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR("at", where), PGE_STR("sqlstate", st ? st : ""),
                  PGE_STR("error", primary), PGE_STR("detail", detail),
                  PGE_STR("state", state_desc));
    } else {
        pge_error("migration failed and was rolled back: nothing of it was applied",
                  PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                  PGE_STR("at", where), PGE_STR("sqlstate", st ? st : ""),
                  PGE_STR("error", primary), PGE_STR("detail", detail),
                  PGE_STR("state", state_desc));
    }
    PQclear(res);
    m->pending = PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0);
    if (m->in_tx) {
        if (pge_pgquery_send(m->q, "ROLLBACK", -1, NULL, pge_migrate_on_rolled_back, m) < 0)
            pge_migrate_lost(m, "rolling back");
        return;
    }
    pge_migrate_release(m, m->pending);
}

/* The migration's history row is written and committed: go on to the next one. */
static void recorded(struct pge_migrate *m)
{
    const struct pge_migplan_item *it = cur(m);
    int64_t ms = now_ms() - m->item_started_ms;
    if (it->file->repeatable) {
        pge_info("repeatable migration applied", PGE_STR("name", it->name),
                 PGE_STR("file", m->path), PGE_MS("duration", ms));
        if (m->o.state && m->o.state->mig.pending)
            m->o.state->mig.pending--;
    } else if (it->action == PGE_MIGPLAN_DO_APPLY) {
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
    pge_migrate_drop_item(m);
    m->item++;
    next_item(m);
}

static void on_recorded(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok)
        m->in_tx = 0;
    if (!pge_migrate_result_back(m, res, "recording the migration"))
        return;
    if (!ok) {
        statement_failed(m, res);
        return;
    }
    PQclear(res);
    recorded(m);
}

static void on_row_written(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_back(m, res, "recording the migration"))
        return;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        statement_failed(m, res);
        return;
    }
    PQclear(res);
    /* SET LOCAL timeouts end with the transaction; without one, the session's SETs (the
     * statement timeout always, the lock timeout when given) go back to their defaults. */
    if (!m->no_tx) {
        pge_migrate_send(m, "COMMIT", -1, NULL, on_recorded);
        return;
    }
    struct pge_histsql_buf b = {0};
    pge_histsql_reset_timeouts(&b, m->o.lock_timeout_ms);
    pge_migrate_send_buf(m, &b, on_recorded);
}

static void record(struct pge_migrate *m)
{
    const struct pge_migplan_item *it = cur(m);
    struct pge_histsql_buf b = {0};
    struct pge_histsql_row row;
    int apply = it->action == PGE_MIGPLAN_DO_APPLY;
    pge_histsql_row_params(&row, it->version, it->name, m->checksum,
                           m->no_tx ? now_ms() - m->item_started_ms : -1, m->applied_by);
    int nparams = apply ? 5 : 1;
    const char *const *values = row.values;
    if (it->file->repeatable) {
        /* The version ($1 of a history row) is not part of a repeatable's record. */
        pge_histsql_upsert_repeatable_sql(&b, m->qrtable);
        nparams = 4;
        values = row.values + 1;
    } else if (apply) {
        pge_histsql_insert_sql(&b, m->qtable);
    } else {
        pge_histsql_delete_sql(&b, m->qtable);
    }
    /* The record step has no statement of the file: errors point at its last line. */
    m->stmt.offset = m->text_len;
    m->stmt.length = 0;
    m->stmt.line = pge_sqlsplit_line_at(m->text, m->text_len, m->text_len);
    pge_migrate_send_buf_params(m, &b, nparams, values, on_row_written);
}

static void on_invalid_indexes(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_ok(m, res, PGRES_TUPLES_OK, "checking the migration's indexes"))
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        record(m);
        return;
    }
    const struct pge_migplan_item *it = cur(m);
    char fix[300];
    pge_indexcheck_fix(fix, sizeof fix, PQgetvalue(res, 0, 0));
    pge_error("migration left an INVALID index (an interrupted CREATE INDEX CONCURRENTLY?); it "
              "is not recorded as applied: drop the index, then run again",
              PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
              PGE_STR("index", PQgetvalue(res, 0, 0)), PGE_STR("fix", fix),
              PGE_INT("invalid_indexes", PQntuples(res)));
    PQclear(res);
    pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

/* Before a no-transaction migration is recorded: an index build it ran and that was
 * interrupted (by a stop, a restart, a cancelled earlier run) stays INVALID, and IF NOT EXISTS
 * then skips it for good. Look for invalid indexes that the file names, or that sit on a table
 * it names (auto-named ones, REINDEX's _ccnew). */
static void check_invalid_indexes(struct pge_migrate *m)
{
    const char *params[1] = {m->text};
    /* The statement spans point into m->text; it is NUL-terminated at text_len. */
    pge_migrate_send(m, pge_indexcheck_sql(PGE_INDEXCHECK_NAMED, PQserverVersion(m->conn)), 1,
                     params, on_invalid_indexes);
}

static void on_statement(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    pge_progress_stop(m->progress);
    if (!pge_migrate_result_back(m, res, "running a migration"))
        return;
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
        pge_migrate_error_at(m,
                             "a statement ended the migration's transaction: the statements "
                             "before it are committed, the migration is not recorded; remove the "
                             "transaction control or mark the file -- pgentry:no-transaction, "
                             "repair, then run again",
                             m->stmt.line, "at", PGE_LOG_END_);
        m->in_tx = 0;
        pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
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
        pge_migrate_error_at(m,
                             "migration controls its own transaction, but pgentry already runs "
                             "it in one (with its history row): remove BEGIN/COMMIT/ROLLBACK, or "
                             "put -- pgentry:no-transaction on its first line; nothing was run",
                             st.line, "at", PGE_LOG_END_);
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
        if (m->o.state)
            pge_runstate_running(m->o.state, it->version_text, it->name, m->stmt.line);
        int rc = pge_pgquery_send(m->q, m->text + m->stmt.offset, -1, NULL, on_statement, m);
        *end = saved;
        if (rc < 0) {
            pge_migrate_lost(m, "running a migration");
            return;
        }
        if (pge_progress_may_build_index(m->text + m->stmt.offset, m->stmt.length))
            pge_progress_watch(m->progress, PQbackendPID(m->conn));
        return;
    }
    case PGE_SQLSPLIT_END:
        if (m->o.state)
            pge_runstate_not_running(m->o.state);
        if (m->no_tx)
            check_invalid_indexes(m);
        else
            record(m);
        return;
    case PGE_SQLSPLIT_UNTERMINATED: {
        char where[600];
        snprintf(where, sizeof where, "%s:%u", m->path, m->stmt.line);
        pge_error("migration has an unterminated construct: close it and run again",
                  PGE_STR("migration", it->version_text), PGE_STR("at", where),
                  PGE_STR("what", pge_sqlsplit_what(&m->split)));
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    }
}

static void on_began(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK && !m->no_tx)
        m->in_tx = 1;
    if (!pge_migrate_result_ok(m, res, PGRES_COMMAND_OK, "starting a migration"))
        return;
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
        pge_migrate_abort(m, PGE_OUTCOME(pge_migfile_outcome(r), 0));
        return;
    }
    if (!down && strcmp(m->checksum, it->file->checksum) != 0) {
        pge_error("migration file changed while pgentry was running: run again",
                  PGE_STR("file", m->path));
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    m->no_tx = pge_migfile_no_transaction(m->text, m->text_len);
    if (pge_migrate_substitute(m) < 0) {
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    if (!m->no_tx && check_transaction_control(m) < 0) {
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    if (it->state == PGE_MIGPLAN_IS_OUT_OF_ORDER && !down)
        pge_warn("applying a migration out of order (--allow-out-of-order): it is older than "
                 "the newest applied version",
                 PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
                 PGE_STR("head", m->plan.head_text));
    m->stmts_done = 0;
    pge_sqlsplit_init(&m->split, m->text, m->text_len);
    m->item_started_ms = now_ms();
    pge_debug(down ? "reverting migration" : "applying migration",
              PGE_STR("migration", it->version_text), PGE_STR("name", it->name),
              PGE_STR("file", m->path));
    if (!m->no_tx)
        pge_histsql_appendf(&b, "BEGIN; ");
    pge_histsql_timeouts(&b, m->o.statement_timeout_ms, m->o.lock_timeout_ms, !m->no_tx);
    if (it->file->repeatable) {
        /* Its record's table, made with the first repeatable that ever runs. */
        pge_histsql_appendf(&b, "; ");
        pge_histsql_create_repeatable_table(&b, m->qrtable);
    }
    pge_migrate_send_buf(m, &b, on_began);
}

static void on_stamped(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
        m->in_tx = 0;
    if (!pge_migrate_result_ok(m, res, PGRES_COMMAND_OK, "stamping"))
        return;
    PQclear(res);
    pge_info("history stamped: no SQL was run", PGE_STR("target", m->target ? m->target : "head"),
             PGE_INT("changed_rows", (long long)m->plan.count));
    pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_OK, 0));
}

/* One row of the stamp per call (BEGIN's result first), then COMMIT. */
static void on_stamp_step(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK && m->item == 0)
        m->in_tx = 1;
    if (!pge_migrate_result_ok(m, res, PGRES_COMMAND_OK, "stamping"))
        return;
    PQclear(res);
    if (m->item == m->plan.count) {
        pge_migrate_send(m, "COMMIT", -1, NULL, on_stamped);
        return;
    }
    const struct pge_migplan_item *it = &m->plan.items[m->item++];
    struct pge_histsql_buf b = {0};
    struct pge_histsql_row row;
    int record_it = it->action == PGE_MIGPLAN_DO_RECORD;
    pge_histsql_row_params(&row, it->version, it->name, it->file ? it->file->checksum : "", 0,
                           m->applied_by);
    if (record_it)
        pge_histsql_insert_sql(&b, m->qtable);
    else
        pge_histsql_delete_sql(&b, m->qtable);
    pge_migrate_send_buf_params(m, &b, record_it ? 5 : 1, row.values, on_stamp_step);
}

/* Stamp rows in one transaction: all recorded or none. */
void pge_migrate_stamp(struct pge_migrate *m, FILE *print_to)
{
    if (print_to) {
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
        int failed = b.failed;
        if (!failed)
            fputs(b.s, print_to);
        pge_histsql_buf_free(&b);
        pge_migrate_finish(m, PGE_OUTCOME(failed ? PGE_OUT_INTERNAL : PGE_OUT_OK, 0));
        return;
    }
    m->item = 0;
    pge_migrate_send(m, "BEGIN", -1, NULL, on_stamp_step);
}

static void next_item(struct pge_migrate *m)
{
    if (m->stop_signo) {
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
        return;
    }
    if (m->item == m->plan.count) {
        if (m->op == PGE_MIGRATE_UPGRADE)
            pge_info("database is up to date",
                     PGE_STR("version", m->o.state && m->o.state->mig.known
                                            ? m->o.state->mig.current
                                            : m->plan.head_text),
                     PGE_INT("applied_now", m->applied_now));
        pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    m->lock_retry_started_ms = now_ms();
    pge_backoff_init(&m->backoff, m->o.backoff_initial_ms * 10, m->o.backoff_max_ms * 20,
                     m->o.seed ^ (uint64_t)m->item);
    start_item(m);
}

/* A migration with no statement (a revision never filled in) would be recorded as applied
 * with nothing done: refuse the plan before anything of it runs. Returns 0, or -1 after
 * reporting. */
static int check_empty(const struct pge_migrate *m)
{
    for (size_t i = 0; i < m->plan.count; i++) {
        const struct pge_migplan_item *it = &m->plan.items[i];
        if (it->action != PGE_MIGPLAN_DO_APPLY || !it->file->up_empty)
            continue;
        pge_error("migration has no statement (empty, or comments only): write its SQL or "
                  "delete the file; nothing was applied",
                  PGE_STR("migration", it->version_text), PGE_STR("file", it->file->up_path));
        return -1;
    }
    return 0;
}

void pge_migrate_apply_plan(struct pge_migrate *m)
{
    if ((m->op == PGE_MIGRATE_UPGRADE && check_empty(m) < 0) ||
        pge_migrate_check_placeholders(m) < 0) {
        pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    pge_info(m->op == PGE_MIGRATE_UPGRADE ? "applying migrations" : "reverting migrations",
             PGE_STR("from", m->plan.head_text), PGE_INT("count", (long long)m->plan.count));
    m->item = 0;
    next_item(m);
}
