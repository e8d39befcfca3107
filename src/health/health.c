/* Health endpoint: a bounded, non-blocking HTTP/1.1 server on the libev loop. */
#include "pgentry/health/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgentry/health/httpreq.h"
#include "pgentry/common/log.h"
#include "pgentry/common/parse.h"

#define IN_CAP       PGE_HTTPREQ_HEAD_MAX
#define OUT_CAP      PGE_HEALTH_RESPONSE_MAX
#define HEAD_CAP     512
#define BODY_CAP     (OUT_CAP - HEAD_CAP) /* any response fits an empty output buffer */
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE 0.1 /* seconds without accepting after a resource error */
#define BACKLOG      511

enum route {
    ROUTE_LIVEZ = 0,
    ROUTE_READYZ,
    ROUTE_HEALTHZ,
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_OTHER, /* unknown paths and unparsable requests: keeps the label set bounded */
    ROUTE_COUNT_,
};

static const char *const route_paths[ROUTE_COUNT_] = {"/livez",  "/readyz",  "/healthz",
                                                      "/status", "/metrics", "other"};

static const int codes[] = {200, 400, 404, 405, 431, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0])

enum conn_phase {
    CONN_ACTIVE = 0, /* reading requests, writing responses */
    CONN_CLOSING,    /* no more requests: flush, then linger */
    CONN_LINGER,     /* write side shut: discard input until EOF or the linger deadline */
};

/* One connection. Lives in the server's fixed pool: nothing is allocated per request or in
 * proportion to what a client sends. */
struct conn {
    ev_io io;
    ev_timer timer;
    struct pge_health *h;
    struct conn *prev, *next; /* activity list (least recent first) or the free list */
    int fd;
    int events; /* what io is started for */
    enum conn_phase phase;
    int peer_eof;
    int blocked;           /* a response waits for output room */
    int linger;            /* the client may still be sending: half-close before close() */
    unsigned nserved;      /* responses queued on this connection */
    ev_tstamp deadline;    /* when the connection is dropped */
    ev_tstamp timer_at;    /* when the timer fires (≤ deadline; it re-arms itself) */
    ev_tstamp req_start;   /* accept, or first byte of the request being read */
    ev_tstamp write_since; /* output became pending */
    ev_tstamp last_active;
    ev_tstamp linger_since;
    size_t in_len;
    size_t in_scanned; /* how much of in the parser has seen (pge_httpreq_parse_next) */
    size_t out_off, out_len;
    char in[IN_CAP];
    char out[OUT_CAP];
};

struct pge_health {
    struct ev_loop *loop;
    const struct pge_runstate *state;
    int lfd;
    int reserve_fd; /* spent to shed a connection when the process is out of descriptors */
    ev_io accept_io;
    ev_timer accept_pause;
    struct conn *pool;
    struct conn *free_list;   /* slots used before and closed since */
    unsigned never_used;      /* pool[never_used..] have not been touched yet */
    struct conn *head, *tail; /* open connections, least recently active first */
    unsigned nconns, max_conns;
    ev_tstamp idle_timeout, header_timeout, linger_timeout;
    unsigned long long requests[ROUTE_COUNT_][NCODES];
    unsigned long long evicted, timed_out, shed;
    time_t date_sec;
    char date[40];
    char body[BODY_CAP]; /* scratch for one response body, used synchronously */
};

/* ---- bounded string building ---- */

