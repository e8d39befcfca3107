/* `pgentry healthcheck` client against a real health server, a closed port and a black hole. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgentry/health/healthcheck.h"
#include "pgt.h"
#include "pgt_http.h"

static char line[1024];

static int probe(const char *url, const char *addr, int64_t *ms)
{
    int64_t t0 = pgt_now_ms();
    line[0] = '\0';
    int rc = pge_healthcheck_run(url, addr, line, sizeof line);
    *ms = pgt_now_ms() - t0;
    cr_assert(rc == 0 || rc == 1, "returned %d", rc);
    cr_assert_null(strchr(line, '\n'), "more than one line: %s", line);
    return rc;
}

Test(healthcheck, default_url_maps_wildcards_to_loopback, .timeout = 5)
{
    static const struct {
        const char *addr, *url;
    } cases[] = {
        {"0.0.0.0:8081", "http://127.0.0.1:8081/healthz"},
        {":8081", "http://127.0.0.1:8081/healthz"},
        {"[::]:8081", "http://[::1]:8081/healthz"},
        {"[::1]:9000", "http://[::1]:9000/healthz"},
        {"10.1.2.3:80", "http://10.1.2.3:80/healthz"},
        {"localhost:8081", "http://localhost:8081/healthz"},
    };
    char url[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(pge_healthcheck_default_url(cases[i].addr, url, sizeof url), 0, "%s",
                     cases[i].addr);
        cr_assert_str_eq(url, cases[i].url);
    }
    cr_assert_eq(pge_healthcheck_default_url(NULL, url, sizeof url), -1);
    cr_assert_eq(pge_healthcheck_default_url("8081", url, sizeof url), -1);
    cr_assert_eq(pge_healthcheck_default_url("0.0.0.0:8081", url, 10), -1);
}

Test(healthcheck, zero_against_a_ready_server_one_against_a_waiting_one, .timeout = 20)
{
    struct pgt_server s;
    char addr[64], want[128];
    int64_t ms;
    pgt_server_start(&s, NULL, NULL);
    snprintf(addr, sizeof addr, "0.0.0.0:%d", s.port);

    cr_assert_eq(probe(NULL, addr, &ms), 1, "%s", line);
    snprintf(want, sizeof want, "unhealthy: 503 http://127.0.0.1:%d/healthz", s.port);
    cr_assert_str_eq(line, want);

    s.st->phase = PGE_PHASE_RUNNING;
    s.st->app.running = 1;
    cr_assert_eq(probe(NULL, addr, &ms), 0, "%s", line);
    snprintf(want, sizeof want, "healthy: 200 http://127.0.0.1:%d/healthz", s.port);
    cr_assert_str_eq(line, want);

    /* The stop signal turns it unhealthy at once. */
    s.st->stopping = 1;
    cr_assert_eq(probe(NULL, addr, &ms), 1, "%s", line);

    /* An explicit URL; a password in it is never printed; a 404 is not healthy. */
    snprintf(want, sizeof want, "http://probe:s3cret-pw@127.0.0.1:%d/livez", s.port);
    cr_assert_eq(probe(want, NULL, &ms), 0, "%s", line);
    cr_assert_null(strstr(line, "s3cret-pw"), "%s", line);
    snprintf(want, sizeof want, "http://127.0.0.1:%d/nope", s.port);
    cr_assert_eq(probe(want, NULL, &ms), 1, "%s", line);
    cr_assert_eq(strncmp(line, "unhealthy: 404 ", 15), 0, "%s", line);
    pgt_server_stop(&s);
}

Test(healthcheck, one_against_a_closed_port_quickly, .timeout = 20)
{
    char addr[64];
    int64_t ms;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", pgt_free_port());
    cr_assert_eq(probe(NULL, addr, &ms), 1, "%s", line);
    cr_assert_eq(strncmp(line, "unhealthy: ", 11), 0, "%s", line);
    cr_assert_not_null(strstr(line, "/healthz)"), "%s", line);
    cr_assert_lt(ms, 1500, "took %lld ms", (long long)ms);
    cr_log_info("%s", line);
}

Test(healthcheck, one_within_the_timeout_against_a_black_hole, .timeout = 20)
{
    /* A listener that never accepts: the TCP handshake completes, no answer ever comes. */
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    char url[128];
    int64_t ms;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    cr_assert_eq(listen(fd, 8), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", ntohs(sin.sin_port));
    cr_assert_eq(probe(url, NULL, &ms), 1, "%s", line);
    cr_assert(ms >= PGE_HEALTHCHECK_TIMEOUT_MS - 100 && ms < PGE_HEALTHCHECK_TIMEOUT_MS + 1000,
              "took %lld ms", (long long)ms);
    close(fd);
}

Test(healthcheck, one_without_anything_to_probe, .timeout = 5)
{
    int64_t ms;
    cr_assert_eq(probe(NULL, NULL, &ms), 1);
    cr_assert_eq(strncmp(line, "unhealthy: no URL", 17), 0, "%s", line);
    cr_assert_eq(probe("ftp://127.0.0.1:21/", NULL, &ms), 1, "%s", line);
    cr_assert_eq(probe("not a url", NULL, &ms), 1, "%s", line);
}

/* `pgentry healthcheck` must reach the endpoint itself whatever proxy the container's
 * environment names: a dead one (the probe would fail) or a live one answering 503. */
Test(healthcheck, ignores_the_environment_proxy, .timeout = 30)
{
    struct pgt_server s;
    struct pgt_proc p;
    char url[128], dead[128], live[128];
    int live_port = pgt_free_port();
    pid_t live_proxy = pgt_http_server(live_port, 503);
    pgt_server_start(&s, NULL, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/livez", s.port);
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", pgt_free_port());
    snprintf(live, sizeof live, "http://127.0.0.1:%d", live_port);
    const char *const proxies[] = {dead, live};
    for (size_t i = 0; i < 2; i++) {
        char env[6][160];
        static const char *const vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                           "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
        for (size_t k = 0; k < 6; k++)
            snprintf(env[k], sizeof env[k], "%s=%s", vars[k], proxies[i]);
        const char *const envp[] = {env[0], env[1], env[2], env[3], env[4], env[5], NULL};
        const char *const argv[] = {"pgentry", "healthcheck", url, NULL};
        int rc = pgt_run(&p, argv, envp, 10000);
        cr_assert_eq(rc, 0, "through proxy %s: exit %d, out: %s err: %s", proxies[i], rc, p.out,
                     p.err);
        cr_assert_not_null(strstr(p.out, "healthy: 200"), "out: %s err: %s", p.out, p.err);
        pgt_proc_free(&p);
    }
    pgt_server_stop(&s);
    pgt_kill(live_proxy);
}
