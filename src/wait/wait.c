/* Wait for every dependency at once (PostgreSQL, TCP, HTTP) with backoff and one deadline. */
#include "pgentry/wait/wait.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/backoff.h"
#include "pgentry/common/clear.h"
#include "pgentry/net/httpprobe.h"
#include "pgentry/common/log.h"
#include "pgentry/common/parse.h"
#include "pgentry/common/redact.h"
#include "pgentry/common/throttle.h"
#include "pgentry/db/createdb.h"
#include "pgentry/db/pgconn.h"
#include "pgentry/net/tcpprobe.h"

#define MAX_DEPS          64
#define FIRST_REPEAT_LOG  1000 /* ms before repeating an unchanged failure */
#define STARTING_FAST_MS  2000 /* 57P03 is retried quickly this long */
#define STARTING_CEIL_MS  5
#define COSTLY_FLOOR_MS   100
#define BUSY_FLOOR_MAX_MS 5000 /* 53300: the floor grows up to this */
#define STANDBY_PACE_MS   250  /* a standby is asked again this often */
#define MAX_REPEAT_LOG    30000

enum dep_kind { DEP_POSTGRES, DEP_TCP, DEP_HTTP };

struct dep {
    struct pge_wait *w;
    enum dep_kind kind;
    char name[16];     /* "postgres", "tcp", "http" */
    char target[1024]; /* redacted */
    const struct pge_conninfo *db;
    char host[256];
    int port;
    char *url;
    int ready;
    unsigned attempts;
    struct pge_backoff backoff;
    ev_timer retry;
    struct pge_pgconn *pg;
    struct pge_createdb *create; /* --create-database at work */
    int created;                 /* it ran once: a second 3D000 is final */
    struct pge_tcpprobe *tcp;
    struct pge_httpprobe *http;
    PGconn *conn;               /* kept from a successful PostgreSQL attempt */
    struct pge_tcpprobe *knock; /* PostgreSQL: a bare connect() first while the port is closed */
    enum pge_attempt_outcome last_outcome;
    int64_t streak_since_ms; /* when last_outcome was first seen in a row */
    struct pge_throttle log; /* keyed by outcome + sqlstate + message of the failure */
};

struct pge_wait {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    struct pge_curlloop *curl;
    struct pge_runstate *state;
    struct pge_wait_opts opts;
    pge_wait_cb cb;
    void *arg;
    struct dep *deps[MAX_DEPS];
    size_t ndeps;
    size_t nready;
    int64_t start_ms;
    int64_t deadline_ms; /* 0: none */
    ev_timer kick;
    enum pge_outcome_kind kick_outcome; /* what the kick timer reports */
    int done;
};

static int64_t now_ms(void)
{
    return pge_runstate_mono_ms();
}

static void stop_dep(struct dep *d)
{
    ev_timer_stop(d->w->loop, &d->retry);
    PGE_CLEAR(d->pg, pge_pgconn_free);
    PGE_CLEAR(d->create, pge_createdb_free);
    PGE_CLEAR(d->tcp, pge_tcpprobe_free);
    PGE_CLEAR(d->knock, pge_tcpprobe_free);
    PGE_CLEAR(d->http, pge_httpprobe_free);
}

void pge_wait_pacing(enum pge_attempt_outcome outcome, int64_t streak_ms, int64_t *floor_ms,
                     int64_t *ceil_ms)
{
    *floor_ms = 0;
    *ceil_ms = INT64_MAX;
    switch (outcome) {
    case PGE_ATTEMPT_STARTING:
        if (streak_ms < STARTING_FAST_MS)
            *ceil_ms = STARTING_CEIL_MS;
        break;
    case PGE_ATTEMPT_STANDBY:
        /* A standby may be promoted any moment, and then every millisecond counts; each look
         * costs it a backend fork. A fixed pace keeps both small however long it waited. */
        *floor_ms = *ceil_ms = STANDBY_PACE_MS;
        break;
    case PGE_ATTEMPT_TOO_MANY:
        /* The server is up and says no: every attempt costs it a backend, and the answer will
         * not change within milliseconds. Wait at least as long as it has been saying so,
         * which doubles the wait with each answer, from 100 ms up to a few seconds. */
        *floor_ms = streak_ms < COSTLY_FLOOR_MS     ? COSTLY_FLOOR_MS
                    : streak_ms > BUSY_FLOOR_MAX_MS ? BUSY_FLOOR_MAX_MS
                                                    : streak_ms;
        break;
    case PGE_ATTEMPT_DNS:
    case PGE_ATTEMPT_HTTP_STATUS:
    case PGE_ATTEMPT_OTHER:
        *floor_ms = COSTLY_FLOOR_MS;
        break;
    default:
        break;
    }
}

