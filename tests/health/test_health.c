/* Health endpoint over real sockets: endpoints per phase, formats, limits, hostile clients. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgentry/health/health.h"
#include "pgentry/common/log.h"
#include "pgt.h"
#include "pgt_http.h"

static struct pgt_http_resp resp;
static struct pgt_http_reader reader;

static int get(const struct pgt_server *s, const char *path)
{
    return pgt_http_get("127.0.0.1", s->port, "GET", path, &resp);
}

/* A healthy probe must get its answer promptly whatever else is going on. */
static void assert_probe_ok(const struct pgt_server *s)
{
    int64_t t0 = pgt_now_ms();
    cr_assert_eq(get(s, "/livez"), 200, "healthy probe failed");
    cr_assert_str_eq(resp.body, "ok\n");
    cr_assert_lt(pgt_now_ms() - t0, 1000, "healthy probe took %lld ms",
                 (long long)(pgt_now_ms() - t0));
}

static int conn(const struct pgt_server *s)
{
    int fd = pgt_connect("127.0.0.1", s->port);
    cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
    reader.fd = fd;
    reader.len = 0;
    return fd;
}

static void send_str(int fd, const char *s)
{
    cr_assert_eq(pgt_send_all(fd, s, strlen(s)), 0, "send: %s", strerror(errno));
}

static void set_ready(struct pge_runstate *st)
{
    st->phase = PGE_PHASE_RUNNING;
    st->app.running = 1;
    st->app.pid = 4242;
    st->app.healthy = 1;
}

static void assert_has(const char *hay, const char *needle)
{
    cr_assert_not_null(strstr(hay, needle), "\"%s\" not in:\n%s", needle, hay);
}

static void assert_json(const char *body, size_t len)
{
    char err[256];
    cr_assert_eq(pgt_json_check(body, len, err, sizeof err), 0, "invalid JSON (%s):\n%s", err,
                 body);
}

/* Read one response on fd: its status, its Connection header (NULL: none), and whether the
 * server then closes. */
static void expect_response(int fd, int status, const char *connection, int closes,
                            const char *what)
{
    struct pgt_http_resp r;
    char v[64];
    cr_assert_eq(pgt_http_read(&reader, 0, &r), 0, "%s: no response", what);
    cr_assert_eq(r.status, status, "%s: status %d", what, r.status);
    const char *got = pgt_http_header(&r, "Connection", v, sizeof v);
    if (connection)
        cr_assert(got && strcmp(got, connection) == 0, "%s: Connection %s", what, got);
    else
        cr_assert_null(got, "%s: Connection %s", what, got);
    if (closes)
        cr_assert(pgt_wait_closed(fd, 3000), "%s: not closed", what);
    else
        cr_assert_not(pgt_wait_closed(fd, 200), "%s: closed", what);
}

/* One request on a fresh connection, checked with expect_response(). */
static void exchange(const struct pgt_server *s, const char *req, int status,
                     const char *connection, int closes)
{
    int fd = conn(s);
    send_str(fd, req);
    expect_response(fd, status, connection, closes, req);
    close(fd);
}

Test(health, waiting_livez_ok_readyz_503_status_shows_attempts, .timeout = 20)
{
    struct pgt_server s;
    char v[128];
    pgt_server_start(&s, NULL, NULL);
    s.st->db.configured = 1;
    s.st->db.attempts = 3;
    s.st->db.attempts_by_outcome[PGE_ATTEMPT_REFUSED] = 3;
    strcpy(s.st->db.last_error, "connection refused");

    cr_assert_eq(get(&s, "/livez"), 200);
    cr_assert_str_eq(resp.body, "ok\n");
    cr_assert_eq(get(&s, "/readyz"), 503);
    assert_has(resp.body, "[-]phase failed\n");
    assert_has(resp.body, "readyz check failed\n");
    cr_assert_eq(get(&s, "/healthz"), 503);
    cr_assert_eq(get(&s, "/status"), 200);
    cr_assert_str_eq(pgt_http_header(&resp, "Content-Type", v, sizeof v), "application/json");
    assert_json(resp.body, resp.body_len);
    assert_has(resp.body, "\"phase\":\"waiting\"");
    assert_has(resp.body, "\"ready\":false");
    assert_has(resp.body, "\"attempts\":3");
    assert_has(resp.body, "\"last_error\":\"connection refused\"");
    assert_has(resp.body, "\"pid\":null");
    pgt_server_stop(&s);
}

