/* The migration lock behind a connection pooler: a lease row with an expiry, renewed by its holder.
 */
#include "engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/migrate/histsql.h"

/* A renewal: one short connection on a worker thread (the migration's own connection may be
 * busy for minutes with one statement), UPDATE ... WHERE holder = us. */
struct renew_job {
    struct pge_workqueue_job job;
    struct pge_migrate *m; /* only touched in done(), on the loop */
    char **kw, **val;      /* the migration connection's parameters, copied */
    char *sql;
    int64_t sent_ms;
    int renewed; /* 1 renewed, 0 the lease is not ours any more, -1 could not ask */
    char err[256];
};

static void free_params(char **kw, char **val)
{
    for (size_t i = 0; kw && kw[i]; i++) {
        free(kw[i]);
        free(val[i]);
    }
    free(kw);
    free(val);
}

static void renew_work(struct pge_workqueue_job *job)
{
    struct renew_job *j = (struct renew_job *)job;
    PGconn *c = PQconnectdbParams((const char *const *)j->kw, (const char *const *)j->val, 0);
    PGresult *res = NULL;
    j->renewed = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(j->err, sizeof j->err, "%s", PQerrorMessage(c));
        goto out;
    }
    res = PQexec(c, j->sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(j->err, sizeof j->err, "%s", PQresultErrorMessage(res));
        goto out;
    }
    j->renewed = PQntuples(res) == 1;
out:
    j->err[strcspn(j->err, "\n")] = '\0';
    PQclear(res);
    PQfinish(c);
}

static void lease_lost(struct pge_migrate *m, const char *why, const char *err)
{
    if (m->lease_lost || m->finished)
        return;
    pge_error("lost the migration lease: stopping before another instance can take it over; "
              "check the connection to the database (or the pooler), then run again",
              PGE_STR("why", why), PGE_STR("error", err));
    m->lease_lost = 1;
    pge_migrate_interrupt(m);
}

static void renew_done(struct pge_workqueue_job *job)
{
    struct renew_job *j = (struct renew_job *)job;
    struct pge_migrate *m = j->m;
    m->lease_job = NULL;
    if (j->renewed == 1)
        m->lease_ok_ms = j->sent_ms;
    else if (j->renewed == 0)
        lease_lost(m, "the lease row is not ours any more", "");
    else
        pge_warn("could not renew the migration lease: will retry", PGE_STR("error", j->err));
}

static void renew_release(struct pge_workqueue_job *job)
{
    struct renew_job *j = (struct renew_job *)job;
    free_params(j->kw, j->val);
    free(j->sql);
    free(j);
}

/* Copy the live connection's parameters (host address, password...) for the worker. */
static int copy_params(PGconn *conn, struct renew_job *j)
{
    PQconninfoOption *opts = PQconninfo(conn), *o;
    size_t n = 0, k = 0;
    int rc = -1;
    if (!opts)
        return -1;
    for (o = opts; o->keyword; o++)
        n += o->val && o->val[0];
    j->kw = calloc(n + 1, sizeof *j->kw);
    j->val = calloc(n + 1, sizeof *j->val);
    if (!j->kw || !j->val)
        goto out;
    for (o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0])
            continue;
        j->kw[k] = strdup(o->keyword);
        j->val[k] = strdup(o->val);
        if (!j->kw[k] || !j->val[k])
            goto out;
        k++;
    }
    rc = 0;
out:
    PQconninfoFree(opts);
    return rc;
}

static void submit_renewal(struct pge_migrate *m, int64_t now)
{
    struct renew_job *j = calloc(1, sizeof *j);
    struct pge_histsql_buf b = {0};
    if (!j)
        return;
    pge_histsql_appendf(&b,
                        "UPDATE %s SET expires_at = clock_timestamp() + interval '%d ms' "
                        "WHERE id = 1 AND holder = ",
                        m->qlease, PGE_MIGRATE_LEASE_MS);
    pge_histsql_literal(&b, m->lease_holder);
    pge_histsql_appendf(&b, " AND expires_at > clock_timestamp() RETURNING 1");
    j->m = m;
    j->sent_ms = now;
    j->job.work = renew_work;
    j->job.done = renew_done;
    j->job.release = renew_release;
    if (b.failed || copy_params(m->conn, j) < 0) {
        pge_histsql_buf_free(&b);
        renew_release(&j->job);
        return;
    }
    j->sql = b.s;
    if (pge_workqueue_submit(m->off, &j->job) < 0) {
        renew_release(&j->job);
        return;
    }
    m->lease_job = &j->job;
}

/* Renew every lease/3; give up at 2/3 of the lease without a renewal, which leaves a third of
 * it to cancel the running statement and roll back before anyone else may take over. The
 * expiry is the server's clock; ours only measures elapsed time since the request was sent. */
static void on_lease_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    int64_t now = now_ms(), age = now - m->lease_ok_ms;
    (void)loop;
    (void)revents;
    if (age >= PGE_MIGRATE_LEASE_MS * 2 / 3) {
        lease_lost(m, "not renewed in time", "");
        return;
    }
    if (age >= PGE_MIGRATE_LEASE_MS / 3 && !m->lease_job)
        submit_renewal(m, now);
}