static void finish(struct pge_wait *w, enum pge_outcome_kind outcome)
{
    PGconn *conn = NULL;
    w->done = 1;
    for (size_t i = 0; i < w->ndeps; i++) {
        struct dep *d = w->deps[i];
        stop_dep(d);
        if (d->conn) {
            if (outcome == PGE_OUT_OK && !conn)
                conn = d->conn;
            else
                PQfinish(d->conn);
            d->conn = NULL;
        }
    }
    ev_timer_stop(w->loop, &w->kick);
    w->cb(w->arg, outcome, conn);
}

static void start_attempt(struct dep *d);
static void failed(struct dep *d, enum pge_attempt_outcome o, const char *sqlstate,
                   const char *message);
static void on_pg(void *arg, PGconn *conn, const struct pge_pgconn_error *err);

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    start_attempt(t->data);
}

static int64_t time_left(const struct pge_wait *w, int64_t now)
{
    return w->deadline_ms ? (w->deadline_ms > now ? w->deadline_ms - now : 0) : -1;
}

static void record(struct pge_wait *w, struct dep *d, enum pge_attempt_outcome o,
                   const char *message)
{
    if (!w->state || d->kind != DEP_POSTGRES)
        return;
    w->state->db.attempts = d->attempts;
    w->state->db.attempts_by_outcome[o]++;
    /* /status shows it: through the same scrubber as the log lines. */
    if (message)
        pge_log_scrub(message, w->state->db.last_error, sizeof w->state->db.last_error);
}

static void ready(struct dep *d)
{
    struct pge_wait *w = d->w;
    int64_t now = now_ms();
    char server[300] = "";
    d->ready = 1;
    w->nready++;
    record(w, d, PGE_ATTEMPT_OK, NULL);
    if (w->state && d->kind == DEP_POSTGRES) {
        w->state->db.ready = 1;
        w->state->db.last_error[0] = '\0';
        w->state->db.ready_after_ms = now - w->state->start_mono_ms;
    }
    /* Which of several hosts answered (the name as given: the URL's own words). */
    if (d->conn) {
        const char *h = PQhost(d->conn), *port = PQport(d->conn);
        int v6 = h && strchr(h, ':');
        snprintf(server, sizeof server, "%s%s%s:%s", v6 ? "[" : "", h && h[0] ? h : "(socket)",
                 v6 ? "]" : "", port ? port : "");
    }
    pge_info(d->kind == DEP_POSTGRES ? "database is ready" : "dependency is ready",
             PGE_STR("dependency", d->name), PGE_STR("target", d->target),
             PGE_STR("server", server), PGE_INT("attempts", d->attempts),
             PGE_MS("elapsed", now - w->start_ms));
    if (w->nready == w->ndeps)
        finish(w, PGE_OUT_OK);
}

/* PostgreSQL refused us for good, or the settings cannot work: stop waiting at once. */
static void give_up(struct dep *d, const struct pge_pgconn_error *err)
{
    struct pge_wait *w = d->w;
    const char *fix =
        err->verdict == PGE_OUT_REFUSED
            ? pge_sqlstate_explain(err->sqlstate[0] ? err->sqlstate : NULL, err->needs_password)
            : "correct the connection settings in DATABASE_URL";
    record(w, d, err->outcome, err->message);
    pge_error(err->verdict == PGE_OUT_REFUSED ? "PostgreSQL refused the connection for good"
                                              : "the database connection cannot work as configured",
              PGE_STR("dependency", d->name), PGE_STR("target", d->target),
              PGE_STR("sqlstate", err->sqlstate), PGE_STR("error", err->message),
              PGE_STR("fix", fix));
    finish(w, err->verdict);
}

