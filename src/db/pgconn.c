/* One non-blocking connection attempt: password, PQconnectPoll, a check query, hosts in turn. */
#include "pgentry/db/pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/log.h"
#include "pgentry/db/password.h"
#include "pgentry/db/pgcheck.h"
#include "pgentry/db/pgquery.h"

#include "pgconn_int.h"

static void stop_all(struct pge_pgconn *c)
{
    ev_timer_stop(c->loop, &c->timer);
    ev_timer_stop(c->loop, &c->kick);
    ev_io_stop(c->loop, &c->io);
    for (size_t i = 0; i < PGE_CONNINFO_MAX_HOSTS; i++) {
        pge_resolve_cancel(c->lookups[i].r);
        c->lookups[i].r = NULL;
    }
    c->resolving = 0;
    pge_pgstart_cancel(c->start);
    c->start = NULL;
    pge_password_free(c->pw);
    c->pw = NULL;
    explicit_bzero(c->password, sizeof c->password);
    pge_pgquery_free(c->q);
    c->q = NULL;
    if (c->fallback) {
        PQfinish(c->fallback);
        c->fallback = NULL;
    }
}

static void succeed(struct pge_pgconn *c)
{
    PGconn *conn = c->conn;
    c->conn = NULL;
    stop_all(c);
    c->step = S_DONE;
    c->cb(c->arg, conn, NULL);
}

/* How much an outcome says about the servers: the attempt over several hosts is paced and
 * counted by its most telling failure (a standby that answered beats a host that was down). */
static int rank(enum pge_attempt_outcome o)
{
    switch (o) {
    case PGE_ATTEMPT_FATAL:
        return 8;
    case PGE_ATTEMPT_STANDBY:
        return 7;
    case PGE_ATTEMPT_TOO_MANY:
        return 6;
    case PGE_ATTEMPT_STARTING:
        return 5;
    case PGE_ATTEMPT_OTHER:
        return 4;
    case PGE_ATTEMPT_TIMEOUT:
        return 3;
    case PGE_ATTEMPT_REFUSED:
        return 2;
    default:
        return 1;
    }
}

/* "host:port" of the host tried now, for messages naming each host's failure. */
static void host_name(const struct pge_pgconn *c, size_t i, char *buf, size_t size)
{
    const struct pge_conninfo_host *h = &c->params->hosts[i];
    int v6 = strchr(h->host, ':') != NULL;
    snprintf(buf, size, "%s%s%s:%s", v6 ? "[" : "", h->host[0] ? h->host : "(socket)",
             v6 ? "]" : "", h->port);
}

/* Host c->host failed with e: remember it and go on with the next host. Returns 1 when another
 * host is being tried, 0 when every host has failed (e then holds the attempt's verdict, with
 * each host's failure named in its message). */
static int next_host(struct pge_pgconn *c, struct pge_pgconn_error *e)
{
    char name[300];
    int final = e->verdict != PGE_OUT_NOT_READY,
        worst_final = c->worst.verdict != PGE_OUT_NOT_READY;
    if (c->nsteps <= 1)
        return 0;
    host_name(c, c->host, name, sizeof name);
    size_t used = strlen(c->failures);
    snprintf(c->failures + used, sizeof c->failures - used, "%s%s: %s", used ? "; " : "", name,
             e->message);
    /* A refusal for good (a wrong password) ends the attempt only if no host accepts us. */
    if (c->nfailed++ == 0 || (final && !worst_final) ||
        (final == worst_final && rank(e->outcome) > rank(c->worst.outcome)))
        c->worst = *e;
    ev_io_stop(c->loop, &c->io);
    pge_pgquery_free(c->q);
    c->q = NULL;
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    if (c->lookups[c->host].r) {
        pge_resolve_cancel(c->lookups[c->host].r);
        c->lookups[c->host].r = NULL;
        c->resolving--;
    }
    if (++c->host < c->nsteps) {
        ev_timer_stop(c->loop, &c->timer);
        ev_timer_set(&c->timer, (double)c->timeout_ms / 1000.0, 0.0);
        ev_timer_start(c->loop, &c->timer);
        pge_pgconn_begin_connect(c);
        return 1;
    }
    if (c->fallback) /* prefer-standby: no standby answered, any server will do */
        return 0;
    *e = c->worst;
    pge_errbuf_set(e->message, sizeof e->message, "%s", c->failures);
    return 0;
}