void pge_migrate_lease_init(struct pge_migrate *m)
{
    char host[64] = "";
    unsigned char r[6] = {0};
    double tick = PGE_MIGRATE_LEASE_MS / 6 / 1000.0;
    if (gethostname(host, sizeof host) < 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    /* The nonce tells apart two containers that share a hostname and pid 1. */
    if (getrandom(r, sizeof r, GRND_NONBLOCK) < 0)
        memset(r, 0, sizeof r);
    snprintf(m->lease_holder, sizeof m->lease_holder, "pgentry@%s:%ld/%02x%02x%02x%02x%02x%02x",
             host[0] ? host : "unknown", (long)getpid(), r[0], r[1], r[2], r[3], r[4], r[5]);
    ev_timer_init(&m->lease_timer, on_lease_tick, tick, tick);
    m->lease_timer.data = m;
}

void pge_migrate_lease_stop(struct pge_migrate *m)
{
    ev_timer_stop(m->loop, &m->lease_timer);
    if (m->lease_job)
        pge_workqueue_cancel(m->lease_job);
    m->lease_job = NULL;
}

/* ---- taking the lease ---- */

static void on_timer_try_lease(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pge_migrate_lease_try(w->data);
}

static void on_lease_holder(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int64_t now = now_ms();
    char d1[32];
    if (!pge_migrate_result_back(m, res, "looking up the migration lease holder"))
        return;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *holder = PQgetvalue(res, 0, 0);
        enum pge_throttle_verdict seen = pge_throttle_should_log(&m->holder_log, holder, now);
        if (seen != PGE_THROTTLE_QUIET)
            pge_info(seen == PGE_THROTTLE_CHANGED ? "waiting for the migration lock"
                                                  : "still waiting for the migration lock",
                     PGE_STR("holder", holder), PGE_STR("since", PQgetvalue(res, 0, 1)),
                     PGE_STR("lease_expires_in", PQgetvalue(res, 0, 2)),
                     PGE_MS("waited", now - m->lock_started_ms),
                     PGE_STR("time_left",
                             m->o.lock_wait_ms
                                 ? pge_log_fmt_ms(m->lock_started_ms + m->o.lock_wait_ms - now, d1,
                                                  sizeof d1)
                                 : "forever"));
    }
    PQclear(res);
    pge_migrate_lock_retry(m, on_timer_try_lease);
}

static void on_lease_try(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    int got = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (got) {
        m->locked = 1;
        m->lease_ok_ms = m->lease_sent_ms;
    }
    if (!pge_migrate_result_ok(m, res, PGRES_TUPLES_OK, "taking the migration lease"))
        return;
    PQclear(res);
    if (got) {
        ev_timer_start(m->loop, &m->lease_timer);
        pge_migrate_locked(m);
        return;
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT holder, acquired_at::text, (expires_at - clock_timestamp())::text FROM %s "
             "WHERE id = 1",
             m->qlease);
    pge_migrate_send(m, sql, 0, NULL, on_lease_holder);
}

/* Our own row (left by a session lost and regained) is ours to take again at once: the holder
 * names this process, with a nonce. */
void pge_migrate_lease_try(struct pge_migrate *m)
{
    struct pge_histsql_buf b = {0};
    pge_histsql_appendf(&b, "INSERT INTO %s AS l (id, holder, expires_at) VALUES (1, ", m->qlease);
    pge_histsql_literal(&b, m->lease_holder);
    pge_histsql_appendf(&b,
                        ", clock_timestamp() + interval '%d ms') ON CONFLICT (id) DO UPDATE SET "
                        "holder = excluded.holder, acquired_at = clock_timestamp(), expires_at = "
                        "excluded.expires_at WHERE l.expires_at < clock_timestamp() OR l.holder = "
                        "excluded.holder RETURNING 1",
                        PGE_MIGRATE_LEASE_MS);
    m->lease_sent_ms = now_ms();
    pge_migrate_send_buf(m, &b, on_lease_try);
}

static void on_lease_table(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_back(m, res, "creating the migration lease table"))
        return;
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* Replicas racing to create it: one wins, the others see 23505, 42P07 or (its row type)
     * 42710; go on. */
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        !(st &&
          (strcmp(st, "23505") == 0 || strcmp(st, "42P07") == 0 || strcmp(st, "42710") == 0))) {
        pge_migrate_query_failed(m, res, "creating the migration lease table");
        return;
    }
    PQclear(res);
    pge_migrate_lease_try(m);
}

void pge_migrate_lease_start(struct pge_migrate *m)
{
    char sql[512];
    if (!m->qlease) {
        pge_error("--table is too long for its lease table (NAME_lock must fit in 63 bytes)",
                  PGE_STR("table", m->o.table));
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_CONFIG, 0));
        return;
    }
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS %s (id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1), "
             "holder text NOT NULL, acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
             "expires_at timestamptz NOT NULL)",
             m->qlease);
    pge_migrate_send(m, sql, 0, NULL, on_lease_table);
}

int pge_migrate_lease_release_sql(struct pge_migrate *m, struct pge_histsql_buf *b)
{
    pge_histsql_appendf(b, "WITH d AS (DELETE FROM %s WHERE id = 1 AND holder = ", m->qlease);
    pge_histsql_literal(b, m->lease_holder);
    pge_histsql_appendf(b, " RETURNING 1) SELECT count(*) > 0 FROM d");
    return b->failed ? -1 : 0;
}
