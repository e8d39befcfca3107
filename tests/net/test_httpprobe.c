/* HTTP probes on the loop: the shared libcurl set-up, proven against an environment proxy. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/net/curlloop.h"
#include "pgentry/net/httpprobe.h"
#include "pgt.h"

struct result {
    int done, ok;
    long status;
    char message[512];
};

static void on_probe(void *arg, int ok, long status, enum pge_attempt_outcome outcome,
                     const char *message)
{
    struct result *r = arg;
    (void)outcome;
    r->done = 1;
    r->ok = ok;
    r->status = status;
    snprintf(r->message, sizeof r->message, "%s", message);
}

/* One probe of url on a fresh loop, run to its callback. */
static void probe(const char *url, struct result *r)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pge_curlloop *c = pge_curlloop_new(loop);
    struct pge_httpprobe *p;
    memset(r, 0, sizeof *r);
    cr_assert_not_null(c);
    p = pge_httpprobe_start(c, url, 3000, on_probe, r);
    cr_assert_not_null(p);
    while (!r->done)
        ev_run(loop, EVRUN_ONCE);
    pge_httpprobe_free(p);
    pge_curlloop_free(c);
    ev_loop_destroy(loop);
}

static void set_proxy(const char *proxy)
{
    static const char *const vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                       "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        setenv(vars[i], proxy, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
}

/* A probe of a local endpoint must not go through the container's proxy: neither a dead one
 * (the probe would fail) nor a live one that answers something else (it would lie). */
Test(httpprobe, ignores_the_environment_proxy, .timeout = 20)
{
    char url[128], proxy[128];
    struct result r;
    int port = pgt_free_port();
    pid_t server = pgt_http_server(port, 200);
    int live_port = pgt_free_port();
    pid_t live_proxy = pgt_http_server(live_port, 503);
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);

    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", pgt_free_port());
    set_proxy(proxy);
    probe(url, &r);
    cr_assert(r.ok, "through the dead proxy %s: %s", proxy, r.message);
    cr_assert_eq(r.status, 200);

    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", live_port);
    set_proxy(proxy);
    probe(url, &r);
    cr_assert(r.ok, "through the live proxy %s: %s", proxy, r.message);
    cr_assert_eq(r.status, 200);

    curl_global_cleanup();
    pgt_kill(live_proxy);
    pgt_kill(server);
}

Test(httpprobe, only_http_and_https, .timeout = 20)
{
    struct result r;
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    probe("file:///etc/hostname", &r);
    cr_assert_not(r.ok, "%s", r.message);
    cr_assert_eq(r.status, 0);
    curl_global_cleanup();
}
