/* One non-blocking connection attempt: async DNS, PQconnectPoll, then a proof-of-work query. */
#include "pgentry/db/pgconn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/db/pgquery.h"

#define ADDRS_PER_HOST 4
#define MAX_ENTRIES    (PGE_CONNINFO_MAX_HOSTS * ADDRS_PER_HOST)

/* Proves the server accepts work and may be written to. PostgreSQL 14 and later report
 * in_hot_standby and default_transaction_read_only at connection start, so a trivial query is
 * proof enough there (and cheap on a server that just started, with cold catalog caches);
 * older servers are asked. */
#define CHECK_SQL       "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
#define CHECK_SQL_LIGHT "SELECT 1"

enum step { S_RESOLVE, S_CONNECT, S_CHECK, S_DONE };

struct entry {
    int host_index;
    char addr[INET6_ADDRSTRLEN];
};

/* What both kinds of worker job share: the attempt to report to (NULL once abandoned). */
struct attempt_job {
    struct pge_workqueue_job job;
    struct pge_pgconn *owner;
};

struct resolve_job {
    struct attempt_job base;
    /* inputs (copies: the job may outlive the attempt) */
    size_t nhosts;
    char *host[PGE_CONNINFO_MAX_HOSTS];
    char *port[PGE_CONNINFO_MAX_HOSTS];
    int need[PGE_CONNINFO_MAX_HOSTS];
    /* outputs */
    struct entry entries[MAX_ENTRIES];
    size_t nentries;
    int gai_error;
    size_t failed_host;
};

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
    struct attempt_job *job;
    PGconn *conn;
    struct pge_pgquery *q;
    int64_t timeout_ms;
};

/* "pgentry@<hostname>:<pid>": pg_stat_activity then tells which replica (and which process in
 * it) holds the migration lock. */
static const char *application_name(void)
{
    static char name[80];
    if (!name[0]) {
        char host[40] = "";
        if (gethostname(host, sizeof host) < 0)
            host[0] = '\0';
        host[sizeof host - 1] = '\0';
        snprintf(name, sizeof name, "pgentry@%s:%ld", host[0] ? host : "unknown", (long)getpid());
    }
    return name;
}

static void on_notice(void *arg, const char *message)
{
    char line[512];
    (void)arg;
    snprintf(line, sizeof line, "%s", message);
    line[strcspn(line, "\n")] = '\0';
    pge_debug("postgres notice", PGE_STR("notice", line));
}

/* NOTICE messages go to the debug log, not straight to stderr. */
static void quiet_notices(PGconn *conn)
{
    PQsetNoticeProcessor(conn, on_notice, NULL);
}

