/* Unit tests for resolving HOST:PORT on a work-queue thread with the answer on the loop. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/workqueue.h"
#include "pgentry/net/resolve.h"

/* What one resolution reported. */
struct answer {
    int calls;
    size_t n;
    int family;
    int port;
    char addr[INET6_ADDRSTRLEN];
    char error[512];
};

static void on_answer(void *arg, const struct pge_resolve_addr *addrs, size_t n, const char *error)
{
    struct answer *a = arg;
    a->calls++;
    a->n = n;
    if (error)
        snprintf(a->error, sizeof a->error, "%s", error);
    if (n == 0)
        return;
    a->family = addrs[0].ss.ss_family;
    if (a->family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addrs[0].ss;
        a->port = ntohs(in->sin_port);
        inet_ntop(AF_INET, &in->sin_addr, a->addr, sizeof a->addr);
    } else if (a->family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addrs[0].ss;
        a->port = ntohs(in6->sin6_port);
        inet_ntop(AF_INET6, &in6->sin6_addr, a->addr, sizeof a->addr);
    }
}

static struct ev_loop *loop;
static struct pge_workqueue *wq;

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    wq = pge_workqueue_new(loop);
    cr_assert_not_null(wq);
}

static void teardown(void)
{
    pge_workqueue_free(wq);
    ev_loop_destroy(loop);
}

/* Run the loop until every job is released: the work queue's wake-up alone does not keep the
 * loop alive, so turn it once at a time. */
static void run_until_released(void)
{
    while (pge_workqueue_pending(wq) > 0)
        ev_run(loop, EVRUN_ONCE);
}

static void resolve(const char *host, const char *port, struct answer *a)
{
    char err[128] = "";
    memset(a, 0, sizeof *a);
    struct pge_resolve *r = pge_resolve_start(wq, host, port, on_answer, a, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(a->calls, 0, "the callback came from inside start()");
    run_until_released();
    cr_assert_eq(a->calls, 1);
}

TestSuite(resolve, .init = setup, .fini = teardown, .timeout = 30);

Test(resolve, localhost_resolves_to_a_loopback_address)
{
    struct answer a;
    resolve("localhost", "5432", &a);
    cr_assert_str_empty(a.error);
    cr_assert_geq(a.n, 1);
    cr_assert_eq(a.port, 5432);
    cr_assert(strcmp(a.addr, "127.0.0.1") == 0 || strcmp(a.addr, "::1") == 0, "%s", a.addr);
}

Test(resolve, a_numeric_address_resolves_to_itself)
{
    struct answer a;
    resolve("127.0.0.1", "6543", &a);
    cr_assert_eq(a.n, 1);
    cr_assert_eq(a.family, AF_INET);
    cr_assert_str_eq(a.addr, "127.0.0.1");
    cr_assert_eq(a.port, 6543);
}

Test(resolve, numeric_literals_need_no_thread)
{
    struct pge_resolve_addr out[PGE_RESOLVE_MAX_ADDRS];
    cr_assert_eq(pge_resolve_numeric("127.0.0.1", "5432", out, PGE_RESOLVE_MAX_ADDRS), 1);
    cr_assert_eq(out[0].ss.ss_family, AF_INET);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&out[0].ss)->sin_port), 5432);
    cr_assert_eq(pge_resolve_numeric("::1", "5432", out, PGE_RESOLVE_MAX_ADDRS), 1);
    cr_assert_eq(out[0].ss.ss_family, AF_INET6);
    /* Only asking whether it is a literal. */
    cr_assert_eq(pge_resolve_numeric("10.1.2.3", "1", NULL, 0), 0);
    cr_assert_eq(pge_resolve_numeric("localhost", "5432", out, PGE_RESOLVE_MAX_ADDRS), -1);
    cr_assert_eq(pge_resolve_numeric("db.invalid", "5432", NULL, 0), -1);
    cr_assert_eq(pge_workqueue_pending(wq), 0);
}

Test(resolve, a_name_that_does_not_resolve_says_so)
{
    struct answer a;
    resolve("no-such-host.invalid", "5432", &a);
    cr_assert_eq(a.n, 0);
    cr_assert(strncmp(a.error, "could not resolve host \"no-such-host.invalid\": ", 47) == 0, "%s",
              a.error);
    cr_assert_gt(strlen(a.error), 47, "no reason given: %s", a.error);
}

Test(resolve, cancel_while_running_discards_the_answer)
{
    /* Many at once, cancelled at once: some are still in getaddrinfo(), some done but not yet
     * delivered. The caller's strings and answers are freed right away (ASan checks that the
     * threads never touch them). */
    enum { N = 16 };
    struct answer *a[N];
    struct pge_resolve *r[N];
    for (int i = 0; i < N; i++) {
        char *host = strdup(i % 2 ? "localhost" : "no-such-host.invalid");
        char *port = strdup("5432");
        a[i] = calloc(1, sizeof *a[i]);
        r[i] = pge_resolve_start(wq, host, port, on_answer, a[i], NULL, 0);
        cr_assert_not_null(r[i]);
        free(host);
        free(port);
    }
    int calls = 0;
    for (int i = 0; i < N; i++) {
        pge_resolve_cancel(r[i]);
        calls += a[i]->calls;
        free(a[i]);
    }
    cr_assert_eq(calls, 0);
    run_until_released();
    pge_resolve_cancel(NULL);
}
