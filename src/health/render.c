/* What the health endpoints answer: routes, readiness checks, /status JSON, /metrics text. */
#include "pgentry/health/render.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgentry/common/logsink.h"
#include "pgentry/health/health.h"

static const char *const route_paths[PGE_RENDER_ROUTES_] = {"/livez",  "/readyz",  "/healthz",
                                                            "/status", "/metrics", "other"};

static const int codes[PGE_RENDER_NCODES] = {200, 400, 404, 405, 431, 500, 503};

/* A Prometheus label value (text format 0.0.4 escapes backslash, quote and newline). */
static void label_value(struct pge_json_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            pge_json_put(b, "\\", 1);
        if (*s == '\n')
            pge_json_puts(b, "\\n");
        else
            pge_json_put(b, s, 1);
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
static int render_ready(struct pge_json_buf *b, const struct pge_runstate *st, const char *name,
                        int verbose)
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
        pge_json_puts(b, "ok\n");
        return 200;
    }
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        pge_json_printf(b, "[%c]%s %s\n", checks[i].ok ? '+' : '-', checks[i].name,
                        checks[i].ok ? "ok" : "failed");
    pge_json_printf(b, "%s check %s\n", name, ok ? "passed" : "failed");
    return ok ? 200 : 503;
}

/* Seconds this instance has waited for the lock: the wait going on, else the runs' total. */
static double lock_waited_seconds(const struct pge_runstate *st)
{
    if (st->lock.state == PGE_LOCK_WAITING) {
        int64_t ms = pge_runstate_mono_ms() - st->lock.wait_started_mono_ms;
        return (double)(ms < 0 ? 0 : ms) / 1000;
    }
    return (double)st->mig.lock_wait_ms / 1000;
}

/* migrations.lock and migrations.running: who holds the lock, and what runs under it. */
static void render_lock(struct pge_json_buf *b, const struct pge_runstate *st)
{
    pge_json_puts(b, ",\"lock\":{\"state\":");
    pge_json_string(b, pge_runstate_lock_name(st->lock.state));
    pge_json_puts(b, ",\"holder\":");
    if (st->lock.holder[0])
        pge_json_string(b, st->lock.holder);
    else
        pge_json_puts(b, "null");
    pge_json_puts(b, ",\"since\":");
    if (st->lock.since_unix_ms > 0) {
        char iso[40];
        struct tm tm;
        time_t secs = (time_t)(st->lock.since_unix_ms / 1000);
        gmtime_r(&secs, &tm);
        size_t n = strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(iso + n, sizeof iso - n, ".%03dZ", (int)(st->lock.since_unix_ms % 1000));
        pge_json_string(b, iso);
    } else {
        pge_json_puts(b, "null");
    }
    pge_json_printf(b, ",\"waited_seconds\":%.3f}", lock_waited_seconds(st));
    pge_json_puts(b, ",\"running\":");
    if (!st->running.active) {
        pge_json_puts(b, "null");
        return;
    }
    pge_json_puts(b, "{\"version\":");
    pge_json_string(b, st->running.version);
    pge_json_puts(b, ",\"name\":");
    pge_json_string(b, st->running.name);
    pge_json_printf(b, ",\"line\":%u", st->running.line);
    const struct pge_runstate_index_build *ib = &st->running.index_build;
    if (!ib->active) {
        pge_json_puts(b, "}");
        return;
    }
    /* Only while an index is built, like the gauges. */
    pge_json_puts(b, ",\"index_build\":{\"phase\":");
    pge_json_string(b, ib->phase);
    pge_json_printf(b,
                    ",\"blocks_done\":%lld,\"blocks_total\":%lld,\"tuples_done\":%lld,"
                    "\"tuples_total\":%lld,\"lockers_done\":%lld,\"lockers_total\":%lld}}",
                    ib->blocks_done, ib->blocks_total, ib->tuples_done, ib->tuples_total,
                    ib->lockers_done, ib->lockers_total);
}

