/* --stop-delay: readiness turns 503 at once, COMMAND gets the stop signal only after the delay. */
#include "supervise_test.h"

#include "pgt_http.h"

ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
    (void)stats;
    kill_leftovers();
}

/* Start pgentry supervising the test child (which records each signal in file and exits 42 on
 * TERM) with its health endpoint on port, and wait until /readyz says 200. */
static void start(struct pgt_proc *p, int port, const char *delay, const char *file)
{
    static char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *argv[] = {"pgentry", "--health-addr", addr, "--stop-delay", delay, "--",
                          CHILD,     "signals",       file, "42",           NULL};
    spawn(p, argv);
    wait_text(file, "ready", 10000);
    struct pgt_http_resp r;
    int64_t deadline = pgt_now_ms() + 10000;
    while (pgt_http_get("127.0.0.1", port, "GET", "/readyz", &r) != 200) {
        cr_assert(pgt_now_ms() < deadline, "/readyz never became 200");
        usleep(20 * 1000);
    }
}

/* Poll /readyz until it answers 503; the elapsed milliseconds. */
static int64_t until_503(int port, int64_t since)
{
    struct pgt_http_resp r;
    int64_t deadline = pgt_now_ms() + 5000;
    while (pgt_http_get("127.0.0.1", port, "GET", "/readyz", &r) != 503) {
        cr_assert(pgt_now_ms() < deadline, "/readyz did not turn 503 after TERM");
        usleep(5 * 1000);
    }
    return pgt_now_ms() - since;
}

/* Poll until the child recorded TERM; the elapsed milliseconds. */
static int64_t until_term(const char *file, int64_t since, int timeout_ms)
{
    wait_text(file, "\nTERM\n", timeout_ms);
    return pgt_now_ms() - since;
}

Test(stopdelay, readiness_drops_at_once_and_term_reaches_the_child_after_the_delay, .timeout = 60)
{
    char dir[256], file[320];
    struct pgt_proc p;
    int port = pgt_free_port();
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    start(&p, port, "1500ms", file);

    int64_t t0 = pgt_now_ms();
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int64_t to_503 = until_503(port, t0);
    char *s = pgt_read_file(file);
    cr_assert(!strstr(s, "TERM"), "the child got TERM before the delay (503 after %lld ms):\n%s",
              (long long)to_503, s);
    free(s);
    /* /livez stays up while draining. */
    struct pgt_http_resp r;
    cr_assert_eq(pgt_http_get("127.0.0.1", port, "GET", "/livez", &r), 200);

    int64_t to_term = until_term(file, t0, 10000);
    cr_assert_geq(to_term, 1500 - 20, "TERM reached the child after %lld ms, before the delay",
                  (long long)to_term);
    int rc = pgt_proc_wait(&p, 15000);
    cr_assert_eq(rc, 42, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "TERM"), 1, "%s", pgt_read_file(file));
    cr_assert(strstr(p.err, "stop-delay"), "the delay is logged:\n%s", p.err);
    pgt_proc_free(&p);
}

Test(stopdelay, a_second_term_during_the_delay_is_forwarded_at_once, .timeout = 60)
{
    char dir[256], file[320];
    struct pgt_proc p;
    int port = pgt_free_port();
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    start(&p, port, "60s", file);

    int64_t t0 = pgt_now_ms();
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    until_503(port, t0);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int64_t to_term = until_term(file, t0, 10000);
    cr_assert_lt(to_term, 30000, "the second TERM waited for the delay");
    int rc = pgt_proc_wait(&p, 15000);
    cr_assert_eq(rc, 42, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_eq(count_lines(file, "TERM"), 1, "one TERM, not the held one too:\n%s",
                 pgt_read_file(file));
    pgt_proc_free(&p);
}

Test(stopdelay, without_the_option_term_is_forwarded_at_once, .timeout = 60)
{
    char dir[256], file[320];
    struct pgt_proc p;
    int port = pgt_free_port();
    scratch(dir, sizeof dir, file, sizeof file, "signals");
    start(&p, port, "0", file);
    int64_t t0 = pgt_now_ms();
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    int rc = pgt_proc_wait(&p, 15000);
    cr_assert_eq(rc, 42, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert_lt(pgt_now_ms() - t0, 3000, "no delay by default");
    pgt_proc_free(&p);
}
