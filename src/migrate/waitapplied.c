/* --wait-migrations: apply nothing, wait (NOTIFY or polling) until every migration is applied. */
#include "engine_int.h"

#include <stdlib.h>

#include "pgentry/common/log.h"

static void on_timer_reread(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)revents;
    ev_io_stop(loop, &m->notify_io);
    pge_migrate_read_history(m);
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
        pge_migrate_lost(m, "waiting for migrations");
        return;
    }
    while ((n = PQnotifies(m->conn))) {
        got = 1;
        PQfreemem(n);
    }
    if (got) {
        ev_io_stop(loop, w);
        ev_timer_stop(loop, &m->timer);
        pge_migrate_read_history(m);
    }
}

static void on_listen(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (pge_migrate_stopping(m, res))
        return;
    PQclear(res);
    m->listening = 1;
    pge_migrate_read_history(m);
}

/* Behind a pooler (its own cancel key: PQbackendPID() is not our server process) a LISTEN
 * would stay with a pooled server connection and its notifications never reach us: poll. */
static void on_backend_pid(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (pge_migrate_stopping(m, res))
        return;
    int direct = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                 strtol(PQgetvalue(res, 0, 0), NULL, 10) == (long)PQbackendPID(m->conn);
    PQclear(res);
    if (direct) {
        pge_migrate_send(m, "LISTEN " NOTIFY_CHANNEL, -1, NULL, on_listen);
        return;
    }
    pge_info("connection pooler detected: polling the history instead of LISTEN");
    m->listening = 1;
    pge_migrate_read_history(m);
}

/* The migrating replica NOTIFYs after each migration; poll too, in case it is an older tool. */
static void wait_again(struct pge_migrate *m)
{
    int64_t now = now_ms(), delay = 0;
    if (pge_backoff_next(&m->backoff, now, m->wait_deadline_ms, &delay) == PGE_BACKOFF_EXPIRED) {
        pge_error("gave up waiting for migrations to be applied (--wait-timeout)",
                  PGE_STR("current", m->plan.head_text),
                  PGE_INT("pending", (long long)m->plan.count));
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_NOT_READY, 0));
        return;
    }
    pge_migrate_set_timer(m, on_timer_reread, delay);
    ev_timer_start(m->loop, &m->timer);
    ev_io_stop(m->loop, &m->notify_io);
    ev_io_set(&m->notify_io, PQsocket(m->conn), EV_READ);
    ev_io_start(m->loop, &m->notify_io);
}

void pge_migrate_wait_init(struct pge_migrate *m)
{
    ev_init(&m->notify_io, on_notify_io);
    m->notify_io.data = m;
}

void pge_migrate_wait_step(struct pge_migrate *m)
{
    if (m->plan.count == 0) {
        pge_info("every migration is applied", PGE_STR("version", m->plan.head_text));
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (!m->listening) {
        pge_info("waiting for another instance to apply migrations",
                 PGE_STR("current", m->plan.head_text),
                 PGE_INT("pending", (long long)m->plan.count));
        pge_migrate_send(m, "SELECT pg_backend_pid()", -1, NULL, on_backend_pid);
        return;
    }
    wait_again(m);
}
