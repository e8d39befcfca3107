/* Index-build progress of the running migration statement, read over a second connection. */
#include "pgentry/migrate/progress.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgentry/common/log.h"
#include "pgentry/db/pgconn.h"
#include "pgentry/db/pgquery.h"

#define PROGRESS_SQL                                                                               \
    "SELECT phase, blocks_total, blocks_done, tuples_total, tuples_done, lockers_total, "          \
    "lockers_done FROM pg_stat_progress_create_index WHERE pid = $1::integer"

struct pge_progress {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    const struct pge_conninfo *params;
    int64_t connect_timeout_ms;
    struct pge_runstate *state;
    ev_timer tick;
    struct pge_pgconn *attempt; /* the side connection being opened */
    PGconn *conn;               /* the side connection, once open */
    struct pge_pgquery *q;
    char pid[16]; /* the migration's backend, as the query's parameter */
    int given_up; /* the side connection failed for this statement: not again */
};

static void clear(struct pge_progress *p)
{
    memset(&p->state->running.index_build, 0, sizeof p->state->running.index_build);
}

/* Close the side connection (or its attempt); a read in flight gets no callback. */
static void disconnect(struct pge_progress *p)
{
    pge_pgconn_free(p->attempt);
    p->attempt = NULL;
    pge_pgquery_free(p->q);
    p->q = NULL;
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
}

/* The side connection failed: the migration goes on without progress for this statement. */
static void give_up(struct pge_progress *p, const char *why)
{
    pge_debug("index build progress unavailable: ignored, the migration goes on",
              PGE_STR("reason", why));
    disconnect(p);
    clear(p);
    p->given_up = 1;
}

static long long number(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

static void on_row(void *arg, PGresult *res)
{
    struct pge_progress *p = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
        why[strcspn(why, "\n")] = '\0';
        PQclear(res);
        give_up(p, why);
        return;
    }
    if (PQntuples(res) == 0) {
        /* Not (or no longer, or not yet) building an index. */
        clear(p);
        PQclear(res);
        return;
    }
    struct pge_runstate_index_build *ib = &p->state->running.index_build;
    ib->active = 1;
    snprintf(ib->phase, sizeof ib->phase, "%s", PQgetvalue(res, 0, 0));
    ib->blocks_total = number(res, 1);
    ib->blocks_done = number(res, 2);
    ib->tuples_total = number(res, 3);
    ib->tuples_done = number(res, 4);
    ib->lockers_total = number(res, 5);
    ib->lockers_done = number(res, 6);
    PQclear(res);
}

static void read_progress(struct pge_progress *p)
{
    const char *params[1] = {p->pid};
    if (pge_pgquery_send(p->q, PROGRESS_SQL, 1, params, on_row, p) < 0)
        give_up(p, PQerrorMessage(p->conn));
}

static void on_connected(void *arg, PGconn *conn, const struct pge_pgconn_error *err)
{
    struct pge_progress *p = arg;
    pge_pgconn_free(p->attempt);
    p->attempt = NULL;
    if (!conn) {
        give_up(p, err ? err->message : "connection failed");
        return;
    }
    p->conn = conn;
    p->q = pge_pgquery_new(p->loop, conn);
    if (!p->q) {
        give_up(p, "out of memory");
        return;
    }
    read_progress(p);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_progress *p = w->data;
    (void)loop;
    (void)revents;
    if (p->given_up || p->attempt)
        return;
    if (p->q) {
        /* A slow answer is not queued behind: at most one read at a time. */
        if (!pge_pgquery_busy(p->q))
            read_progress(p);
        return;
    }
    p->attempt =
        pge_pgconn_start(p->loop, p->off, p->params, p->connect_timeout_ms, on_connected, p);
    if (!p->attempt)
        give_up(p, "out of memory");
}

struct pge_progress *pge_progress_new(struct ev_loop *loop, struct pge_workqueue *off,
                                      const struct pge_conninfo *params, int64_t connect_timeout_ms,
                                      struct pge_runstate *state)
{
    struct pge_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    p->off = off;
    p->params = params;
    p->connect_timeout_ms = connect_timeout_ms;
    p->state = state;
    ev_timer_init(&p->tick, on_tick, PGE_PROGRESS_DELAY_MS / 1000.0,
                  PGE_PROGRESS_INTERVAL_MS / 1000.0);
    p->tick.data = p;
    return p;
}

void pge_progress_watch(struct pge_progress *p, int backend_pid)
{
    if (!p)
        return;
    pge_progress_stop(p);
    snprintf(p->pid, sizeof p->pid, "%d", backend_pid);
    ev_timer_set(&p->tick, PGE_PROGRESS_DELAY_MS / 1000.0, PGE_PROGRESS_INTERVAL_MS / 1000.0);
    ev_timer_start(p->loop, &p->tick);
}

void pge_progress_stop(struct pge_progress *p)
{
    if (!p)
        return;
    ev_timer_stop(p->loop, &p->tick);
    disconnect(p);
    clear(p);
    p->given_up = 0;
}

void pge_progress_free(struct pge_progress *p)
{
    if (!p)
        return;
    pge_progress_stop(p);
    free(p);
}

/* Whether s[i..) starts word w (upper case), ignoring case. */
static int word_at(const char *s, size_t len, size_t i, const char *w)
{
    size_t n = strlen(w);
    return n <= len - i && strncasecmp(s + i, w, n) == 0;
}

static int is_word_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (unsigned char)c >= 0x80;
}

int pge_progress_may_build_index(const char *stmt, size_t len)
{
    static const char *const words[] = {"INDEX", "PRIMARY", "UNIQUE", "EXCLUDE"};
    for (size_t i = 0; i < len; i++) {
        /* REINDEX ends in INDEX: a word may be the end of a longer one, not its start. */
        for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
            size_t n = strlen(words[k]);
            if (word_at(stmt, len, i, words[k]) && (i + n == len || !is_word_byte(stmt[i + n])))
                return 1;
        }
    }
    return 0;
}