static void report(struct pge_pgconn *c, const struct pge_pgconn_error *e)
{
    struct pge_pgconn_error agg;
    /* A host that did not resolve, refused, timed out or answered as the wrong kind of server
     * does not stop the others. The password is the attempt's, not a host's: without it no
     * other host can be tried. */
    if (c->step != S_DONE && c->step != S_PASSWORD) {
        agg = *e;
        if (next_host(c, &agg))
            return;
        e = &agg;
        if (c->fallback) {
            if (c->conn)
                PQfinish(c->conn);
            c->conn = c->fallback;
            c->fallback = NULL;
            succeed(c);
            return;
        }
    }
    stop_all(c);
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->step = S_DONE;
    c->cb(c->arg, NULL, e);
}

void pge_pgconn_fail(struct pge_pgconn *c, enum pge_attempt_outcome outcome, const char *message,
                     const char *conn_message)
{
    struct pge_pgconn_error e;
    memset(&e, 0, sizeof e);
    e.verdict = PGE_OUT_NOT_READY;
    e.outcome = outcome;
    if (conn_message) {
        if (pge_sqlstate_sqlstate(conn_message, e.sqlstate) < 0)
            e.sqlstate[0] = '\0';
        e.needs_password = c->conn ? PQconnectionNeedsPassword(c->conn) : 0;
        e.verdict = pge_sqlstate_classify(e.sqlstate, conn_message, e.needs_password, &e.outcome);
        pge_sqlstate_short(conn_message, e.message, sizeof e.message);
    } else {
        pge_errbuf_set(e.message, sizeof e.message, "%s", message);
    }
    report(c, &e);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_pgconn *c = w->data;
    char msg[128], d[32];
    (void)loop;
    (void)revents;
    snprintf(msg, sizeof msg, "%s after %s",
             c->step == S_PASSWORD  ? "password command did not finish"
             : c->step == S_RESOLVE ? "name resolution timed out"
             : c->step == S_CONNECT ? "connection timed out"
                                    : "server did not answer the check query",
             pge_log_fmt_ms(c->timeout_ms, d, sizeof d));
    pge_pgconn_fail(c, PGE_ATTEMPT_TIMEOUT, msg, NULL);
}

static void on_check(void *arg, PGresult *res)
{
    struct pge_pgconn *c = arg;
    struct pge_pgconn_error e;
    if (!res) {
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
        return;
    }
    struct pge_pgconn_error any;
    int rc = pge_pgcheck_judge(c->conn, res, c->params->target, &e);
    /* prefer-standby: a server that is not a standby is kept in case no standby answers. */
    int keep = rc < 0 && c->params->target == PGE_CONNINFO_PREFER_STANDBY && !c->fallback &&
               pge_pgcheck_judge(c->conn, res, PGE_CONNINFO_ANY, &any) == 0;
    PQclear(res);
    if (rc == 0) {
        succeed(c);
        return;
    }
    if (keep) {
        c->fallback = c->conn;
        c->conn = NULL;
    }
    report(c, &e);
}

static void start_check(struct pge_pgconn *c)
{
    c->step = S_CHECK;
    ev_io_stop(c->loop, &c->io);
    pge_pgcheck_quiet_notices(c->conn);
    c->q = pge_pgquery_new(c->loop, c->conn);
    if (!c->q || pge_pgquery_send(c->q, pge_pgcheck_sql(c->conn), -1, NULL, on_check, c) < 0) {
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
        return;
    }
}