/* One attempt failed: decide whether to log, then retry or give up at the deadline. */
static void failed(struct dep *d, enum pge_attempt_outcome o, const char *sqlstate,
                   const char *message)
{
    struct pge_wait *w = d->w;
    int64_t now = now_ms();
    int64_t delay = 0;
    char sig[PGE_THROTTLE_KEY_MAX];
    char d1[32];

    record(w, d, o, message);
    if (o != d->last_outcome || d->attempts == 1) {
        d->last_outcome = o;
        d->streak_since_ms = now;
    }
    int64_t floor_ms, ceil_ms;
    pge_wait_pacing(o, now - d->streak_since_ms, &floor_ms, &ceil_ms);
    enum pge_backoff_verdict v =
        pge_backoff_next_clamped(&d->backoff, now, w->deadline_ms, floor_ms, ceil_ms, &delay);
    if (v == PGE_BACKOFF_EXPIRED) {
        pge_error("gave up waiting: dependency not ready before --wait-timeout",
                  PGE_STR("dependency", d->name), PGE_STR("target", d->target),
                  PGE_INT("attempts", d->attempts), PGE_MS("waited", now - w->start_ms),
                  PGE_STR("sqlstate", sqlstate ? sqlstate : ""), PGE_STR("error", message));
        for (size_t i = 0; i < w->ndeps; i++)
            if (w->deps[i] != d && !w->deps[i]->ready)
                pge_error("also not ready", PGE_STR("dependency", w->deps[i]->name),
                          PGE_STR("target", w->deps[i]->target),
                          PGE_INT("attempts", w->deps[i]->attempts));
        finish(w, PGE_OUT_NOT_READY);
        return;
    }

    /* Log what changed at once; an unchanged failure only at growing intervals. */
    snprintf(sig, sizeof sig, "%s|%s|%s", pge_runstate_outcome_name(o), sqlstate ? sqlstate : "",
             message);
    enum pge_throttle_verdict seen = pge_throttle_should_log(&d->log, sig, now);
    if (seen != PGE_THROTTLE_QUIET) {
        int changed = seen == PGE_THROTTLE_CHANGED;
        pge_info(
            changed ? (d->attempts == 1 ? "waiting for dependency" : "dependency failure changed")
                    : "still waiting for dependency",
            PGE_STR("dependency", d->name), PGE_STR("target", d->target),
            PGE_INT("attempt", d->attempts), PGE_STR("outcome", pge_runstate_outcome_name(o)),
            PGE_STR("sqlstate", sqlstate ? sqlstate : ""), PGE_STR("error", message),
            PGE_MS("next_delay", delay),
            PGE_STR("time_left",
                    w->deadline_ms ? pge_log_fmt_ms(time_left(w, now), d1, sizeof d1) : "forever"));
    } else {
        pge_debug("dependency attempt failed", PGE_STR("dependency", d->name),
                  PGE_INT("attempt", d->attempts), PGE_STR("error", message),
                  PGE_MS("next_delay", delay));
    }
    ev_timer_set(&d->retry, (double)delay / 1000.0, 0.0);
    ev_timer_start(w->loop, &d->retry);
}

/* --create-database answered: connect again at once, retry later, or give up (77). */
static void on_created(void *arg, enum pge_createdb_result r, const char *sqlstate,
                       const char *message)
{
    struct dep *d = arg;
    const char *name = pge_createdb_name(d->db);
    pge_createdb_free(d->create);
    d->create = NULL;
    switch (r) {
    case PGE_CREATEDB_CREATED:
    case PGE_CREATEDB_EXISTS:
        d->created = 1;
        pge_info(r == PGE_CREATEDB_CREATED ? "database created (--create-database)"
                                           : "database created meanwhile by another instance",
                 PGE_STR("database", name ? name : ""), PGE_STR("target", d->target));
        ev_timer_set(&d->retry, 0.0, 0.0);
        ev_timer_start(d->w->loop, &d->retry);
        return;
    case PGE_CREATEDB_RETRY:
        failed(d, PGE_ATTEMPT_OTHER, sqlstate, message);
        return;
    case PGE_CREATEDB_REFUSED:
        break;
    }
    record(d->w, d, PGE_ATTEMPT_FATAL, message);
    pge_error("could not create the database (--create-database)",
              PGE_STR("database", name ? name : ""), PGE_STR("target", d->target),
              PGE_STR("sqlstate", sqlstate), PGE_STR("error", message),
              PGE_STR("fix", strcmp(sqlstate, "42501") == 0
                                 ? "grant the role CREATEDB (ALTER ROLE ... CREATEDB), or create "
                                   "the database beforehand"
                                 : "create the database beforehand, or fix the connection "
                                   "settings"));
    finish(d->w, PGE_OUT_REFUSED);
}