struct sb {
    char *p;
    size_t cap, len;
    int overflow;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    b->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    unsigned min, cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string: quotes, backslashes and control bytes escaped, invalid UTF-8 replaced by
 * U+FFFD, so that any state string yields valid JSON. */
static void sb_json_str(struct sb *b, const char *s)
{
    static const char ctl[] = "\b\f\n\r\t";
    static const char *const ctl_esc[] = {"\\b", "\\f", "\\n", "\\r", "\\t"};
    const unsigned char *p = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    while (*p) {
        size_t n;
        if (*p == '"' || *p == '\\') {
            sb_put(b, "\\", 1);
            sb_put(b, (const char *)p++, 1);
        } else if (*p < 0x20 || *p == 0x7f) {
            const char *k = memchr(ctl, *p, 5);
            if (k)
                sb_puts(b, ctl_esc[k - ctl]);
            else
                sb_printf(b, "\\u%04x", *p);
            p++;
        } else if (*p < 0x80) {
            sb_put(b, (const char *)p++, 1);
        } else if ((n = utf8_len(p)) > 0) {
            sb_put(b, (const char *)p, n);
            p += n;
        } else {
            sb_puts(b, "\\ufffd");
            p++;
        }
    }
    sb_put(b, "\"", 1);
}

/* A Prometheus label value (text format 0.0.4 escapes backslash, quote and newline). */
static void sb_label_value(struct sb *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            sb_put(b, "\\", 1);
        if (*s == '\n')
            sb_puts(b, "\\n");
        else
            sb_put(b, s, 1);
    }
}

/* ---- what the endpoints say ---- */

int pge_health_ready(const struct pge_runstate *st)
{
    return st->phase == PGE_PHASE_RUNNING && st->app.running && st->app.healthy && !st->stopping;
}

static int query_has(struct pge_httpreq_str q, const char *key)
{
    size_t klen = strlen(key), i = 0;
    while (q.p && i < q.n) {
        size_t start = i;
        while (i < q.n && q.p[i] != '&')
            i++;
        size_t n = i - start;
        if (n >= klen && memcmp(q.p + start, key, klen) == 0 &&
            (n == klen || q.p[start + klen] == '='))
            return 1;
        i++;
    }
    return 0;
}

/* The readiness checks, in the Kubernetes "[+]name ok" style. Returns the status code. */
static int render_ready(struct sb *b, const struct pge_runstate *st, const char *name, int verbose)
{
    const struct {
        const char *name;
        int ok;
    } checks[] = {
        {"phase", st->phase == PGE_PHASE_RUNNING},
        {"app", st->app.running},
        {"app-health", st->app.healthy},
        {"shutdown", !st->stopping},
    };
    int ok = pge_health_ready(st);
    /* A failure always explains itself; success is terse unless asked. */
    if (ok && !verbose) {
        sb_puts(b, "ok\n");
        return 200;
    }
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        sb_printf(b, "[%c]%s %s\n", checks[i].ok ? '+' : '-', checks[i].name,
                  checks[i].ok ? "ok" : "failed");
    sb_printf(b, "%s check %s\n", name, ok ? "passed" : "failed");
    return ok ? 200 : 503;
}

static void render_status(struct sb *b, const struct pge_runstate *st)
{
    int64_t up = pge_runstate_mono_ms() - st->start_mono_ms;
    sb_puts(b, "{\"phase\":");
    sb_json_str(b, pge_runstate_phase_name(st->phase));
    sb_printf(b, ",\"ready\":%s,\"stopping\":%s", pge_health_ready(st) ? "true" : "false",
              st->stopping ? "true" : "false");
    sb_printf(b, ",\"database\":{\"configured\":%s,\"ready\":%s,\"attempts\":%u,\"last_error\":",
              st->db.configured ? "true" : "false", st->db.ready ? "true" : "false",
              st->db.attempts);
    if (st->db.last_error[0])
        sb_json_str(b, st->db.last_error);
    else
        sb_puts(b, "null");
    if (st->db.ready_after_ms >= 0)
        sb_printf(b, ",\"ready_seconds\":%.3f}", (double)st->db.ready_after_ms / 1000);
    else
        sb_puts(b, ",\"ready_seconds\":null}");
    if (st->mig.known) {
        sb_puts(b, ",\"migrations\":{\"current\":");
        sb_json_str(b, st->mig.current);
        sb_printf(b, ",\"applied\":%u,\"pending\":%u,\"applied_this_run\":%u}", st->mig.applied,
                  st->mig.pending, st->mig.applied_this_run);
    } else {
        sb_puts(b, ",\"migrations\":{\"current\":null,\"applied\":null,\"pending\":null,"
                   "\"applied_this_run\":0}");
    }
    sb_puts(b, ",\"app\":{\"pid\":");
    if (st->app.pid > 0)
        sb_printf(b, "%ld", (long)st->app.pid);
    else
        sb_puts(b, "null");
    sb_printf(b,
              ",\"running\":%s,\"healthy\":%s,\"exit_code\":", st->app.running ? "true" : "false",
              st->app.healthy ? "true" : "false");
    if (st->app.exited)
        sb_printf(b, "%d}", st->app.exit_code);
    else
        sb_puts(b, "null}");
    sb_printf(b, ",\"uptime_seconds\":%.3f,\"version\":", (double)(up < 0 ? 0 : up) / 1000);
    sb_json_str(b, PGENTRY_VERSION);
    sb_puts(b, "}\n");
}