/* Advance PQconnectPoll; the socket may change between polls (next address or host). */
static void poll_connect(struct pge_pgconn *c, PostgresPollingStatusType st)
{
    for (;;) {
        switch (st) {
        case PGRES_POLLING_OK:
            start_check(c);
            return;
        case PGRES_POLLING_FAILED:
            pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
            return;
        case PGRES_POLLING_READING:
        case PGRES_POLLING_WRITING: {
            int fd = PQsocket(c->conn);
            int ev = st == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
            if (fd < 0) {
                st = PQconnectPoll(c->conn);
                continue;
            }
            ev_io_stop(c->loop, &c->io);
            ev_io_set(&c->io, fd, ev);
            ev_io_start(c->loop, &c->io);
            return;
        }
        default:
            st = PQconnectPoll(c->conn);
            continue;
        }
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_pgconn *c = w->data;
    (void)loop;
    (void)revents;
    poll_connect(c, PQconnectPoll(c->conn));
}

void pge_pgconn_started(struct pge_pgconn *c, PGconn *conn)
{
    c->step = S_CONNECT;
    c->conn = conn;
    if (!c->conn) {
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, "out of memory starting a connection", NULL);
        return;
    }
    /* Verbose messages carry the SQLSTATE of the server's refusal, which libpq does not
     * otherwise expose for a failed connection. */
    PQsetErrorVerbosity(c->conn, PQERRORS_VERBOSE);
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
        return;
    }
    poll_connect(c, PGRES_POLLING_WRITING);
}

static void on_password(void *arg, const char *password, const char *error)
{
    struct pge_pgconn *c = arg;
    char why[128];
    /* Both strings live in the run: copy before freeing it. */
    if (password) {
        pge_errbuf_set(c->password, sizeof c->password, "%s", password);
        c->have_password = 1;
    } else {
        pge_errbuf_set(why, sizeof why, "%s", error);
    }
    pge_password_free(c->pw);
    c->pw = NULL;
    if (!c->have_password) {
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, why, NULL);
        return;
    }
    pge_pgconn_connect_now(c);
}

/* --password-file is read here, on the loop: a bounded read of a small regular file (see
 * pge_password_read_file). --password-command runs as a child watched by the loop. */
static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_pgconn *c = w->data;
    const struct pge_conninfo *p = c->params;
    char err[512];
    (void)loop;
    (void)revents;
    if (p->password_file || p->password_command)
        c->step = S_PASSWORD;
    if (p->password_file) {
        if (pge_password_read_file(p->password_file, c->password, sizeof c->password, err,
                                   sizeof err) < 0) {
            pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, err, NULL);
            return;
        }
        c->have_password = 1;
    } else if (p->password_command) {
        c->pw = pge_password_run(c->loop, p->password_command, on_password, c, err, sizeof err);
        if (!c->pw)
            pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, err, NULL);
        return;
    }
    pge_pgconn_connect_now(c);
}

struct pge_pgconn *pge_pgconn_start(struct ev_loop *loop, struct pge_workqueue *off,
                                    const struct pge_conninfo *params, int64_t timeout_ms,
                                    pge_pgconn_cb cb, void *arg)
{
    struct pge_pgconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->off = off;
    c->params = params;
    c->cb = cb;
    c->arg = arg;
    c->timeout_ms = timeout_ms;
    c->nsteps = params->nhosts ? params->nhosts : 1;
    ev_timer_init(&c->timer, on_timeout, (double)timeout_ms / 1000.0, 0.0);
    c->timer.data = c;
    ev_init(&c->io, on_io);
    c->io.data = c;
    ev_timer_start(loop, &c->timer);
    /* The first step may fail at once; report it from the loop, never from inside start(). */
    c->step = S_RESOLVE;
    ev_timer_init(&c->kick, on_kick, 0.0, 0.0);
    c->kick.data = c;
    ev_timer_start(loop, &c->kick);
    return c;
}

void pge_pgconn_free(struct pge_pgconn *c)
{
    if (!c)
        return;
    stop_all(c);
    if (c->conn)
        PQfinish(c->conn);
    free(c);
}
