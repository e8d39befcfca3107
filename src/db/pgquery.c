/* Run one query at a time on a non-blocking PGconn, driven by libev; never blocks the loop. */
#include "pgentry/db/pgquery.h"

#include <stdlib.h>

struct pge_pgquery {
    struct ev_loop *loop;
    PGconn *conn;
    ev_io io;
    int busy;
    int copy_out;         /* COPY TO STDOUT: rows to read and discard before the next result */
    int copy_end_pending; /* COPY FROM STDIN refused, but the refusal is not sent yet */
    PGresult *keep;
    pge_pgquery_cb cb;
    void *arg;
};

static void finish(struct pge_pgquery *q, PGresult *res)
{
    pge_pgquery_cb cb = q->cb;
    void *arg = q->arg;
    ev_io_stop(q->loop, &q->io);
    q->busy = 0;
    q->keep = NULL;
    q->cb = NULL;
    /* Last statement: the callback may free q. */
    cb(arg, res);
}

static void watch(struct pge_pgquery *q, int events)
{
    int fd = PQsocket(q->conn);
    if (ev_is_active(&q->io) && q->io.fd == fd && (q->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(q->loop, &q->io);
    ev_io_set(&q->io, fd, events);
    ev_io_start(q->loop, &q->io);
}

/* Keep the first error result, else the last result. */
static void keep_result(struct pge_pgquery *q, PGresult *r)
{
    int keep_is_error = q->keep && (PQresultStatus(q->keep) == PGRES_FATAL_ERROR);
    if (keep_is_error) {
        PQclear(r);
    } else {
        PQclear(q->keep);
        q->keep = r;
    }
}

/* Collect every result that is complete; finish when libpq says the query is done. */
static void drain(struct pge_pgquery *q)
{
    for (;;) {
        if (q->copy_end_pending) {
            int rc = PQputCopyEnd(q->conn, "COPY FROM STDIN has no data source in a migration");
            if (rc == 0) {
                watch(q, EV_READ | EV_WRITE);
                return;
            }
            q->copy_end_pending = 0;
            continue;
        }
        if (q->copy_out) {
            /* A migration has nowhere to send COPY output: read it and let it go. */
            char *row = NULL;
            int n = PQgetCopyData(q->conn, &row, 1);
            if (n > 0) {
                PQfreemem(row);
                continue;
            }
            if (n == 0) {
                watch(q, EV_READ);
                return;
            }
            q->copy_out = 0; /* -1: done; -2: error, reported by the next result */
            continue;
        }
        if (PQisBusy(q->conn))
            break;
        PGresult *r = PQgetResult(q->conn);
        if (!r) {
            finish(q, q->keep);
            return;
        }
        switch (PQresultStatus(r)) {
        case PGRES_COPY_OUT:
            PQclear(r);
            q->copy_out = 1;
            continue;
        case PGRES_COPY_IN:
        case PGRES_COPY_BOTH:
            /* No data to give: end it as an error the server reports back. */
            PQclear(r);
            q->copy_end_pending = 1;
            continue;
        default:
            keep_result(q, r);
        }
    }
    watch(q, EV_READ);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_pgquery *q = w->data;
    (void)loop;
    if (revents & EV_WRITE) {
        int f = PQflush(q->conn);
        if (f < 0) {
            PQclear(q->keep);
            q->keep = NULL;
            finish(q, NULL);
            return;
        }
        if (f == 1) {
            watch(q, EV_READ | EV_WRITE);
            if (!(revents & EV_READ))
                return;
        }
    }
    if (revents & EV_READ) {
        if (!PQconsumeInput(q->conn)) {
            PQclear(q->keep);
            q->keep = NULL;
            finish(q, NULL);
            return;
        }
        /* Still flushing: keep write interest until libpq has sent everything. */
        if (PQflush(q->conn) == 1) {
            watch(q, EV_READ | EV_WRITE);
            return;
        }
    }
    drain(q);
}

struct pge_pgquery *pge_pgquery_new(struct ev_loop *loop, PGconn *conn)
{
    struct pge_pgquery *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->loop = loop;
    q->conn = conn;
    ev_io_init(&q->io, on_io, PQsocket(conn), EV_READ);
    q->io.data = q;
    PQsetnonblocking(conn, 1);
    return q;
}

int pge_pgquery_send(struct pge_pgquery *q, const char *sql, int nparams, const char *const *params,
                     pge_pgquery_cb cb, void *arg)
{
    int ok;
    if (q->busy || PQstatus(q->conn) != CONNECTION_OK)
        return -1;
    if (nparams < 0)
        ok = PQsendQuery(q->conn, sql);
    else
        ok = PQsendQueryParams(q->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!ok)
        return -1;
    q->busy = 1;
    q->cb = cb;
    q->arg = arg;
    q->keep = NULL;
    q->copy_out = 0;
    q->copy_end_pending = 0;
    int f = PQflush(q->conn);
    if (f < 0) {
        q->busy = 0;
        return -1;
    }
    watch(q, f == 1 ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}

int pge_pgquery_busy(const struct pge_pgquery *q)
{
    return q->busy;
}

void pge_pgquery_free(struct pge_pgquery *q)
{
    if (!q)
        return;
    ev_io_stop(q->loop, &q->io);
    PQclear(q->keep);
    free(q);
}