static void render_status(struct pge_json_buf *b, const struct pge_runstate *st)
{
    int64_t up = pge_runstate_mono_ms() - st->start_mono_ms;
    pge_json_puts(b, "{\"phase\":");
    pge_json_string(b, pge_runstate_phase_name(st->phase));
    pge_json_printf(b, ",\"ready\":%s,\"stopping\":%s", pge_health_ready(st) ? "true" : "false",
                    st->stopping ? "true" : "false");
    pge_json_printf(
        b, ",\"database\":{\"configured\":%s,\"ready\":%s,\"attempts\":%u,\"last_error\":",
        st->db.configured ? "true" : "false", st->db.ready ? "true" : "false", st->db.attempts);
    if (st->db.last_error[0])
        pge_json_string(b, st->db.last_error);
    else
        pge_json_puts(b, "null");
    if (st->db.ready_after_ms >= 0)
        pge_json_printf(b, ",\"ready_seconds\":%.3f}", (double)st->db.ready_after_ms / 1000);
    else
        pge_json_puts(b, ",\"ready_seconds\":null}");
    if (st->mig.known) {
        pge_json_puts(b, ",\"migrations\":{\"current\":");
        pge_json_string(b, st->mig.current);
        pge_json_printf(b, ",\"applied\":%u,\"pending\":%u,\"applied_this_run\":%u",
                        st->mig.applied, st->mig.pending, st->mig.applied_this_run);
    } else {
        pge_json_puts(b, ",\"migrations\":{\"current\":null,\"applied\":null,\"pending\":null,"
                         "\"applied_this_run\":0");
    }
    render_lock(b, st);
    pge_json_puts(b, "}");
    pge_json_puts(b, ",\"app\":{\"pid\":");
    if (st->app.pid > 0)
        pge_json_printf(b, "%ld", (long)st->app.pid);
    else
        pge_json_puts(b, "null");
    pge_json_printf(b, ",\"running\":%s,\"healthy\":%s,\"exit_code\":",
                    st->app.running ? "true" : "false", st->app.healthy ? "true" : "false");
    if (st->app.exited)
        pge_json_printf(b, "%d}", st->app.exit_code);
    else
        pge_json_puts(b, "null}");
    pge_json_printf(b, ",\"uptime_seconds\":%.3f,\"version\":", (double)(up < 0 ? 0 : up) / 1000);
    pge_json_string(b, PGENTRY_VERSION);
    pge_json_puts(b, "}\n");
}

