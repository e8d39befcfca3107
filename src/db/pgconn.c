/* One non-blocking connection attempt: async DNS, PQconnectPoll, then a proof-of-work query. */
#include "pgentry/db/pgconn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/log.h"
#include "pgentry/db/pgcheck.h"
#include "pgentry/db/pgquery.h"
#include "pgentry/net/resolve.h"

#define ADDRS_PER_HOST 4
#define HOSTS_MAX      2048 /* the host and hostaddr lists */
#define PORTS_MAX      512

enum step { S_RESOLVE, S_CONNECT, S_CHECK, S_DONE };

/* The addresses of one conninfo host that names a server: looked up on a thread. */
struct lookup {
    struct pge_pgconn *c;
    struct pge_resolve *r; /* while the lookup runs */
    int needed;            /* a name: not an IP literal, a hostaddr or a socket directory */
    char addr[ADDRS_PER_HOST][INET6_ADDRSTRLEN];
    size_t n;
};

struct start_job;

struct pge_pgconn {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    const struct pge_conninfo *params;
    enum step step;
    pge_pgconn_cb cb;
    void *arg;
    ev_timer timer;
    ev_timer kick;
    ev_io io;
    struct lookup lookups[PGE_CONNINFO_MAX_HOSTS];
    size_t resolving;        /* lookups still running */
    int dns_failed_host;     /* the last host that did not resolve, -1 when none */
    char dns_error[512];     /* why it did not */
    struct start_job *start; /* libpq starting the connection on a thread */
    PGconn *conn;
    struct pge_pgquery *q;
    int64_t timeout_ms;
};

static void forget_start(struct pge_pgconn *c);

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
    forget_start(c);
    pge_pgquery_free(c->q);
    c->q = NULL;
}

static void succeed(struct pge_pgconn *c)
{
    PGconn *conn = c->conn;
    c->conn = NULL;
    stop_all(c);
    c->step = S_DONE;
    c->cb(c->arg, conn, NULL);
}

static void report(struct pge_pgconn *c, const struct pge_pgconn_error *e)
{
    stop_all(c);
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->step = S_DONE;
    c->cb(c->arg, NULL, e);
}

/* Fail with a message; classification from the libpq text when conn_message is set. */
static void fail(struct pge_pgconn *c, enum pge_attempt_outcome outcome, const char *message,
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
             c->step == S_RESOLVE   ? "name resolution timed out"
             : c->step == S_CONNECT ? "connection timed out"
                                    : "server did not answer the check query",
             pge_log_fmt_ms(c->timeout_ms, d, sizeof d));
    fail(c, PGE_ATTEMPT_TIMEOUT, msg, NULL);
}

static void on_check(void *arg, PGresult *res)
{
    struct pge_pgconn *c = arg;
    struct pge_pgconn_error e;
    if (!res) {
        fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
        return;
    }
    int rc = pge_pgcheck_judge(c->conn, res, &e);
    PQclear(res);
    if (rc < 0)
        report(c, &e);
    else
        succeed(c);
}