/* 3D000 with --create-database: create it through a maintenance database. 0, or -1 when that
 * cannot start (no database name known, out of memory): the 3D000 stays final. */
static int create_database(struct dep *d)
{
    struct pge_wait *w = d->w;
    const char *name = pge_createdb_name(d->db);
    pge_info("database does not exist: creating it (--create-database)",
             PGE_STR("database", name ? name : ""), PGE_STR("target", d->target));
    d->create =
        pge_createdb_start(w->loop, w->off, d->db, w->opts.connect_timeout_ms, on_created, d);
    return d->create ? 0 : -1;
}

static void on_pg(void *arg, PGconn *conn, const struct pge_pgconn_error *err)
{
    struct dep *d = arg;
    pge_pgconn_free(d->pg);
    d->pg = NULL;
    if (conn) {
        d->conn = conn;
        ready(d);
        return;
    }
    if (d->w->opts.create_database && !d->created && strcmp(err->sqlstate, "3D000") == 0 &&
        create_database(d) == 0)
        return;
    if (err->verdict != PGE_OUT_NOT_READY)
        give_up(d, err);
    else
        failed(d, err->outcome, err->sqlstate, err->message);
}

/* A TCP or HTTP probe has answered. */
static void probe_answered(struct dep *d, int ok, enum pge_attempt_outcome o, const char *message)
{
    if (ok)
        ready(d);
    else
        failed(d, o, NULL, message);
}

static void on_tcp(void *arg, int ok, enum pge_attempt_outcome o, const char *message)
{
    struct dep *d = arg;
    pge_tcpprobe_free(d->tcp);
    d->tcp = NULL;
    probe_answered(d, ok, o, message);
}

static void on_http(void *arg, int ok, long status, enum pge_attempt_outcome o, const char *message)
{
    struct dep *d = arg;
    (void)status;
    pge_httpprobe_free(d->http);
    d->http = NULL;
    probe_answered(d, ok, o, message);
}

/* A probe could not even start (out of memory). Report from the loop: the caller may still
 * use w. */
static void start_failed(struct dep *d)
{
    pge_error("could not start a dependency check (out of memory)", PGE_STR("dependency", d->name));
    d->w->kick_outcome = PGE_OUT_INTERNAL;
    ev_timer_start(d->w->loop, &d->w->kick);
}

static void start_pg(struct dep *d)
{
    struct pge_wait *w = d->w;
    d->pg = pge_pgconn_start(w->loop, w->off, d->db, w->opts.connect_timeout_ms, on_pg, d);
    if (!d->pg)
        start_failed(d);
}

/* The port accepted a bare connection: now the real attempt, in the same breath. */
static void on_knock(void *arg, int ok, enum pge_attempt_outcome o, const char *message)
{
    struct dep *d = arg;
    pge_tcpprobe_free(d->knock);
    d->knock = NULL;
    if (!ok) {
        failed(d, o, NULL, message);
        return;
    }
    start_pg(d);
}

/* While nothing listens, a bare connect() (tens of microseconds) tells as much as a libpq
 * attempt (hundreds): it lets pgentry look often without burning CPU. Only for one TCP host,
 * the common container case. */
static int knock_first(const struct dep *d)
{
    const struct pge_conninfo *p = d->db;
    return d->last_outcome == PGE_ATTEMPT_REFUSED && d->attempts > 1 && p->nhosts == 1 &&
           !p->hosts[0].is_socket && !p->uses_service;
}