static void metric_head(struct sb *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_metrics(struct sb *b, const struct pge_health *h)
{
    const struct pge_runstate *st = h->state;

    metric_head(b, "pgentry_build_info", "gauge", "Version of pgentry, as a label.");
    sb_puts(b, "pgentry_build_info{version=\"");
    sb_label_value(b, PGENTRY_VERSION);
    sb_puts(b, "\"} 1\n");

    metric_head(b, "pgentry_phase", "gauge", "1 for the phase pgentry is in, 0 for the others.");
    for (int p = 0; p < PGE_PHASE_COUNT_; p++)
        sb_printf(b, "pgentry_phase{phase=\"%s\"} %d\n", pge_runstate_phase_name((enum pge_phase)p),
                  st->phase == (enum pge_phase)p);
    metric_head(b, "pgentry_ready", "gauge", "1 when /readyz answers 200.");
    sb_printf(b, "pgentry_ready %d\n", pge_health_ready(st));
    metric_head(b, "pgentry_stopping", "gauge", "1 once a stop signal has arrived.");
    sb_printf(b, "pgentry_stopping %d\n", st->stopping != 0);

    metric_head(b, "pgentry_database_ready", "gauge", "1 once the database accepted a connection.");
    sb_printf(b, "pgentry_database_ready %d\n", st->db.ready != 0);
    if (st->db.ready_after_ms >= 0) {
        metric_head(b, "pgentry_database_ready_seconds", "gauge",
                    "Time from start until the database was ready.");
        sb_printf(b, "pgentry_database_ready_seconds %.3f\n", (double)st->db.ready_after_ms / 1000);
    }
    metric_head(b, "pgentry_database_wait_attempts_total", "counter",
                "Attempts to reach the database, by how they ended.");
    for (int o = 0; o < PGE_ATTEMPT_COUNT_; o++)
        sb_printf(b, "pgentry_database_wait_attempts_total{outcome=\"%s\"} %llu\n",
                  pge_runstate_outcome_name((enum pge_attempt_outcome)o),
                  st->db.attempts_by_outcome[o]);

    if (st->mig.known) {
        metric_head(b, "pgentry_migrations_recorded", "gauge",
                    "Rows in the migration history table.");
        sb_printf(b, "pgentry_migrations_recorded %u\n", st->mig.applied);
        metric_head(b, "pgentry_migrations_pending", "gauge", "Migration files not yet applied.");
        sb_printf(b, "pgentry_migrations_pending %u\n", st->mig.pending);
    }
    metric_head(b, "pgentry_migration_duration_seconds", "summary",
                "Time spent applying the migrations applied by this run.");
    sb_printf(b, "pgentry_migration_duration_seconds_sum %.3f\n", st->mig.applied_seconds_sum);
    sb_printf(b, "pgentry_migration_duration_seconds_count %u\n", st->mig.applied_this_run);
    metric_head(b, "pgentry_migration_lock_wait_seconds_total", "counter",
                "Time spent waiting for the migration lock.");
    sb_printf(b, "pgentry_migration_lock_wait_seconds_total %.3f\n",
              (double)st->mig.lock_wait_ms / 1000);

    metric_head(b, "pgentry_app_up", "gauge", "1 while the supervised application runs.");
    sb_printf(b, "pgentry_app_up %d\n", st->app.running != 0);
    metric_head(b, "pgentry_app_healthy", "gauge",
                "1 when the application's own health URL answers 2xx (or none is set).");
    sb_printf(b, "pgentry_app_healthy %d\n", st->app.healthy != 0);
    if (st->app.pid > 0) {
        metric_head(b, "pgentry_app_pid", "gauge", "Process id of the supervised application.");
        sb_printf(b, "pgentry_app_pid %ld\n", (long)st->app.pid);
    }
    if (st->app.exited) {
        metric_head(b, "pgentry_app_last_exit_code", "gauge",
                    "Exit code of the application (128+N for signal N).");
        sb_printf(b, "pgentry_app_last_exit_code %d\n", st->app.exit_code);
    }

    metric_head(b, "pgentry_http_requests_total", "counter",
                "Health endpoint requests by path and status code.");
    for (int r = 0; r < ROUTE_COUNT_; r++)
        for (size_t c = 0; c < NCODES; c++)
            if (h->requests[r][c])
                sb_printf(b, "pgentry_http_requests_total{path=\"%s\",code=\"%d\"} %llu\n",
                          route_paths[r], codes[c], h->requests[r][c]);
    metric_head(b, "pgentry_http_connections", "gauge", "Open health endpoint connections.");
    sb_printf(b, "pgentry_http_connections %u\n", h->nconns);
    metric_head(b, "pgentry_http_connections_dropped_total", "counter",
                "Health connections closed by the server, by reason.");
    sb_printf(b, "pgentry_http_connections_dropped_total{reason=\"limit\"} %llu\n", h->evicted);
    sb_printf(b, "pgentry_http_connections_dropped_total{reason=\"timeout\"} %llu\n", h->timed_out);
    sb_printf(b, "pgentry_http_connections_dropped_total{reason=\"no_fd\"} %llu\n", h->shed);

    metric_head(b, "process_start_time_seconds", "gauge",
                "Start time of the process since the Unix epoch.");
    sb_printf(b, "process_start_time_seconds %.3f\n", (double)st->start_unix_ms / 1000);
}

/* ---- connections ---- */

static void conn_update(struct conn *c);

static void list_unlink(struct pge_health *h, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        h->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(struct pge_health *h, struct conn *c)
{
    c->prev = h->tail;
    c->next = NULL;
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
}

/* Activity moves a connection to the back of the eviction order. */
static void touch(struct conn *c)
{
    struct pge_health *h = c->h;
    c->last_active = ev_now(h->loop);
    if (h->tail != c) {
        list_unlink(h, c);
        list_append(h, c);
    }
}

static void conn_close(struct conn *c)
{
    struct pge_health *h = c->h;
    ev_io_stop(h->loop, &c->io);
    ev_timer_stop(h->loop, &c->timer);
    close(c->fd);
    list_unlink(h, c);
    c->next = h->free_list;
    h->free_list = c;
    h->nconns--;
    /* A descriptor is free again: take back the reserve if it was spent. */
    if (h->reserve_fd < 0)
        h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static const char *http_date(struct pge_health *h)
{
    time_t now = (time_t)ev_now(h->loop);
    if (now != h->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(h->date, sizeof h->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        h->date_sec = now;
    }
    return h->date;
}

struct response {
    int code;
    const char *ctype;
    const char *body;
    size_t body_len;
    int head_only; /* HEAD: every header, no body */
    int close;
    int say_keep_alive; /* an HTTP/1.0 client asked for keep-alive */
    int allow;          /* 405: list the methods */
};

/* Queue a response on the connection. Returns -1 when the output buffer has no room yet. */
static int conn_respond(struct conn *c, const struct response *r)
{
    char head[HEAD_CAP];
    size_t body = r->head_only ? 0 : r->body_len;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     r->code, reason_phrase(r->code), http_date(c->h), r->ctype, r->body_len,
                     r->allow ? "Allow: GET, HEAD\r\n" : "",
                     r->close            ? "Connection: close\r\n"
                     : r->say_keep_alive ? "Connection: keep-alive\r\n"
                                         : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        c->write_since = ev_now(c->h->loop);
    } else if (c->out_off > 0 && (size_t)n + body > OUT_CAP - c->out_len) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if ((size_t)n + body > OUT_CAP - c->out_len)
        return -1;
    memcpy(c->out + c->out_len, head, (size_t)n);
    memcpy(c->out + c->out_len + n, r->body, body);
    c->out_len += (size_t)n + body;
    c->nserved++;
    return 0;
}

static void count(struct pge_health *h, enum route route, int code)
{
    for (size_t i = 0; i < NCODES; i++)
        if (codes[i] == code)
            h->requests[route][i]++;
}

static enum route find_route(struct pge_httpreq_str path)
{
    for (int r = 0; r < ROUTE_OTHER; r++)
        if (pge_httpreq_str_eq(path, route_paths[r]))
            return (enum route)r;
    return ROUTE_OTHER;
}

/* Answer one parsed request. Returns -1 when it must wait for output room. */
static int conn_handle(struct conn *c, const struct pge_httpreq *req)
{
    struct pge_health *h = c->h;
    struct sb b = {h->body, sizeof h->body, 0, 0};
    struct response r = {0};
    enum route route = find_route(req->path);
    int get = pge_httpreq_str_eq(req->method, "GET");
    int head = pge_httpreq_str_eq(req->method, "HEAD");
    int verbose = query_has(req->query, "verbose");

    r.ctype = "text/plain; charset=utf-8";
    r.head_only = head;
    /* We never read request bodies: the connection cannot be reused after one. */
    r.close = !req->keep_alive || req->content_length > 0 || req->chunked;
    r.say_keep_alive = !r.close && req->minor_version == 0;
    if (route == ROUTE_OTHER) {
        r.code = 404;
        sb_puts(&b, "not found\n");
    } else if (!get && !head) {
        r.code = 405;
        r.allow = 1;
        sb_puts(&b, "method not allowed\n");
    } else if (route == ROUTE_LIVEZ) {
        r.code = 200;
        sb_puts(&b, verbose ? "[+]loop ok\nlivez check passed\n" : "ok\n");
    } else if (route == ROUTE_READYZ || route == ROUTE_HEALTHZ) {
        r.code = render_ready(&b, h->state, route_paths[route] + 1, verbose);
    } else if (route == ROUTE_STATUS) {
        r.code = 200;
        r.ctype = "application/json";
        render_status(&b, h->state);
    } else {
        r.code = 200;
        r.ctype = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(&b, h);
    }
    if (b.overflow) {
        r.code = 500;
        b.len = 0;
        b.overflow = 0;
        sb_puts(&b, "response too large\n");
    }
    r.body = b.p;
    r.body_len = b.len;
    if (conn_respond(c, &r) < 0)
        return -1;
    count(h, route, r.code);
    if (r.close)
        c->phase = CONN_CLOSING;
    if (req->content_length > 0 || req->chunked)
        c->linger = 1;
    return 0;
}

static void conn_reject(struct conn *c, int code)
{
    struct response r = {0};
    r.code = code;
    r.ctype = "text/plain; charset=utf-8";
    r.body = code == 431 ? "request header fields too large\n" : "bad request\n";
    r.body_len = strlen(r.body);
    r.close = 1;
    if (conn_respond(c, &r) < 0) {
        c->blocked = 1;
        return;
    }
    count(c->h, ROUTE_OTHER, code);
    c->phase = CONN_CLOSING;
    c->linger = 1;
    c->in_len = 0;
}

/* Answer every complete request in the input buffer, in order, while output room lasts. */
static void conn_serve(struct conn *c)
{
    c->blocked = 0;
    while (c->phase == CONN_ACTIVE && c->in_len > 0) {
        struct pge_httpreq req;
        /* A slow client's every byte must not re-read the whole head. */
        int r = pge_httpreq_parse_next(c->in, c->in_len, &c->in_scanned, &req);
        if (r == PGE_HTTPREQ_PARTIAL)
            break;
        if (r < 0) {
            conn_reject(c, r == PGE_HTTPREQ_TOO_LARGE ? 431 : 400);
            break;
        }
        if (conn_handle(c, &req) < 0) {
            c->blocked = 1;
            break;
        }
        /* req points into in: it is not used after the shift. */
        c->in_len -= (size_t)r;
        memmove(c->in, c->in + r, c->in_len);
        c->in_scanned = 0;
        c->req_start = ev_now(c->h->loop);
    }
    /* Unanswered input at a close: a plain close() would reset the connection. */
    if (c->phase == CONN_CLOSING && c->in_len > 0)
        c->linger = 1;
    /* A half-closed client sends no more: what is left can never complete. */
    if (c->peer_eof && c->phase == CONN_ACTIVE && !c->blocked)
        c->phase = CONN_CLOSING;
}

/* Write what is pending without blocking. Returns -1 when the connection is broken. */
static int conn_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            touch(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 0;
}

/* Serve and write until nothing moves; then choose what to wait for. */
static void conn_progress(struct conn *c)
{
    for (;;) {
        conn_serve(c);
        if (conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        /* Requests held back for output room can go now that the output drained. */
        if (!c->blocked || c->out_off < c->out_len)
            break;
    }
    conn_update(c);
}

static int conn_read(struct conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n > 0) {
        if (c->in_len == 0)
            c->req_start = ev_now(c->h->loop);
        c->in_len += (size_t)n;
        touch(c);
        return 0;
    }
    if (n == 0) {
        c->peer_eof = 1;
        return 0;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

/* Lingering close: discard what the client still sends until it closes. */
static void conn_drain(struct conn *c)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close(c);
        return;
    }
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    (void)loop;
    if (c->phase == CONN_LINGER) {
        conn_drain(c);
        return;
    }
    if ((revents & EV_READ) && c->in_len < IN_CAP && conn_read(c) < 0) {
        conn_close(c);
        return;
    }
    conn_progress(c);
}

static void conn_arm(struct conn *c, ev_tstamp deadline)
{
    struct ev_loop *loop = c->h->loop;
    c->deadline = deadline;
    /* The timer re-arms itself when it fires early, so a later deadline costs nothing here. */
    if (ev_is_active(&c->timer) && c->timer_at <= deadline)
        return;
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, deadline - ev_now(loop), 0.);
    c->timer_at = deadline;
    ev_timer_start(loop, &c->timer);
}

static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;
    ev_tstamp now = ev_now(loop);
    (void)revents;
    if (c->deadline > now) {
        ev_timer_set(w, c->deadline - now, 0.);
        c->timer_at = c->deadline;
        ev_timer_start(loop, w);
        return;
    }
    if (c->phase != CONN_LINGER)
        c->h->timed_out++;
    conn_close(c);
}

static ev_tstamp min_ts(ev_tstamp a, ev_tstamp b)
{
    return a < b ? a : b;
}

/* Choose the events and the deadline for the connection's state. */
static void conn_update(struct conn *c)
{
    struct pge_health *h = c->h;
    ev_tstamp now = ev_now(h->loop), deadline;
    int pending = c->out_off < c->out_len;
    int want = 0;

    if (!pending && c->phase == CONN_CLOSING) {
        if (c->peer_eof || !c->linger) {
            conn_close(c);
            return;
        }
        /* close() with unread input sends a reset, which can destroy our last response in
         * the client's buffers: half-close and discard its input for a while instead. A
         * client that asked for the close and sent nothing more is closed at once. */
        shutdown(c->fd, SHUT_WR);
        c->phase = CONN_LINGER;
        c->linger_since = now;
        c->in_len = 0;
    }
    if (pending)
        want |= EV_WRITE;
    if (c->phase == CONN_LINGER || (c->phase == CONN_ACTIVE && !c->peer_eof && c->in_len < IN_CAP))
        want |= EV_READ;
    if (want == 0) {
        conn_close(c);
        return;
    }
    if (want != c->events) {
        ev_io_stop(h->loop, &c->io);
        ev_io_set(&c->io, c->fd, want);
        ev_io_start(h->loop, &c->io);
        c->events = want;
    }

    if (c->phase == CONN_LINGER) {
        deadline = c->linger_since + h->linger_timeout;
    } else {
        /* Idle keep-alive, a request still arriving, a response still being read. */
        deadline = c->last_active + h->idle_timeout;
        if (c->in_len > 0 || c->nserved == 0)
            deadline = min_ts(deadline, c->req_start + h->header_timeout);
        if (pending)
            deadline = min_ts(deadline, c->write_since + h->idle_timeout);
    }
    conn_arm(c, deadline);
}

static void conn_open(struct pge_health *h, int fd)
{
    struct conn *c = h->free_list;
    ev_tstamp now = ev_now(h->loop);
    int one = 1;

    if (c)
        h->free_list = c->next;
    else
        c = &h->pool[h->never_used++];
    /* Small responses go out at once rather than waiting on Nagle and delayed ACKs. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->h = h;
    c->fd = fd;
    c->events = EV_READ;
    c->phase = CONN_ACTIVE;
    c->peer_eof = c->blocked = c->linger = 0;
    c->nserved = 0;
    c->req_start = c->last_active = now;
    c->in_len = c->in_scanned = c->out_off = c->out_len = 0;
    ev_io_init(&c->io, on_conn_io, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, on_conn_timer, 0., 0.);
    c->timer.data = c;
    ev_io_start(h->loop, &c->io);
    list_append(h, c);
    h->nconns++;
    conn_arm(c, now + h->header_timeout);
}

/* ---- accepting ---- */

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_health *h = w->data;
    (void)revents;
    ev_io_start(loop, &h->accept_io);
}

static void pause_accepting(struct pge_health *h)
{
    ev_io_stop(h->loop, &h->accept_io);
    ev_timer_set(&h->accept_pause, ACCEPT_PAUSE, 0.);
    ev_timer_start(h->loop, &h->accept_pause);
}

/* Out of descriptors: spend the reserve to accept and close one pending connection, so the
 * listening socket stops being readable for it instead of waking us forever. */
static int shed_one(struct pge_health *h)
{
    int fd;
    if (h->reserve_fd < 0)
        return -1;
    close(h->reserve_fd);
    fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        h->shed++;
    }
    h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 0 : -1;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_health *h = w->data;
    (void)loop;
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the same policy as the connection limit when we hold
                 * some, else turn the newcomer away rather than leave it pending. */
                if (h->head) {
                    conn_close(h->head);
                    h->evicted++;
                    continue;
                }
                if (shed_one(h) == 0)
                    continue;
            }
            /* Descriptors, buffers or memory are short: retry a little later, not in a spin. */
            pause_accepting(h);
            return;
        }
        /* At the limit the least recently active connection makes room: idle hoarders cannot
         * lock out a probe, and the count never exceeds the bound. */
        if (h->nconns == h->max_conns) {
            conn_close(h->head);
            h->evicted++;
        }
        conn_open(h, fd);
    }
}