static void metric_head(struct pge_json_buf *b, const char *name, const char *type,
                        const char *help)
{
    pge_json_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The lock and the statement under it, as gauges. */
static void render_lock_metrics(struct pge_json_buf *b, const struct pge_runstate *st)
{
    metric_head(b, "pgentry_migration_lock_state", "gauge",
                "1 for the migration lock's state as this instance sees it, 0 for the others.");
    for (int s = 0; s < PGE_LOCK_COUNT_; s++)
        pge_json_printf(b, "pgentry_migration_lock_state{state=\"%s\"} %d\n",
                        pge_runstate_lock_name((enum pge_lock_state)s),
                        st->lock.state == (enum pge_lock_state)s);
    metric_head(b, "pgentry_migration_lock_waited_seconds", "gauge",
                "Time waited for the migration lock: the current wait, else in total.");
    pge_json_printf(b, "pgentry_migration_lock_waited_seconds %.3f\n", lock_waited_seconds(st));
    if (!st->running.active)
        return;
    char *end;
    double v = strtod(st->running.version, &end);
    if (end != st->running.version && *end == '\0') {
        metric_head(b, "pgentry_migration_running_version", "gauge",
                    "Version of the migration running now.");
        pge_json_printf(b, "pgentry_migration_running_version %.0f\n", v);
    }
    metric_head(b, "pgentry_migration_running_line", "gauge",
                "First line of the migration statement running now.");
    pge_json_printf(b, "pgentry_migration_running_line %u\n", st->running.line);
    const struct pge_runstate_index_build *ib = &st->running.index_build;
    if (!ib->active)
        return;
    /* PostgreSQL's blocks_total and tuples_total are *_planned here: a gauge ending in _total
     * reads as a counter (promtool refuses it). */
    const struct {
        const char *name, *help;
        long long v;
    } gauges[] = {
        {"pgentry_index_build_blocks_done",
         "Blocks the index build of the running migration statement has processed.",
         ib->blocks_done},
        {"pgentry_index_build_blocks_planned",
         "Blocks the index build of the running migration statement has to process.",
         ib->blocks_total},
        {"pgentry_index_build_tuples_done",
         "Tuples the index build of the running migration statement has processed.",
         ib->tuples_done},
        {"pgentry_index_build_tuples_planned",
         "Tuples the index build of the running migration statement has to process.",
         ib->tuples_total},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        metric_head(b, gauges[i].name, "gauge", gauges[i].help);
        pge_json_printf(b, "%s %lld\n", gauges[i].name, gauges[i].v);
    }
}

/* The state pgentry reports: phase, database, migrations, application. */
static void render_state_metrics(struct pge_json_buf *b, const struct pge_runstate *st)
{
    metric_head(b, "pgentry_build_info", "gauge", "Version of pgentry, as a label.");
    pge_json_puts(b, "pgentry_build_info{version=\"");
    label_value(b, PGENTRY_VERSION);
    pge_json_puts(b, "\"} 1\n");

    metric_head(b, "pgentry_phase", "gauge", "1 for the phase pgentry is in, 0 for the others.");
    for (int p = 0; p < PGE_PHASE_COUNT_; p++)
        pge_json_printf(b, "pgentry_phase{phase=\"%s\"} %d\n",
                        pge_runstate_phase_name((enum pge_phase)p), st->phase == (enum pge_phase)p);
    metric_head(b, "pgentry_ready", "gauge", "1 when /readyz answers 200.");
    pge_json_printf(b, "pgentry_ready %d\n", pge_health_ready(st));
    metric_head(b, "pgentry_stopping", "gauge", "1 once a stop signal has arrived.");
    pge_json_printf(b, "pgentry_stopping %d\n", st->stopping != 0);

    metric_head(b, "pgentry_database_ready", "gauge", "1 once the database accepted a connection.");
    pge_json_printf(b, "pgentry_database_ready %d\n", st->db.ready != 0);
    if (st->db.ready_after_ms >= 0) {
        metric_head(b, "pgentry_database_ready_seconds", "gauge",
                    "Time from start until the database was ready.");
        pge_json_printf(b, "pgentry_database_ready_seconds %.3f\n",
                        (double)st->db.ready_after_ms / 1000);
    }
    metric_head(b, "pgentry_database_wait_attempts_total", "counter",
                "Attempts to reach the database, by how they ended.");
    for (int o = 0; o < PGE_ATTEMPT_COUNT_; o++)
        pge_json_printf(b, "pgentry_database_wait_attempts_total{outcome=\"%s\"} %llu\n",
                        pge_runstate_outcome_name((enum pge_attempt_outcome)o),
                        st->db.attempts_by_outcome[o]);

    if (st->mig.known) {
        metric_head(b, "pgentry_migrations_recorded", "gauge",
                    "Rows in the migration history table.");
        pge_json_printf(b, "pgentry_migrations_recorded %u\n", st->mig.applied);
        metric_head(b, "pgentry_migrations_pending", "gauge", "Migration files not yet applied.");
        pge_json_printf(b, "pgentry_migrations_pending %u\n", st->mig.pending);
    }
    metric_head(b, "pgentry_migration_duration_seconds", "summary",
                "Time spent applying the migrations applied by this run.");
    pge_json_printf(b, "pgentry_migration_duration_seconds_sum %.3f\n",
                    st->mig.applied_seconds_sum);
    pge_json_printf(b, "pgentry_migration_duration_seconds_count %u\n", st->mig.applied_this_run);
    metric_head(b, "pgentry_migration_lock_wait_seconds_total", "counter",
                "Time spent waiting for the migration lock.");
    pge_json_printf(b, "pgentry_migration_lock_wait_seconds_total %.3f\n",
                    (double)st->mig.lock_wait_ms / 1000);
    render_lock_metrics(b, st);

    metric_head(b, "pgentry_app_up", "gauge", "1 while the supervised application runs.");
    pge_json_printf(b, "pgentry_app_up %d\n", st->app.running != 0);
    metric_head(b, "pgentry_app_healthy", "gauge",
                "1 when the application's own health URL answers 2xx (or none is set).");
    pge_json_printf(b, "pgentry_app_healthy %d\n", st->app.healthy != 0);
    if (st->app.pid > 0) {
        metric_head(b, "pgentry_app_pid", "gauge", "Process id of the supervised application.");
        pge_json_printf(b, "pgentry_app_pid %ld\n", (long)st->app.pid);
    }
    if (st->app.exited) {
        metric_head(b, "pgentry_app_last_exit_code", "gauge",
                    "Exit code of the application (128+N for signal N).");
        pge_json_printf(b, "pgentry_app_last_exit_code %d\n", st->app.exit_code);
    }
}

/* The endpoint's own counters, then the process. */
static void render_server_metrics(struct pge_json_buf *b, const struct pge_runstate *st,
                                  const struct pge_render_stats *h)
{
    metric_head(b, "pgentry_http_requests_total", "counter",
                "Health endpoint requests by path and status code.");
    for (int r = 0; r < PGE_RENDER_ROUTES_; r++)
        for (size_t c = 0; c < PGE_RENDER_NCODES; c++)
            if (h->requests[r][c])
                pge_json_printf(b, "pgentry_http_requests_total{path=\"%s\",code=\"%d\"} %llu\n",
                                route_paths[r], codes[c], h->requests[r][c]);
    metric_head(b, "pgentry_http_connections", "gauge", "Open health endpoint connections.");
    pge_json_printf(b, "pgentry_http_connections %u\n", h->nconns);
    metric_head(b, "pgentry_http_connections_dropped_total", "counter",
                "Health connections closed by the server, by reason.");
    pge_json_printf(b, "pgentry_http_connections_dropped_total{reason=\"limit\"} %llu\n",
                    h->evicted);
    pge_json_printf(b, "pgentry_http_connections_dropped_total{reason=\"timeout\"} %llu\n",
                    h->timed_out);
    pge_json_printf(b, "pgentry_http_connections_dropped_total{reason=\"no_fd\"} %llu\n", h->shed);

    metric_head(b, "pgentry_log_lines_dropped_total", "counter",
                "Log lines dropped because stderr was full (or its reader gone).");
    /* The database worker's drops too: one process to the outside. */
    pge_json_printf(b, "pgentry_log_lines_dropped_total %llu\n",
                    pge_logsink_dropped() + st->worker_log_dropped);

    metric_head(b, "process_start_time_seconds", "gauge",
                "Start time of the process since the Unix epoch.");
    pge_json_printf(b, "process_start_time_seconds %.3f\n", (double)st->start_unix_ms / 1000);
}

void pge_render_count(struct pge_render_stats *s, enum pge_render_route route, int code)
{
    for (size_t i = 0; i < PGE_RENDER_NCODES; i++)
        if (codes[i] == code)
            s->requests[route][i]++;
}

static enum pge_render_route find_route(struct pge_httpreq_str path)
{
    for (int r = 0; r < PGE_RENDER_OTHER; r++)
        if (pge_httpreq_str_eq(path, route_paths[r]))
            return (enum pge_render_route)r;
    return PGE_RENDER_OTHER;
}

void pge_render_answer(const struct pge_httpreq *req, const struct pge_runstate *st,
                       const struct pge_render_stats *stats, struct pge_json_buf *b,
                       struct pge_render_answer *out)
{
    enum pge_render_route route = find_route(req->path);
    int get = pge_httpreq_str_eq(req->method, "GET");
    int head = pge_httpreq_str_eq(req->method, "HEAD");
    int verbose = query_has(req->query, "verbose");

    out->route = route;
    out->ctype = "text/plain; charset=utf-8";
    out->allow = 0;
    if (route == PGE_RENDER_OTHER) {
        out->code = 404;
        pge_json_puts(b, "not found\n");
    } else if (!get && !head) {
        out->code = 405;
        out->allow = 1;
        pge_json_puts(b, "method not allowed\n");
    } else if (route == PGE_RENDER_LIVEZ) {
        out->code = 200;
        pge_json_puts(b, verbose ? "[+]loop ok\nlivez check passed\n" : "ok\n");
    } else if (route == PGE_RENDER_READYZ || route == PGE_RENDER_HEALTHZ) {
        out->code = render_ready(b, st, route_paths[route] + 1, verbose);
    } else if (route == PGE_RENDER_STATUS) {
        out->code = 200;
        out->ctype = "application/json";
        render_status(b, st);
    } else {
        out->code = 200;
        out->ctype = "text/plain; version=0.0.4; charset=utf-8";
        render_state_metrics(b, st);
        render_server_metrics(b, st, stats);
    }
    if (b->overflow) {
        out->code = 500;
        b->len = 0;
        b->overflow = 0;
        pge_json_puts(b, "response too large\n");
    }
}