static void start_check(struct pge_pgconn *c)
{
    c->step = S_CHECK;
    ev_io_stop(c->loop, &c->io);
    pge_pgcheck_quiet_notices(c->conn);
    c->q = pge_pgquery_new(c->loop, c->conn);
    if (!c->q || pge_pgquery_send(c->q, pge_pgcheck_sql(c->conn), -1, NULL, on_check, c) < 0) {
        fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
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
            fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
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

/* PQconnectStartParams() has returned conn: poll it from the loop from now on. */
static void connection_started(struct pge_pgconn *c, PGconn *conn)
{
    c->step = S_CONNECT;
    c->conn = conn;
    if (!c->conn) {
        fail(c, PGE_ATTEMPT_OTHER, "out of memory starting a connection", NULL);
        return;
    }
    /* Verbose messages carry the SQLSTATE of the server's refusal, which libpq does not
     * otherwise expose for a failed connection. */
    PQsetErrorVerbosity(c->conn, PQERRORS_VERBOSE);
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
        return;
    }
    poll_connect(c, PGRES_POLLING_WRITING);
}

static int join(char *buf, size_t size, size_t *used, const char *item, int first)
{
    int n = snprintf(buf + *used, size - *used, "%s%s", first ? "" : ",", item);
    if (n < 0 || (size_t)n >= size - *used)
        return -1;
    *used += (size_t)n;
    return 0;
}

/* libpq's host, hostaddr and port lists: one item per address, in the order of the hosts. A
 * host that needed no lookup is its own address ("" for a socket directory). Returns the
 * number of addresses, or -1 when the lists do not fit. */
static int address_lists(const struct pge_pgconn *c, char *hosts, char *addrs, char *ports)
{
    const struct pge_conninfo *p = c->params;
    size_t uh = 0, ua = 0, up = 0;
    int n = 0;
    hosts[0] = addrs[0] = ports[0] = '\0';
    for (size_t i = 0; i < p->nhosts; i++) {
        const struct pge_conninfo_host *h = &p->hosts[i];
        const struct lookup *l = &c->lookups[i];
        const char *own = h->hostaddr ? h->hostaddr : h->is_socket ? "" : h->host;
        for (size_t k = 0; k < (l->needed ? l->n : 1); k++, n++)
            if (join(hosts, HOSTS_MAX, &uh, h->host, n == 0) < 0 ||
                join(addrs, HOSTS_MAX, &ua, l->needed ? l->addr[k] : own, n == 0) < 0 ||
                join(ports, PORTS_MAX, &up, h->port, n == 0) < 0)
                return -1;
    }
    return n;
}

/* Every lookup has answered: connect to what they found. */
static void begin_connect(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    const char *kw[64 + 8];
    const char *val[64 + 8];
    size_t k = 0;
    char hosts[HOSTS_MAX], addrs[HOSTS_MAX], ports[PORTS_MAX];

    for (size_t i = 0; i < p->n && k < 64; i++) {
        kw[k] = p->keywords[i];
        val[k++] = p->values[i];
    }
    int n = address_lists(c, hosts, addrs, ports);
    if (n < 0) {
        fail(c, PGE_ATTEMPT_OTHER, "too many database addresses", NULL);
        return;
    }
    if (n > 0) {
        kw[k] = "host";
        val[k++] = hosts;
        kw[k] = "hostaddr";
        val[k++] = addrs;
        kw[k] = "port";
        val[k++] = ports;
    }
    kw[k] = "fallback_application_name";
    val[k++] = pge_pgcheck_application_name();
    kw[k] = NULL;
    val[k] = NULL;

    connection_started(c, PQconnectStartParams(kw, val, 0));
}

static size_t resolved_total(const struct pge_pgconn *c)
{
    size_t n = 0;
    for (size_t i = 0; i < PGE_CONNINFO_MAX_HOSTS; i++)
        n += c->lookups[i].n;
    return n;
}

static void on_resolved(void *arg, const struct pge_resolve_addr *addrs, size_t n,
                        const char *error)
{
    struct lookup *l = arg;
    struct pge_pgconn *c = l->c;
    int index = (int)(l - c->lookups);
    l->r = NULL;
    if (error && index >= c->dns_failed_host) {
        c->dns_failed_host = index;
        pge_errbuf_set(c->dns_error, sizeof c->dns_error, "%s", error);
    }
    for (size_t k = 0; k < n && l->n < ADDRS_PER_HOST; k++)
        if (getnameinfo((const struct sockaddr *)&addrs[k].ss, addrs[k].len, l->addr[l->n],
                        sizeof l->addr[l->n], NULL, 0, NI_NUMERICHOST) == 0)
            l->n++;
    if (--c->resolving > 0)
        return;
    /* Some name failed and no name gave an address: nothing worth a connection attempt. */
    if (c->dns_failed_host >= 0 && resolved_total(c) == 0)
        fail(c, PGE_ATTEMPT_DNS, c->dns_error, NULL);
    else
        begin_connect(c);
}

/* Numeric hosts and sockets need no thread; every name gets its own lookup. */
static void resolve_and_connect(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    char err[128];

    c->dns_failed_host = -1;
    for (size_t i = 0; i < p->nhosts; i++) {
        const struct pge_conninfo_host *h = &p->hosts[i];
        struct lookup *l = &c->lookups[i];
        l->c = c;
        if (h->hostaddr || h->is_socket || pge_resolve_numeric(h->host, h->port, NULL, 0) >= 0)
            continue;
        l->needed = 1;
        l->r = pge_resolve_start(c->off, h->host, h->port, on_resolved, l, err, sizeof err);
        if (!l->r) {
            fail(c, PGE_ATTEMPT_OTHER, err, NULL);
            return;
        }
        c->resolving++;
    }
    if (c->resolving == 0)
        begin_connect(c);
}

/* With a service file and no host of our own, only libpq knows the host: let it start the
 * connection (and resolve) on a worker thread; polling then continues on the loop. */
struct start_job {
    struct pge_workqueue_job job;
    struct pge_pgconn *owner; /* NULL once the attempt is abandoned */
    const char **kw;
    const char **val;
    char *strings; /* copies of the settings: the attempt and its params may go meanwhile */
    PGconn *conn;
};

static void start_work(struct pge_workqueue_job *job)
{
    struct start_job *j = (struct start_job *)job;
    j->conn = PQconnectStartParams(j->kw, j->val, 0);
}

static void start_release(struct pge_workqueue_job *job)
{
    struct start_job *j = (struct start_job *)job;
    if (j->conn)
        PQfinish(j->conn);
    free(j->kw);
    free(j->val);
    free(j->strings);
    free(j);
}

static void start_done(struct pge_workqueue_job *job)
{
    struct start_job *j = (struct start_job *)job;
    struct pge_pgconn *c = j->owner;
    if (!c)
        return;
    c->start = NULL;
    PGconn *conn = j->conn;
    j->conn = NULL;
    connection_started(c, conn);
}

static void forget_start(struct pge_pgconn *c)
{
    if (!c->start)
        return;
    c->start->owner = NULL;
    pge_workqueue_cancel(&c->start->job);
    c->start = NULL;
}

static void start_in_thread(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    struct start_job *j = calloc(1, sizeof *j);
    const char *why = "out of memory";
    if (!j)
        goto error;
    j->job.work = start_work;
    j->job.done = start_done;
    j->job.release = start_release;
    j->kw = calloc(p->n + 2, sizeof *j->kw);
    j->val = calloc(p->n + 2, sizeof *j->val);
    size_t total = 1;
    for (size_t i = 0; i < p->n; i++)
        total += strlen(p->keywords[i]) + strlen(p->values[i]) + 2;
    j->strings = malloc(total);
    if (!j->kw || !j->val || !j->strings)
        goto error;
    /* The thread reads its own copies: freeing the attempt (or params, at shutdown) while
     * PQconnectStartParams() runs must not pull them away. */
    char *pool = j->strings;
    for (size_t i = 0; i < p->n; i++) {
        j->kw[i] = pool;
        pool = stpcpy(pool, p->keywords[i]) + 1;
        j->val[i] = pool;
        pool = stpcpy(pool, p->values[i]) + 1;
    }
    j->kw[p->n] = "fallback_application_name";
    j->val[p->n] = pge_pgcheck_application_name();
    j->owner = c;
    if (pge_workqueue_submit(c->off, &j->job) < 0) {
        why = "could not start a connection thread";
        goto error;
    }
    c->start = j;
    c->step = S_RESOLVE;
    return;
error:
    if (j)
        start_release(&j->job);
    fail(c, PGE_ATTEMPT_OTHER, why, NULL);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_pgconn *c = w->data;
    (void)loop;
    (void)revents;
    if (c->params->nhosts == 0 && c->params->uses_service)
        start_in_thread(c);
    else
        resolve_and_connect(c);
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