static void start_attempt(struct dep *d)
{
    struct pge_wait *w = d->w;
    d->attempts++;
    switch (d->kind) {
    case DEP_POSTGRES:
        if (knock_first(d)) {
            const struct pge_conninfo_host *h = &d->db->hosts[0];
            d->knock = pge_tcpprobe_start(w->loop, w->off, h->hostaddr ? h->hostaddr : h->host,
                                          atoi(h->port), w->opts.connect_timeout_ms, on_knock, d);
            if (!d->knock)
                start_failed(d);
            return;
        }
        start_pg(d);
        return;
    case DEP_TCP:
        d->tcp = pge_tcpprobe_start(w->loop, w->off, d->host, d->port, w->opts.connect_timeout_ms,
                                    on_tcp, d);
        if (!d->tcp)
            start_failed(d);
        return;
    case DEP_HTTP:
        d->http = pge_httpprobe_start(w->curl, d->url, w->opts.connect_timeout_ms, on_http, d);
        if (!d->http)
            start_failed(d);
        return;
    }
}

static void on_kick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct pge_wait *w = t->data;
    (void)loop;
    (void)revents;
    finish(w, w->kick_outcome);
}

struct pge_wait *pge_wait_new(struct ev_loop *loop, struct pge_workqueue *off,
                              struct pge_curlloop *curl, struct pge_runstate *state,
                              const struct pge_wait_opts *opts, pge_wait_cb cb, void *arg)
{
    struct pge_wait *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->loop = loop;
    w->off = off;
    w->curl = curl;
    w->state = state;
    w->opts = *opts;
    w->cb = cb;
    w->arg = arg;
    ev_timer_init(&w->kick, on_kick, 0.0, 0.0);
    w->kick.data = w;
    return w;
}

static struct dep *add(struct pge_wait *w, enum dep_kind kind, const char *name)
{
    if (w->ndeps == MAX_DEPS)
        return NULL;
    struct dep *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->w = w;
    d->kind = kind;
    snprintf(d->name, sizeof d->name, "%s", name);
    pge_backoff_init(&d->backoff, w->opts.backoff_initial_ms, w->opts.backoff_max_ms,
                     w->opts.seed + 0x9e3779b9ULL * (w->ndeps + 1));
    ev_init(&d->retry, on_retry);
    d->retry.data = d;
    pge_throttle_init(&d->log, FIRST_REPEAT_LOG, MAX_REPEAT_LOG);
    w->deps[w->ndeps++] = d;
    return d;
}

int pge_wait_add_postgres(struct pge_wait *w, const struct pge_conninfo *params)
{
    struct dep *d = add(w, DEP_POSTGRES, "postgres");
    if (!d)
        return -1;
    d->db = params;
    snprintf(d->target, sizeof d->target, "%s", params->display);
    return 0;
}

int pge_wait_add_tcp(struct pge_wait *w, const char *hostport)
{
    char host[256];
    int port;
    if (pge_parse_hostport(hostport, host, sizeof host, &port) < 0 || !host[0])
        return -1;
    struct dep *d = add(w, DEP_TCP, "tcp");
    if (!d)
        return -1;
    snprintf(d->host, sizeof d->host, "%s", host);
    d->port = port;
    snprintf(d->target, sizeof d->target, "%s", hostport);
    return 0;
}

int pge_wait_add_http(struct pge_wait *w, const char *url)
{
    if (!w->curl)
        return -1; /* a caller's bug: HTTP needs the curl driver */
    struct dep *d = add(w, DEP_HTTP, "http");
    if (!d)
        return -1;
    d->url = strdup(url);
    if (!d->url)
        return -1;
    pge_redact(url, d->target, sizeof d->target);
    return 0;
}

void pge_wait_start(struct pge_wait *w)
{
    w->start_ms = now_ms();
    w->deadline_ms = w->opts.wait_timeout_ms > 0 ? w->start_ms + w->opts.wait_timeout_ms : 0;
    if (w->ndeps == 0) {
        w->kick_outcome = PGE_OUT_OK;
        ev_timer_start(w->loop, &w->kick);
        return;
    }
    for (size_t i = 0; i < w->ndeps; i++)
        start_attempt(w->deps[i]);
}

void pge_wait_free(struct pge_wait *w)
{
    if (!w)
        return;
    ev_timer_stop(w->loop, &w->kick);
    for (size_t i = 0; i < w->ndeps; i++) {
        struct dep *d = w->deps[i];
        stop_dep(d);
        if (d->conn)
            PQfinish(d->conn);
        free(d->url);
        free(d);
    }
    free(w);
}