/* ---- set-up ---- */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                      size_t errsize)
{
    char host[64];
    int port;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (!addr || pge_parse_hostport(addr, host, sizeof host, &port) < 0) {
        snprintf(err, errsize, "health address \"%s\" is not HOST:PORT", addr ? addr : "");
        return -1;
    }
    if (host[0] == '\0' || strcmp(host, "localhost") == 0)
        strcpy(host, host[0] ? "127.0.0.1" : "0.0.0.0");
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *sin6;
    } else {
        /* A name would need DNS, which blocks; the address is ours, it is known. */
        snprintf(err, errsize,
                 "health address \"%s\": host must be a numeric IPv4/[IPv6] address or localhost",
                 addr);
        return -1;
    }
    return 0;
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int one = 1, zero = 0, saved;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    /* "[::]" means every address, IPv4 included, whatever the system default says. */
    if (ss->ss_family == AF_INET6 &&
        IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr) &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)ss, sslen) < 0 || listen(fd, BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

struct pge_health *pge_health_new(struct ev_loop *loop, const char *addr,
                                  struct pge_runstate *state, char *err, size_t errsize)
{
    return pge_health_new_opts(loop, addr, state, NULL, err, errsize);
}

static ev_tstamp ms_or(int64_t ms, int64_t dflt)
{
    return (ev_tstamp)(ms > 0 ? ms : dflt) / 1000.;
}

struct pge_health *pge_health_new_opts(struct ev_loop *loop, const char *addr,
                                       struct pge_runstate *state,
                                       const struct pge_health_opts *opts, char *err,
                                       size_t errsize)
{
    struct pge_health *h = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int saved;

    if (parse_addr(addr, &ss, &sslen, err, errsize) < 0) {
        errno = EINVAL;
        return NULL;
    }
    h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errsize, "health endpoint: out of memory");
        goto fail;
    }
    h->loop = loop;
    h->state = state;
    h->lfd = h->reserve_fd = -1;
    h->max_conns = opts && opts->max_conns ? opts->max_conns : PGE_HEALTH_MAX_CONNS_DEFAULT;
    h->idle_timeout = ms_or(opts ? opts->idle_timeout_ms : 0, PGE_HEALTH_IDLE_TIMEOUT_MS);
    h->header_timeout = ms_or(opts ? opts->header_timeout_ms : 0, PGE_HEALTH_HEADER_TIMEOUT_MS);
    h->linger_timeout = ms_or(opts ? opts->linger_timeout_ms : 0, PGE_HEALTH_LINGER_TIMEOUT_MS);
    /* The whole pool up front: pages are touched only by connections that really exist. */
    h->pool = calloc(h->max_conns, sizeof *h->pool);
    if (!h->pool) {
        snprintf(err, errsize, "health endpoint: out of memory");
        goto fail;
    }
    /* No free list through the whole pool: that would touch a page of every slot. Unused
     * slots are handed out in order, closed ones are reused first. */
    h->never_used = 0;
    h->lfd = open_listener(&ss, sslen);
    if (h->lfd < 0) {
        snprintf(err, errsize, "health address %s: %s", addr, strerror(errno));
        goto fail;
    }
    h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ev_io_init(&h->accept_io, on_accept, h->lfd, EV_READ);
    h->accept_io.data = h;
    ev_timer_init(&h->accept_pause, on_accept_pause, ACCEPT_PAUSE, 0.);
    h->accept_pause.data = h;
    ev_io_start(loop, &h->accept_io);
    pge_info("health endpoint listening", PGE_STR("addr", addr));
    return h;
fail:
    saved = errno;
    pge_health_free(h);
    errno = saved;
    return NULL;
}

void pge_health_free(struct pge_health *h)
{
    if (!h)
        return;
    while (h->head)
        conn_close(h->head);
    if (h->lfd >= 0) {
        ev_io_stop(h->loop, &h->accept_io);
        ev_timer_stop(h->loop, &h->accept_pause);
        close(h->lfd);
    }
    if (h->reserve_fd >= 0)
        close(h->reserve_fd);
    free(h->pool);
    free(h);
}