static void stop_all(struct pge_pgconn *c)
{
    ev_timer_stop(c->loop, &c->timer);
    ev_timer_stop(c->loop, &c->kick);
    ev_io_stop(c->loop, &c->io);
    if (c->job) {
        c->job->owner = NULL;
        pge_workqueue_cancel(&c->job->job);
        c->job = NULL;
    }
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

/* Fail with a message; classification from the libpq text when conn_message is set. */
static void fail(struct pge_pgconn *c, enum pge_attempt_outcome outcome, const char *message,
                 const char *conn_message)
{
    struct pge_pgconn_error e;
    memset(&e, 0, sizeof e);
    e.cls = PGE_SQLSTATE_RETRY;
    e.outcome = outcome;
    if (conn_message) {
        if (pge_sqlstate_sqlstate(conn_message, e.sqlstate) < 0)
            e.sqlstate[0] = '\0';
        e.needs_password = c->conn ? PQconnectionNeedsPassword(c->conn) : 0;
        e.cls = pge_sqlstate_classify(e.sqlstate, conn_message, e.needs_password, &e.outcome);
        pge_sqlstate_short(conn_message, e.message, sizeof e.message);
    } else {
        snprintf(e.message, sizeof e.message, "%s", message);
    }
    stop_all(c);
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->step = S_DONE;
    c->cb(c->arg, NULL, &e);
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
    if (!res) {
        fail(c, PGE_ATTEMPT_OTHER, NULL, PQerrorMessage(c->conn));
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char msg[512], st[6] = "";
        const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (sqlstate)
            snprintf(st, sizeof st, "%s", sqlstate);
        snprintf(msg, sizeof msg, "check query failed: %s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(res);
        struct pge_pgconn_error e;
        memset(&e, 0, sizeof e);
        snprintf(e.sqlstate, sizeof e.sqlstate, "%s", st);
        e.cls = pge_sqlstate_classify(st, msg, 0, &e.outcome);
        snprintf(e.message, sizeof e.message, "%s", msg);
        stop_all(c);
        PQfinish(c->conn);
        c->conn = NULL;
        c->step = S_DONE;
        c->cb(c->arg, NULL, &e);
        return;
    }
    int recovery, readonly;
    if (PQnfields(res) == 2) {
        recovery = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        readonly = strcmp(PQgetvalue(res, 0, 1), "on") == 0;
    } else {
        recovery = strcmp(PQparameterStatus(c->conn, "in_hot_standby"), "on") == 0;
        readonly = strcmp(PQparameterStatus(c->conn, "default_transaction_read_only"), "on") == 0;
    }
    PQclear(res);
    if (recovery || readonly) {
        fail(c, PGE_ATTEMPT_STANDBY,
             recovery ? "server is a read-only standby (in recovery), not the primary"
                      : "server accepts only read-only transactions "
                        "(default_transaction_read_only is on)",
             NULL);
        return;
    }
    succeed(c);
}

static void start_check(struct pge_pgconn *c)
{
    c->step = S_CHECK;
    ev_io_stop(c->loop, &c->io);
    quiet_notices(c->conn);
    c->q = pge_pgquery_new(c->loop, c->conn);
    const char *hs = PQparameterStatus(c->conn, "in_hot_standby");
    const char *ro = PQparameterStatus(c->conn, "default_transaction_read_only");
    const char *sql = hs && ro ? CHECK_SQL_LIGHT : CHECK_SQL;
    if (!c->q || pge_pgquery_send(c->q, sql, -1, NULL, on_check, c) < 0) {
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

static char *join(char *buf, size_t size, size_t *used, const char *item, int first)
{
    int n = snprintf(buf + *used, size - *used, "%s%s", first ? "" : ",", item);
    if (n < 0 || (size_t)n >= size - *used)
        return NULL;
    *used += (size_t)n;
    return buf;
}

static void begin_connect(struct pge_pgconn *c, const struct entry *entries, size_t n)
{
    const struct pge_conninfo *p = c->params;
    const char *kw[64 + 8];
    const char *val[64 + 8];
    size_t k = 0;
    char hosts[2048], addrs[2048], ports[512];
    size_t uh = 0, ua = 0, up = 0;

    for (size_t i = 0; i < p->n && k < 64; i++) {
        kw[k] = p->keywords[i];
        val[k++] = p->values[i];
    }
    hosts[0] = addrs[0] = ports[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct pge_conninfo_host *h = &p->hosts[entries[i].host_index];
        if (!join(hosts, sizeof hosts, &uh, h->host, i == 0) ||
            !join(addrs, sizeof addrs, &ua, entries[i].addr, i == 0) ||
            !join(ports, sizeof ports, &up, h->port, i == 0)) {
            fail(c, PGE_ATTEMPT_OTHER, "too many database addresses", NULL);
            return;
        }
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
    val[k++] = application_name();
    kw[k] = NULL;
    val[k] = NULL;

    connection_started(c, PQconnectStartParams(kw, val, 0));
}

/* Numeric hosts and sockets need no thread: fill what we can inline. Returns 1 when some
 * name still needs a real lookup. */
static int add_numeric(const char *host, const char *port, int host_index, struct entry *out,
                       size_t *n)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return 1;
    if (*n < MAX_ENTRIES) {
        out[*n].host_index = host_index;
        snprintf(out[*n].addr, sizeof out[*n].addr, "%s", host);
        (*n)++;
    }
    freeaddrinfo(res);
    return 0;
}

static void resolve_work(struct pge_workqueue_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    for (size_t i = 0; i < j->nhosts; i++) {
        struct addrinfo hints, *res = NULL;
        if (!j->need[i])
            continue;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        int rc = getaddrinfo(j->host[i], j->port[i], &hints, &res);
        if (rc != 0) {
            j->gai_error = rc;
            j->failed_host = i;
            continue;
        }
        size_t per = 0;
        for (struct addrinfo *a = res; a && per < ADDRS_PER_HOST && j->nentries < MAX_ENTRIES;
             a = a->ai_next) {
            struct entry *e = &j->entries[j->nentries];
            if (getnameinfo(a->ai_addr, a->ai_addrlen, e->addr, sizeof e->addr, NULL, 0,
                            NI_NUMERICHOST) != 0)
                continue;
            e->host_index = (int)i;
            j->nentries++;
            per++;
        }
        freeaddrinfo(res);
    }
}

static void resolve_release(struct pge_workqueue_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    for (size_t i = 0; i < j->nhosts; i++) {
        free(j->host[i]);
        free(j->port[i]);
    }
    free(j);
}

/* Merge inline entries with resolved ones in host order, then connect. */
static void resolve_done(struct pge_workqueue_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    struct pge_pgconn *c = j->base.owner;
    struct entry all[MAX_ENTRIES];
    size_t n = 0;
    const struct pge_conninfo *p;

    if (!c)
        return;
    c->job = NULL;
    p = c->params;
    if (j->nentries == 0 && j->gai_error) {
        char msg[512];
        snprintf(msg, sizeof msg, "could not resolve host \"%s\": %s", j->host[j->failed_host],
                 gai_strerror(j->gai_error));
        fail(c, PGE_ATTEMPT_DNS, msg, NULL);
        return;
    }
    for (size_t i = 0; i < p->nhosts; i++) {
        const struct pge_conninfo_host *h = &p->hosts[i];
        if (!j->need[i]) {
            if (n < MAX_ENTRIES) {
                all[n].host_index = (int)i;
                snprintf(all[n].addr, sizeof all[n].addr, "%s",
                         h->hostaddr    ? h->hostaddr
                         : h->is_socket ? ""
                                        : h->host);
                n++;
            }
            continue;
        }
        for (size_t k = 0; k < j->nentries; k++)
            if (j->entries[k].host_index == (int)i && n < MAX_ENTRIES)
                all[n++] = j->entries[k];
    }
    begin_connect(c, all, n);
}

static void resolve_and_connect(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    struct entry inline_entries[MAX_ENTRIES];
    size_t n = 0;
    int need_any = 0;
    int need[PGE_CONNINFO_MAX_HOSTS] = {0};

    for (size_t i = 0; i < p->nhosts; i++) {
        const struct pge_conninfo_host *h = &p->hosts[i];
        if (h->hostaddr || h->is_socket) {
            inline_entries[n].host_index = (int)i;
            snprintf(inline_entries[n].addr, sizeof inline_entries[n].addr, "%s",
                     h->hostaddr ? h->hostaddr : "");
            n++;
            continue;
        }
        if (add_numeric(h->host, h->port, (int)i, inline_entries, &n)) {
            need[i] = 1;
            need_any = 1;
        }
    }
    if (!need_any) {
        begin_connect(c, inline_entries, n);
        return;
    }

    struct resolve_job *j = calloc(1, sizeof *j);
    if (!j) {
        fail(c, PGE_ATTEMPT_OTHER, "out of memory", NULL);
        return;
    }
    j->base.job.work = resolve_work;
    j->base.job.done = resolve_done;
    j->base.job.release = resolve_release;
    j->base.owner = c;
    j->nhosts = p->nhosts;
    for (size_t i = 0; i < p->nhosts; i++) {
        j->host[i] = strdup(p->hosts[i].host);
        j->port[i] = strdup(p->hosts[i].port);
        j->need[i] = need[i];
        if (!j->host[i] || !j->port[i]) {
            j->nhosts = i + 1;
            resolve_release(&j->base.job);
            fail(c, PGE_ATTEMPT_OTHER, "out of memory", NULL);
            return;
        }
    }
    if (pge_workqueue_submit(c->off, &j->base.job) < 0) {
        resolve_release(&j->base.job);
        fail(c, PGE_ATTEMPT_OTHER, "could not start a resolver thread", NULL);
        return;
    }
    c->job = &j->base;
    c->step = S_RESOLVE;
}

/* With a service file and no host of our own, only libpq knows the host: let it start the
 * connection (and resolve) on a worker thread; polling then continues on the loop. */
struct start_job {
    struct attempt_job base;
    const char **kw;
    const char **val;
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
    free(j);
}

static void start_done(struct pge_workqueue_job *job)
{
    struct start_job *j = (struct start_job *)job;
    struct pge_pgconn *c = j->base.owner;
    if (!c)
        return;
    c->job = NULL;
    PGconn *conn = j->conn;
    j->conn = NULL;
    connection_started(c, conn);
}

static void start_in_thread(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    struct start_job *j = calloc(1, sizeof *j);
    if (!j) {
        fail(c, PGE_ATTEMPT_OTHER, "out of memory", NULL);
        return;
    }
    j->kw = calloc(p->n + 2, sizeof *j->kw);
    j->val = calloc(p->n + 2, sizeof *j->val);
    if (!j->kw || !j->val) {
        start_release(&j->base.job);
        fail(c, PGE_ATTEMPT_OTHER, "out of memory", NULL);
        return;
    }
    /* The strings belong to params, which outlives every attempt and its job. */
    for (size_t i = 0; i < p->n; i++) {
        j->kw[i] = p->keywords[i];
        j->val[i] = p->values[i];
    }
    j->kw[p->n] = "fallback_application_name";
    j->val[p->n] = application_name();
    j->base.job.work = start_work;
    j->base.job.done = start_done;
    j->base.job.release = start_release;
    j->base.owner = c;
    if (pge_workqueue_submit(c->off, &j->base.job) < 0) {
        start_release(&j->base.job);
        fail(c, PGE_ATTEMPT_OTHER, "could not start a connection thread", NULL);
        return;
    }
    c->job = &j->base;
    c->step = S_RESOLVE;
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