Test(health, readiness_follows_phase_app_and_stop_signal, .timeout = 20)
{
    static const struct {
        enum pge_phase phase;
        int running, healthy, stopping, want;
        const char *failed;
    } cases[] = {
        {PGE_PHASE_MIGRATING, 0, 1, 0, 503, "[-]phase failed"},
        {PGE_PHASE_STARTING, 0, 1, 0, 503, "[-]app failed"},
        {PGE_PHASE_RUNNING, 1, 1, 0, 200, NULL},
        {PGE_PHASE_RUNNING, 1, 0, 0, 503, "[-]app-health failed"},
        {PGE_PHASE_RUNNING, 1, 1, 1, 503, "[-]shutdown failed"},
        {PGE_PHASE_RUNNING, 0, 1, 0, 503, "[-]app failed"},
        {PGE_PHASE_STOPPING, 1, 1, 1, 503, "[-]phase failed"},
        {PGE_PHASE_FAILED, 0, 1, 0, 503, "[-]phase failed"},
    };
    struct pgt_server s;
    char want[64];
    pgt_server_start(&s, NULL, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s.st->phase = cases[i].phase;
        s.st->app.running = cases[i].running;
        s.st->app.healthy = cases[i].healthy;
        s.st->stopping = cases[i].stopping;
        cr_assert_eq(get(&s, "/readyz"), cases[i].want, "case %zu", i);
        if (cases[i].failed)
            assert_has(resp.body, cases[i].failed);
        else
            cr_assert_str_eq(resp.body, "ok\n");
        cr_assert_eq(get(&s, "/healthz"), cases[i].want, "case %zu", i);
        cr_assert_eq(get(&s, "/livez"), 200, "case %zu", i);
        cr_assert_eq(get(&s, "/status"), 200);
        snprintf(want, sizeof want, "\"phase\":\"%s\"", pge_runstate_phase_name(cases[i].phase));
        assert_has(resp.body, want);
        assert_has(resp.body, cases[i].want == 200 ? "\"ready\":true" : "\"ready\":false");
    }
    pgt_server_stop(&s);
}

Test(health, verbose_lists_every_check, .timeout = 20)
{
    struct pgt_server s;
    pgt_server_start(&s, NULL, NULL);
    set_ready(s.st);
    cr_assert_eq(get(&s, "/readyz?verbose"), 200);
    cr_assert_str_eq(resp.body, "[+]phase ok\n[+]app ok\n[+]app-health ok\n[+]shutdown ok\n"
                                "readyz check passed\n");
    cr_assert_eq(get(&s, "/livez?verbose"), 200);
    cr_assert_str_eq(resp.body, "[+]loop ok\nlivez check passed\n");
    cr_assert_eq(get(&s, "/healthz?x=1&verbose=1"), 200);
    assert_has(resp.body, "healthz check passed\n");
    cr_assert_eq(get(&s, "/readyz?verbosely"), 200);
    cr_assert_str_eq(resp.body, "ok\n");
    s.st->stopping = 1;
    cr_assert_eq(get(&s, "/readyz?verbose"), 503);
    cr_assert_str_eq(resp.body, "[+]phase ok\n[+]app ok\n[+]app-health ok\n[-]shutdown failed\n"
                                "readyz check failed\n");
    pgt_server_stop(&s);
}

Test(health, status_json_escapes_every_string, .timeout = 20)
{
    struct pgt_server s;
    char err[256], out[512];
    pgt_server_start(&s, NULL, NULL);
    set_ready(s.st);
    s.st->db.ready = 1;
    s.st->db.ready_after_ms = 1500;
    s.st->mig.known = 1;
    s.st->mig.applied = 7;
    strcpy(s.st->mig.current, "0042");
    /* Quotes, backslash, newline, a control byte, valid and invalid UTF-8. */
    strcpy(s.st->db.last_error, "say \"hi\" \\ new\nline \x01 caf\xc3\xa9 bad\xff\xc3(");
    cr_assert_eq(get(&s, "/status"), 200);
    assert_json(resp.body, resp.body_len);
    assert_has(resp.body, "\"last_error\":\"say \\\"hi\\\" \\\\ new\\nline \\u0001 caf\xc3\xa9 "
                          "bad\\ufffd\\ufffd(\"");
    assert_has(resp.body, "\"current\":\"0042\"");
    assert_has(resp.body, "\"applied\":7");
    assert_has(resp.body, "\"pid\":4242");
    assert_has(resp.body, "\"ready_seconds\":1.500");
    assert_has(resp.body, "\"version\":\"" PGENTRY_VERSION "\"");
    /* A second, independent parser when one is installed. */
    int rc =
        pgt_pipe_cmd("python3 -c 'import json,sys; d=json.load(sys.stdin); "
                     "print(d[\"phase\"], d[\"app\"][\"pid\"], d[\"database\"][\"attempts\"])'",
                     resp.body, out, sizeof out);
    if (rc != 127) {
        cr_assert_eq(rc, 0, "python3 rejected the JSON: %s", out);
        cr_assert_str_eq(out, "running 4242 0\n");
    }
    /* The checker itself rejects what it must. */
    cr_assert_eq(pgt_json_check("{\"a\":\"\x01\"}", 9, err, sizeof err), -1);
    cr_assert_eq(pgt_json_check("{\"a\":1,}", 8, err, sizeof err), -1);
    cr_assert_eq(pgt_json_check("[\"\xff\"]", 5, err, sizeof err), -1);
    cr_assert_eq(pgt_json_check("{\"a\":01}", 8, err, sizeof err), -1);
    cr_assert_eq(pgt_json_check("{} x", 4, err, sizeof err), -1);
    pgt_server_stop(&s);
}

Test(health, metrics_are_strict_prometheus_text, .timeout = 20)
{
    struct pgt_server s;
    char v[128], err[256];
    static char out[16384];
    pgt_server_start(&s, NULL, NULL);
    set_ready(s.st);
    s.st->db.ready = 1;
    s.st->db.ready_after_ms = 2250;
    s.st->db.attempts_by_outcome[PGE_ATTEMPT_REFUSED] = 3;
    s.st->db.attempts_by_outcome[PGE_ATTEMPT_OK] = 1;
    s.st->mig.known = 1;
    s.st->mig.applied = 5;
    s.st->mig.applied_this_run = 2;
    s.st->mig.applied_seconds_sum = 0.25;
    s.st->mig.lock_wait_ms = 1200;
    s.st->app.exited = 1;
    s.st->app.exit_code = 3;

    cr_assert_eq(get(&s, "/livez"), 200);
    cr_assert_eq(get(&s, "/livez"), 200);
    cr_assert_eq(get(&s, "/no/such/path"), 404);
    cr_assert_eq(get(&s, "/metrics"), 200);
    cr_assert_str_eq(pgt_http_header(&resp, "Content-Type", v, sizeof v),
                     "text/plain; version=0.0.4; charset=utf-8");
    cr_assert_eq(pgt_prom_check(resp.body, err, sizeof err), 0, "%s\n%s", err, resp.body);
    int rc = pgt_pipe_cmd("promtool check metrics", resp.body, out, sizeof out);
    if (rc != 127)
        cr_assert_eq(rc, 0, "promtool: %s", out);
    else
        cr_log_info("promtool not installed: strict in-test checker only");
    assert_has(resp.body, "\npgentry_phase{phase=\"running\"} 1\n");
    assert_has(resp.body, "\npgentry_phase{phase=\"waiting\"} 0\n");
    assert_has(resp.body, "\npgentry_ready 1\n");
    assert_has(resp.body, "\npgentry_database_ready_seconds 2.250\n");
    assert_has(resp.body, "\npgentry_database_wait_attempts_total{outcome=\"refused\"} 3\n");
    assert_has(resp.body, "\npgentry_database_wait_attempts_total{outcome=\"ok\"} 1\n");
    assert_has(resp.body, "\npgentry_migrations_recorded 5\n");
    assert_has(resp.body, "\npgentry_migration_duration_seconds_sum 0.250\n");
    assert_has(resp.body, "\npgentry_migration_duration_seconds_count 2\n");
    assert_has(resp.body, "\npgentry_migration_lock_wait_seconds_total 1.200\n");
    assert_has(resp.body, "\npgentry_app_up 1\n");
    assert_has(resp.body, "\npgentry_app_pid 4242\n");
    assert_has(resp.body, "\npgentry_app_last_exit_code 3\n");
    assert_has(resp.body, "\npgentry_http_requests_total{path=\"/livez\",code=\"200\"} 2\n");
    assert_has(resp.body, "\npgentry_http_requests_total{path=\"other\",code=\"404\"} 1\n");
    assert_has(resp.body, "\nprocess_start_time_seconds ");
    cr_assert_lt(resp.body_len, PGE_HEALTH_RESPONSE_MAX / 2, "metrics too close to the cap");
    /* The checker itself rejects what it must. */
    cr_assert_eq(pgt_prom_check("a_total 1\n", err, sizeof err), -1);
    cr_assert_eq(pgt_prom_check("# HELP a x\n# TYPE a counter\na 1\n", err, sizeof err), -1);
    cr_assert_eq(pgt_prom_check("# HELP a x\n# TYPE a gauge\na{b=\"c} 1\n", err, sizeof err), -1);
    cr_assert_eq(pgt_prom_check("# HELP a x\n# TYPE a gauge\na 1\na 2\n", err, sizeof err), -1);
    cr_assert_eq(pgt_prom_check("# HELP a x\n# TYPE a gauge\na one\n", err, sizeof err), -1);
    cr_assert_eq(pgt_prom_check("# HELP a x\n# TYPE a gauge\na{x=\"1\"} 1\n# HELP b x\n"
                                "# TYPE b gauge\nb 1\na{x=\"2\"} 1\n",
                                err, sizeof err),
                 -1);
    pgt_server_stop(&s);
}

Test(health, head_404_405_400_431, .timeout = 20)
{
    struct pgt_server s;
    struct pgt_http_resp r2;
    char v[64], big[12000];
    pgt_server_start(&s, NULL, NULL);

    cr_assert_eq(get(&s, "/readyz"), 503);
    size_t get_len = resp.body_len;
    /* HEAD then GET on one connection: the second answer proves HEAD sent no body. */
    int fd = conn(&s);
    send_str(fd, "HEAD /readyz HTTP/1.1\r\n\r\nGET /livez HTTP/1.1\r\n\r\n");
    cr_assert_eq(pgt_http_read(&reader, 1, &r2), 0);
    cr_assert_eq(r2.status, 503);
    cr_assert_eq((size_t)atol(pgt_http_header(&r2, "Content-Length", v, sizeof v)), get_len);
    cr_assert_eq(pgt_http_read(&reader, 0, &r2), 0);
    cr_assert_eq(r2.status, 200);
    cr_assert_str_eq(r2.body, "ok\n");
    close(fd);

    cr_assert_eq(get(&s, "/nope"), 404);
    cr_assert_eq(get(&s, "/livez/"), 404);
    cr_assert_eq(get(&s, "/LIVEZ"), 404);
    cr_assert_eq(pgt_http_get("127.0.0.1", s.port, "POST", "/livez", &resp), 405);
    cr_assert_str_eq(pgt_http_header(&resp, "Allow", v, sizeof v), "GET, HEAD");
    cr_assert_eq(pgt_http_get("127.0.0.1", s.port, "DELETE", "/metrics", &resp), 405);
    cr_assert_eq(pgt_http_get("127.0.0.1", s.port, "GET", "/x y", &resp), 400);

    exchange(&s, "GET /livez HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "close", 1);

    fd = conn(&s);
    strcpy(big, "GET /livez HTTP/1.1\r\nX-Big: ");
    memset(big + strlen(big), 'x', sizeof big - 40);
    big[sizeof big - 1] = '\0';
    send_str(fd, big);
    expect_response(fd, 431, "close", 1, "12 kB header");
    close(fd);
    assert_probe_ok(&s);
    pgt_server_stop(&s);
}

Test(health, keep_alive_and_connection_close, .timeout = 20)
{
    struct pgt_server s;
    char v[64];
    pgt_server_start(&s, NULL, NULL);

    int fd = conn(&s);
    for (int i = 0; i < 3; i++) {
        send_str(fd, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
        cr_assert_eq(pgt_http_read(&reader, 0, &resp), 0, "request %d", i);
        cr_assert_eq(resp.status, 200);
        cr_assert_null(pgt_http_header(&resp, "Connection", v, sizeof v));
    }
    cr_assert_not(pgt_wait_closed(fd, 200), "HTTP/1.1 connection closed without asking");
    send_str(fd, "GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n");
    expect_response(fd, 200, "close", 1, "Connection: close");
    close(fd);

    exchange(&s, "GET /livez HTTP/1.0\r\n\r\n", 200, "close", 1);
    exchange(&s, "GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, "keep-alive", 0);
    exchange(&s, "GET /livez HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 200, NULL, 0);
    /* A body is never read, so the connection cannot be reused after one. */
    exchange(&s, "POST /livez HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 405, "close", 1);
    exchange(&s, "GET /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "close",
             1);
    pgt_server_stop(&s);
}

Test(health, hundred_pipelined_requests_answered_in_order, .timeout = 20)
{
    static const struct {
        const char *req;
        int status, head;
        const char *body;
    } kinds[] = {
        {"GET /livez HTTP/1.1\r\n\r\n", 200, 0, "ok\n"},
        {"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503, 0, "[-]phase failed\n[-]app failed\n"},
        {"GET /nope HTTP/1.1\r\n\r\n", 404, 0, "not found\n"},
        {"HEAD /healthz HTTP/1.1\r\n\r\n", 503, 1, ""},
        {"GET /livez?verbose HTTP/1.1\r\n\r\n", 200, 0, "[+]loop ok\n"},
        {"PUT /status HTTP/1.1\r\n\r\n", 405, 0, "method not allowed\n"},
        {"GET /status HTTP/1.1\r\n\r\n", 200, 0, "{\"phase\":\"starting\""},
    };
    static char all[8192];
    struct pgt_server s;
    size_t n = 0, nk = sizeof kinds / sizeof kinds[0];
    pgt_server_start(&s, NULL, NULL);
    s.st->phase = PGE_PHASE_STARTING;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(all + n, sizeof all - n, "%s", kinds[i % nk].req);
    int fd = conn(&s);
    send_str(fd, all);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(pgt_http_read(&reader, kinds[i % nk].head, &resp), 0, "response %d", i);
        cr_assert_eq(resp.status, kinds[i % nk].status, "response %d", i);
        cr_assert_eq(strncmp(resp.body, kinds[i % nk].body, strlen(kinds[i % nk].body)), 0,
                     "response %d: %s", i, resp.body);
    }
    cr_assert_eq(reader.len, 0, "extra bytes after 100 responses");
    close(fd);
    pgt_server_stop(&s);
}

Test(health, request_split_at_every_byte_boundary, .timeout = 20)
{
    const char *req = "GET /readyz?verbose HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    size_t n = strlen(req);
    struct pgt_server s;
    pgt_server_start(&s, NULL, NULL);
    set_ready(s.st);
    int fd = conn(&s);
    for (size_t k = 1; k < n; k++) {
        cr_assert_eq(pgt_send_all(fd, req, k), 0);
        usleep(2000); /* lets the server see the first part alone */
        cr_assert_eq(pgt_send_all(fd, req + k, n - k), 0);
        cr_assert_eq(pgt_http_read(&reader, 0, &resp), 0, "split at %zu", k);
        cr_assert_eq(resp.status, 200, "split at %zu", k);
        assert_has(resp.body, "readyz check passed\n");
    }
    /* And one byte per segment. */
    for (size_t k = 0; k < n; k++) {
        cr_assert_eq(pgt_send_all(fd, req + k, 1), 0);
        usleep(500);
    }
    cr_assert_eq(pgt_http_read(&reader, 0, &resp), 0);
    cr_assert_eq(resp.status, 200);
    close(fd);
    pgt_server_stop(&s);
}

Test(health, hostile_clients_do_not_starve_a_healthy_one, .timeout = 20)
{
    struct pge_health_opts opts = {.header_timeout_ms = 1000};
    struct pgt_server s;
    static char garbage[4096];
    size_t mib = 1 << 20;
    char *huge = malloc(mib);
    pgt_server_start(&s, NULL, &opts);
    assert_probe_ok(&s);
    long rss0 = pgt_rss_kb(s.pid);

    /* A head that never ends: dropped after the header timeout. */
    int stuck = pgt_connect("127.0.0.1", s.port);
    send_str(stuck, "GET /livez HTTP/1.1\r\nX: a\r\n");
    int64_t t0 = pgt_now_ms();
    assert_probe_ok(&s);

    /* Binary garbage. */
    srand(42);
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(rand() & 0xff);
    garbage[0] = '\x16';
    int fd = conn(&s);
    cr_assert_eq(pgt_send_all(fd, garbage, sizeof garbage), 0);
    expect_response(fd, 400, "close", 1, "garbage");
    close(fd);
    assert_probe_ok(&s);

    /* NUL bytes, in a header value and alone. */
    fd = conn(&s);
    cr_assert_eq(pgt_send_all(fd, "GET /livez HTTP/1.1\r\nX: \0\r\n\r\n", 29), 0);
    expect_response(fd, 400, "close", 1, "NUL in a header");
    close(fd);
    fd = conn(&s);
    memset(garbage, 0, sizeof garbage);
    cr_assert_eq(pgt_send_all(fd, garbage, 1000), 0);
    expect_response(fd, 400, "close", 1, "NULs");
    close(fd);
    assert_probe_ok(&s);

    /* A 1 MiB header: 431 as soon as the limit passes; the rest is discarded, not stored. */
    memcpy(huge, "GET /livez HTTP/1.1\r\nX-Huge: ", 29);
    memset(huge + 29, 'h', mib - 29);
    fd = conn(&s);
    cr_assert_eq(pgt_send_all(fd, huge, mib), 0, "server stopped reading the 1 MiB header");
    expect_response(fd, 431, "close", 1, "1 MiB header");
    close(fd);
    assert_probe_ok(&s);

    cr_assert(pgt_wait_closed(stuck, 3000), "unfinished head never dropped");
    int64_t waited = pgt_now_ms() - t0;
    cr_assert_lt(waited, 2500, "unfinished head dropped after %lld ms", (long long)waited);
    close(stuck);
    assert_probe_ok(&s);
    long rss1 = pgt_rss_kb(s.pid);
    cr_log_info("server RSS %ld kB before, %ld kB after hostile clients", rss0, rss1);
    cr_assert_lt(rss1 - rss0, 1024, "RSS grew from %ld to %ld kB", rss0, rss1);
    free(huge);
    pgt_server_stop(&s);
}

Test(health, ten_thousand_idle_connections, .timeout = 60)
{
    struct rlimit rl;
    struct pgt_server s;
    int want = 10000, opened = 0;
    static int fds[10000];
    char line[128];

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)want + 64)
        want = (int)rl.rlim_cur - 64;
    pgt_server_start(&s, NULL, NULL);
    assert_probe_ok(&s);
    long rss0 = pgt_rss_kb(s.pid);
    for (opened = 0; opened < want; opened++) {
        fds[opened] = pgt_connect("127.0.0.1", s.port);
        if (fds[opened] < 0)
            break;
        if (opened % 1000 == 999)
            assert_probe_ok(&s);
    }
    cr_log_info("opened %d idle connections (wanted 10000, descriptor limit %lu)", opened,
                (unsigned long)rl.rlim_cur);
    cr_assert_geq(opened, want, "could only open %d connections: %s", opened, strerror(errno));
    assert_probe_ok(&s);
    cr_assert_eq(get(&s, "/metrics"), 200);
    const char *p = strstr(resp.body, "\npgentry_http_connections ");
    cr_assert_not_null(p);
    cr_assert_leq(atoi(p + 26), PGE_HEALTH_MAX_CONNS_DEFAULT);
    p = strstr(resp.body, "pgentry_http_connections_dropped_total{reason=\"limit\"} ");
    cr_assert_not_null(p);
    snprintf(line, sizeof line, "%.20s", p + 55);
    cr_assert_geq(atol(line), opened - PGE_HEALTH_MAX_CONNS_DEFAULT, "evicted %s", line);
    long rss1 = pgt_rss_kb(s.pid);
    cr_log_info("server RSS %ld kB before, %ld kB with %d idle connections", rss0, rss1, opened);
    /* The pool bound: max connections times two buffers, plus slack. */
    cr_assert_lt(rss1 - rss0, 8 * 1024, "RSS grew from %ld to %ld kB", rss0, rss1);
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    pgt_server_stop(&s);
}

Test(health, slowloris_is_dropped_after_the_header_timeout, .timeout = 20)
{
    struct pge_health_opts opts = {.header_timeout_ms = 2000};
    const char *req = "GET /livez HTTP/1.1\r\nHost: slowly\r\n\r\n";
    struct pgt_server s;
    pgt_server_start(&s, NULL, &opts);
    int fd = pgt_connect("127.0.0.1", s.port);
    int64_t t0 = pgt_now_ms();
    size_t sent = 0;
    int closed = 0;
    while (!closed && pgt_now_ms() - t0 < 6000) {
        if (sent < strlen(req) && send(fd, req + sent, 1, MSG_NOSIGNAL) == 1)
            sent++;
        assert_probe_ok(&s);
        closed = pgt_wait_closed(fd, 1000);
    }
    int64_t took = pgt_now_ms() - t0;
    cr_assert(closed, "slowloris still connected after %lld ms", (long long)took);
    cr_assert(took >= 1500 && took < 4000, "dropped after %lld ms", (long long)took);
    cr_assert_lt(sent, strlen(req), "the whole request went through");
    cr_assert_eq(get(&s, "/metrics"), 200);
    assert_has(resp.body, "pgentry_http_connections_dropped_total{reason=\"timeout\"} 1\n");
    close(fd);
    pgt_server_stop(&s);
}

Test(health, idle_keep_alive_connection_is_closed, .timeout = 20)
{
    struct pge_health_opts opts = {.idle_timeout_ms = 1000, .header_timeout_ms = 1000};
    struct pgt_server s;
    pgt_server_start(&s, NULL, &opts);
    int fd = conn(&s);
    send_str(fd, "GET /livez HTTP/1.1\r\n\r\n");
    cr_assert_eq(pgt_http_read(&reader, 0, &resp), 0);
    int64_t t0 = pgt_now_ms();
    cr_assert_not(pgt_wait_closed(fd, 500), "closed before the idle timeout");
    cr_assert(pgt_wait_closed(fd, 2500), "idle connection kept");
    cr_assert_geq(pgt_now_ms() - t0, 900);
    close(fd);
    /* A connection that never sends anything. */
    fd = conn(&s);
    cr_assert(pgt_wait_closed(fd, 2500), "silent connection kept");
    close(fd);
    pgt_server_stop(&s);
}

Test(health, client_that_never_reads_is_bounded_and_dropped, .timeout = 20)
{
    struct pge_health_opts opts = {.idle_timeout_ms = 1500};
    const char *req = "GET /metrics HTTP/1.1\r\n\r\n";
    struct pgt_server s;
    pgt_server_start(&s, NULL, &opts);
    int small = 4096;
    long rss0 = pgt_rss_kb(s.pid);
    int fd = pgt_connect("127.0.0.1", s.port);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* Pipeline requests without reading until the server stops taking them. */
    size_t sent = 0;
    int64_t t0 = pgt_now_ms();
    while (pgt_now_ms() - t0 < 2000) {
        ssize_t n = send(fd, req, strlen(req), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    cr_log_info("sent %zu bytes of pipelined requests before back-pressure", sent);
    assert_probe_ok(&s);
    long rss1 = pgt_rss_kb(s.pid);
    cr_assert_lt(rss1 - rss0, 1024, "RSS grew from %ld to %ld kB", rss0, rss1);
    cr_assert(pgt_wait_closed(fd, 4000), "a client that never reads was kept");
    close(fd);
    pgt_server_stop(&s);
}

static int have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

Test(health, ipv6_loopback_and_dual_stack_any, .timeout = 20)
{
    struct pgt_server s;
    if (!have_ipv6())
        cr_skip_test("no IPv6 on this machine");
    pgt_server_start(&s, "[::1]", NULL);
    cr_assert_eq(pgt_http_get("::1", s.port, "GET", "/livez", &resp), 200);
    pgt_server_stop(&s);
    pgt_server_start(&s, "[::]", NULL);
    cr_assert_eq(pgt_http_get("::1", s.port, "GET", "/livez", &resp), 200);
    cr_assert_eq(pgt_http_get("127.0.0.1", s.port, "GET", "/livez", &resp), 200);
    pgt_server_stop(&s);
}

Test(health, address_in_use_and_bad_addresses, .timeout = 20)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pge_runstate st;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    char err[256], addr[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof sin;

    pge_log_setup(PGE_LOG_WARN, PGE_LOG_TEXT);
    pge_runstate_init(&st);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    cr_assert_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
    errno = 0;
    cr_assert_null(pge_health_new(loop, addr, &st, err, sizeof err));
    cr_assert_eq(errno, EADDRINUSE, "errno %d", errno);
    assert_has(err, addr);
    assert_has(err, "in use");

    static const char *const bad[] = {"example.com:80", "8081", "[::1]8081", "127.0.0.1:0",
                                      "1.2.3:80",       "",     "localhost"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        err[0] = '\0';
        cr_assert_null(pge_health_new(loop, bad[i], &st, err, sizeof err), "%s", bad[i]);
        cr_assert_eq(errno, EINVAL, "%s: errno %d", bad[i], errno);
        cr_assert_neq(err[0], '\0');
    }
    cr_assert_null(pge_health_new(loop, NULL, &st, err, sizeof err));
    close(fd);
    ev_loop_destroy(loop);
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

Test(health, free_closes_every_socket_and_stops_every_watcher, .timeout = 20)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pge_runstate st;
    char err[256], addr[64];
    int clients[3], port = pgt_free_port();

    pge_log_setup(PGE_LOG_WARN, PGE_LOG_TEXT);
    pge_runstate_init(&st);
    pge_health_free(NULL);
    int base = count_fds();
    snprintf(addr, sizeof addr, "localhost:%d", port);
    struct pge_health *h = pge_health_new(loop, addr, &st, err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    for (int i = 0; i < 3; i++)
        clients[i] = pgt_connect("127.0.0.1", port);
    send_str(clients[0], "GET /livez HTTP/1.1\r\nX: unfinished");
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT);
    /* Listener, reserve and 3 accepted sockets: all close-on-exec. */
    int open_now = count_fds();
    cr_assert_eq(open_now, base + 3 + 2 + 3, "%d descriptors open, base %d", open_now, base);
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0 && fd != clients[0] && fd != clients[1] && fd != clients[2] &&
            fd > 2)
            if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
                char path[64], target[128] = "";
                snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
                ssize_t n = readlink(path, target, sizeof target - 1);
                if (n > 0 &&
                    (strncmp(target, "socket:", 7) == 0 || strcmp(target, "/dev/null") == 0))
                    cr_assert_fail("fd %d (%s) is inheritable", fd, target);
            }
    pge_health_free(h);
    cr_assert_eq(count_fds(), base + 3, "descriptors left open after free");
    /* No watcher left: a run with nothing active returns at once (else the test times out). */
    ev_run(loop, 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(pgt_wait_closed(clients[i], 1000), "client %d not closed", i);
        close(clients[i]);
    }
    ev_loop_destroy(loop);
}

Test(health, out_of_descriptors_neither_spins_nor_locks_out_probes, .timeout = 20)
{
    struct pgt_server s;
    int hoard[12];
    pgt_server_start_fdlimit(&s, NULL, 3);
    for (int i = 0; i < 12; i++)
        hoard[i] = pgt_connect("127.0.0.1", s.port);
    usleep(200000);
    assert_probe_ok(&s);
    long cpu0 = pgt_cpu_ms(s.pid);
    usleep(1000000);
    long cpu1 = pgt_cpu_ms(s.pid);
    cr_assert_lt(cpu1 - cpu0, 100, "server used %ld ms of CPU in 1 s while out of descriptors",
                 cpu1 - cpu0);
    assert_probe_ok(&s);
    cr_assert_eq(get(&s, "/metrics"), 200);
    cr_assert_null(strstr(resp.body, "{reason=\"limit\"} 0\n"), "nothing was evicted");
    for (int i = 0; i < 12; i++)
        close(hoard[i]);
    pgt_server_stop(&s);
}
