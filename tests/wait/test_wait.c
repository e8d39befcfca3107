/* Integration tests of waiting: the real binary against real PostgreSQL servers and sockets. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/common/backoff.h"
#include "pgentry/wait/wait.h"
#include "pgt.h"
#include "pgt_hooks.h"

PGT_SHARED_PG_HOOKS()

static char *envvar(const char *key, const char *value)
{
    char *s = malloc(strlen(key) + strlen(value) + 2);
    sprintf(s, "%s=%s", key, value);
    return s;
}

static void assert_no_password(const struct pgt_proc *p)
{
    cr_assert_null(strstr(p->out, PGT_PASSWORD), "password leaked on stdout:\n%s", p->out);
    cr_assert_null(strstr(p->err, PGT_PASSWORD), "password leaked on stderr:\n%s", p->err);
    cr_assert_null(strstr(p->err, "Secret-pw"), "part of the password leaked:\n%s", p->err);
}

Test(wait, pacing_follows_what_the_server_said, .timeout = 10)
{
    int64_t lo, hi;
    pge_wait_pacing(PGE_ATTEMPT_STARTING, 0, &lo, &hi);
    cr_assert(lo == 0 && hi == 5, "57P03 not retried fast: [%lld, %lld]", (long long)lo,
              (long long)hi);
    pge_wait_pacing(PGE_ATTEMPT_STARTING, 1999, &lo, &hi);
    cr_assert_eq(hi, 5);
    /* A long crash recovery is not hammered. */
    pge_wait_pacing(PGE_ATTEMPT_STARTING, 2000, &lo, &hi);
    cr_assert(lo == 0 && hi == INT64_MAX);
    const enum pge_attempt_outcome costly[] = {PGE_ATTEMPT_DNS, PGE_ATTEMPT_HTTP_STATUS,
                                               PGE_ATTEMPT_OTHER};
    for (size_t i = 0; i < sizeof costly / sizeof costly[0]; i++) {
        pge_wait_pacing(costly[i], 0, &lo, &hi);
        cr_assert(lo == 100 && hi == INT64_MAX, "%s: [%lld, %lld]",
                  pge_runstate_outcome_name(costly[i]), (long long)lo, (long long)hi);
        pge_wait_pacing(costly[i], 60000, &lo, &hi);
        cr_assert_eq(lo, 100, "%s", pge_runstate_outcome_name(costly[i]));
    }
    /* A standby is asked at a fixed pace, however long it has been one: a promotion is
     * noticed within 250 ms, at four looks a second. */
    static const int64_t standby_streak[] = {0, 99, 250, 5000, 3600000};
    for (size_t k = 0; k < sizeof standby_streak / sizeof standby_streak[0]; k++) {
        pge_wait_pacing(PGE_ATTEMPT_STANDBY, standby_streak[k], &lo, &hi);
        cr_assert(lo == 250 && hi == 250, "standby after %lld ms: [%lld, %lld]",
                  (long long)standby_streak[k], (long long)lo, (long long)hi);
    }
    /* Too many connections: the floor follows the streak, from 100 ms to 5 s. */
    const enum pge_attempt_outcome busy[] = {PGE_ATTEMPT_TOO_MANY};
    static const int64_t streak[] = {0, 99, 100, 250, 1000, 4999, 5000, 5001, 3600000};
    static const int64_t floor_at[] = {100, 100, 100, 250, 1000, 4999, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++) {
        for (size_t k = 0; k < sizeof streak / sizeof streak[0]; k++) {
            pge_wait_pacing(busy[i], streak[k], &lo, &hi);
            cr_assert(lo == floor_at[k] && hi == INT64_MAX, "%s after %lld ms: [%lld, %lld]",
                      pge_runstate_outcome_name(busy[i]), (long long)streak[k], (long long)lo,
                      (long long)hi);
        }
        /* Driven like the waiter does (each attempt takes 1 ms): the wait doubles with each
         * answer, and 30 s of refusals cost a dozen attempts, not 300. */
        struct pge_backoff b;
        int64_t now = 0, prev = 0, delay = 0;
        int attempts = 0;
        pge_backoff_init(&b, PGE_BACKOFF_INITIAL_MS, PGE_BACKOFF_MAX_MS, 42);
        while (now < 30000) {
            attempts++;
            pge_wait_pacing(busy[i], now, &lo, &hi);
            cr_assert_eq(pge_backoff_next_clamped(&b, now, 0, lo, hi, &delay), PGE_BACKOFF_RETRY);
            if (attempts > 2 && prev < 2500)
                cr_assert_geq(delay, 2 * prev, "answer %d: %lld after %lld", attempts,
                              (long long)delay, (long long)prev);
            prev = delay;
            now += delay + 1;
        }
        cr_assert_leq(attempts, 15, "%s: %d attempts in 30 s", pge_runstate_outcome_name(busy[i]),
                      attempts);
        cr_assert_eq(delay, 5000);
        /* The deadline rule still holds: the last attempt comes at the deadline, not after. */
        cr_assert_eq(pge_backoff_next_clamped(&b, now, now + 1200, lo, hi, &delay),
                     PGE_BACKOFF_FINAL);
        cr_assert_eq(delay, 1200);
    }
    const enum pge_attempt_outcome plain[] = {PGE_ATTEMPT_REFUSED, PGE_ATTEMPT_TIMEOUT};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        pge_wait_pacing(plain[i], 5000, &lo, &hi);
        cr_assert(lo == 0 && hi == INT64_MAX);
    }
}

Test(wait, an_unencoded_at_in_the_password_is_refused_at_once, .timeout = 30)
{
    /* libpq would split it at the first '@' and name "Secret-pw@127.0.0.1" as the host. */
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://postgres:Top@Secret-pw@127.0.0.1:%d/db", pgt_free_port());
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "20s", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 78, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "percent-encode @ in the password as %40"), "%s", p.err);
    cr_assert(p.elapsed_ms < 1000, "took %lld ms", (long long)p.elapsed_ms);
    assert_no_password(&p);
    cr_assert_null(strstr(p.err, "Top@"), "part of the password leaked:\n%s", p.err);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, ready_server_returns_zero_quickly, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    char *env[] = {envvar("DATABASE_URL", pgt_pg_url(pg, "postgres", url, sizeof url)), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "database is ready"), "%s", p.err);
    cr_assert(p.elapsed_ms < 2000, "took %lld ms", (long long)p.elapsed_ms);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, server_started_later_is_noticed, .timeout = 60)
{
    struct pgt_pg pg;
    struct pgt_proc p;
    char url[256];
    pgt_pg_init(&pg);
    char *env[] = {envvar("DATABASE_URL", pgt_pg_url(&pg, "postgres", url, sizeof url)), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "30s", NULL};
    pgt_proc_spawn(&p, argv, (const char *const *)env);
    usleep(1000 * 1000);
    int64_t t0 = pgt_now_ms();
    pgt_pg_start(&pg);
    int64_t started = pgt_now_ms();
    int rc = pgt_proc_wait(&p, 20000);
    int64_t done = pgt_now_ms();
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "waiting for dependency"), "no waiting line:\n%s", p.err);
    cr_assert(strstr(p.err, "outcome=refused"), "refusals not classified:\n%s", p.err);
    /* pg_ctl -w returns once the server accepts connections; pgentry must follow closely. */
    cr_assert(done - started < 1500, "pgentry returned %lld ms after the server was up",
              (long long)(done - started));
    cr_assert(done - t0 >= 0);
    assert_no_password(&p);
    pgt_proc_free(&p);
    pgt_pg_destroy(&pg);
    free(env[0]);
}

Test(wait, wrong_password_is_refused_at_once, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://postgres:Wrong-Secret-pw-42@127.0.0.1:%d/postgres",
             pg->port);
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "20s", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 77, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(p.elapsed_ms < 1000, "took %lld ms", (long long)p.elapsed_ms);
    cr_assert(strstr(p.err, "28P01"), "no SQLSTATE:\n%s", p.err);
    cr_assert(strstr(p.err, "password authentication failed"), "%s", p.err);
    cr_assert_null(strstr(p.err, "Wrong-Secret-pw-42"), "password leaked:\n%s", p.err);
    cr_assert_null(strstr(p.out, "Wrong-Secret-pw-42"));
    cr_assert(strstr(p.err, "postgres:***@127.0.0.1"), "URL not shown redacted:\n%s", p.err);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, missing_database_is_refused, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    char *env[] = {envvar("DATABASE_URL", pgt_pg_url(pg, "no_such_db", url, sizeof url)), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 77, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "3D000"), "%s", p.err);
    cr_assert(strstr(p.err, "does not exist"), "%s", p.err);
    cr_assert(p.elapsed_ms < 1000);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, pg_hba_rejection_is_refused, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://pgt_nohba:%s@127.0.0.1:%d/postgres", PGT_PASSWORD,
             pg->port);
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 77, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "28000"), "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, missing_password_is_refused, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://postgres@127.0.0.1:%d/postgres", pg->port);
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 77, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "no password") || strstr(p.err, "wants a password"), "%s", p.err);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, server_that_never_starts_times_out_at_the_deadline, .timeout = 30)
{
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://postgres:%s@127.0.0.1:%d/postgres", PGT_PASSWORD,
             pgt_free_port());
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "3s", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 69, "exit %d, stderr:\n%s", rc, p.err);
    /* Never early; late only by scheduling (a closed port answers at once): a loaded 2-core
     * machine or an ASan build adds a few hundred ms of process start and exit. */
    cr_assert(p.elapsed_ms >= 2700 && p.elapsed_ms <= 4000, "exited after %lld ms, not 3 s",
              (long long)p.elapsed_ms);
    cr_assert(strstr(p.err, "gave up waiting"), "%s", p.err);
    /* State changes are logged, not every identical retry. */
    int lines = 0;
    for (const char *s = p.err; (s = strstr(s, "dependency=postgres")); s++)
        lines++;
    cr_assert(lines < 12, "%d log lines for one unchanged failure:\n%s", lines, p.err);
    cr_assert(strstr(p.err, "still waiting"), "no periodic reminder:\n%s", p.err);
    /* libpq's first attempt and the bare connect() probes after it report the same failure. */
    cr_assert_null(strstr(p.err, "dependency failure changed"), "%s", p.err);
    cr_assert(strstr(p.err, "time_left="), "%s", p.err);
    cr_assert(strstr(p.err, "next_delay="), "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, unresolvable_host_is_retried_then_times_out, .timeout = 30)
{
    struct pgt_proc p;
    char *env[] = {envvar("DATABASE_URL", "postgres://u:" PGT_PASSWORD "@no-such-host.invalid/db"),
                   NULL};
    /* A lookup may be slow under load; the last attempt may use its whole connect timeout. */
    const char *argv[] = {"pgentry",     "wait",  "--wait-timeout",    "1500ms",
                          "--log-level", "debug", "--connect-timeout", "1s",
                          NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 69, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "outcome=dns"), "%s", p.err);
    cr_assert(strstr(p.err, "attempt=2"), "not retried:\n%s", p.err);
    cr_assert(p.elapsed_ms < 1500 + 1000 + 1000, "took %lld ms", (long long)p.elapsed_ms);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, localhost_and_ipv6_literal_work, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    const char *hosts[] = {"localhost", "[::1]"};
    for (size_t i = 0; i < 2; i++) {
        struct pgt_proc p;
        char url[256];
        snprintf(url, sizeof url, "postgres://postgres:%s@%s:%d/postgres", PGT_PASSWORD, hosts[i],
                 pg->port);
        char *env[] = {envvar("DATABASE_URL", url), NULL};
        const char *argv[] = {"pgentry", "wait", "--wait-timeout", "5s", NULL};
        int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
        cr_assert_eq(rc, 0, "%s: exit %d, stderr:\n%s", hosts[i], rc, p.err);
        pgt_proc_free(&p);
        free(env[0]);
    }
}

Test(wait, a_host_list_skips_a_name_that_does_not_resolve, .timeout = 30)
{
    /* Each name is looked up on its own thread; the addresses that were found are tried. */
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url,
             "postgres://postgres:%s@no-such-host.invalid:%d,localhost:%d/postgres", PGT_PASSWORD,
             pg->port, pg->port);
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "10s", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 15000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "database is ready"), "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, conninfo_string_and_pg_env_work, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char ci[256], port[16];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=postgres user=postgres password='%s'",
             pg->port, PGT_PASSWORD);
    char *env[] = {envvar("DATABASE_URL", ci), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);

    snprintf(port, sizeof port, "%d", pg->port);
    char *env2[] = {envvar("PGHOST", pg->dir), envvar("PGPORT", port), envvar("PGUSER", "postgres"),
                    envvar("PGDATABASE", "postgres"), NULL};
    rc = pgt_run(&p, argv, (const char *const *)env2, 10000);
    cr_assert_eq(rc, 0, "PGHOST socket: exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
    for (int i = 0; env2[i]; i++)
        free(env2[i]);
}

Test(wait, service_file_is_resolved_off_the_loop, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char dir[256], file[320], content[512], e_file[400];
    pgt_tempdir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/pg_service.conf", dir);
    /* Only the service file knows where the server is: libpq must start the connection. */
    snprintf(content, sizeof content,
             "[pgt]\nhost=localhost\nport=%d\ndbname=postgres\nuser=postgres\npassword=%s\n",
             pg->port, PGT_PASSWORD);
    pgt_write_file(file, content);
    snprintf(e_file, sizeof e_file, "PGSERVICEFILE=%s", file);
    const char *env[] = {e_file, "PGSERVICE=pgt", NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "10s", NULL};
    int rc = pgt_run(&p, argv, env, 15000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "database is ready"), "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
}

Test(wait, malformed_url_is_a_configuration_error, .timeout = 10)
{
    struct pgt_proc p;
    char *env[] = {envvar("DATABASE_URL", "postgres://u:" PGT_PASSWORD "@host:notaport/db"), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 5000);
    cr_assert_eq(rc, 78, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "malformed database URL"), "%s", p.err);
    cr_assert(p.elapsed_ms < 1000);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, too_many_connections_is_retried, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256];
    char *ok = pgt_pg_query(pg, "postgres",
                            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                            "'pgt_limited') THEN CREATE ROLE pgt_limited LOGIN CONNECTION LIMIT 0 "
                            "PASSWORD '" PGT_PASSWORD "'; END IF; END$$");
    free(ok);
    snprintf(url, sizeof url, "postgres://pgt_limited:%s@127.0.0.1:%d/postgres", PGT_PASSWORD,
             pg->port);
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "1s", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 69, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "53300"), "%s", p.err);
    cr_assert(strstr(p.err, "outcome=too_many"), "%s", p.err);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, read_only_server_is_retried, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char db[64], url[256], sql[160];
    pgt_pg_createdb(pg, db, sizeof db);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on", db);
    free(pgt_pg_query(pg, "postgres", sql));
    char *env[] = {envvar("DATABASE_URL", pgt_pg_url(pg, db, url, sizeof url)), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "1s", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 69, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "outcome=standby"), "%s", p.err);
    cr_assert(strstr(p.err, "read-only"), "%s", p.err);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, sigterm_while_waiting_exits_143_promptly, .timeout = 30)
{
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://u:pw@127.0.0.1:%d/db", pgt_free_port());
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "30s", NULL};
    pgt_proc_spawn(&p, argv, (const char *const *)env);
    cr_assert_eq(pgt_wait_for_text(p.err_path, "waiting for dependency", 5000), 0);
    int64_t t0 = pgt_now_ms();
    kill(p.pid, SIGTERM);
    int rc = pgt_proc_wait(&p, 5000);
    cr_assert_eq(rc, 143, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(pgt_now_ms() - t0 < 500, "took %lld ms to stop", (long long)(pgt_now_ms() - t0));
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, tcp_dependency, .timeout = 30)
{
    struct pgt_proc p;
    int port = 0;
    int fd = pgt_tcp_listen(&port);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    const char *argv[] = {"pgentry", "wait", "--wait-tcp", target, NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "dependency is ready"), "%s", p.err);
    pgt_proc_free(&p);
    close(fd);

    /* Nothing listening: refused, retried, 69. The env form with a list is accepted too. */
    char list[160];
    snprintf(list, sizeof list, "localhost:%d, 127.0.0.1:%d", pgt_free_port(), pgt_free_port());
    char *env[] = {envvar("PGENTRY_WAIT_TCP", list), NULL};
    const char *argv2[] = {"pgentry", "wait", "--wait-timeout", "700ms", NULL};
    rc = pgt_run(&p, argv2, (const char *const *)env, 10000);
    cr_assert_eq(rc, 69, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "outcome=refused"), "%s", p.err);
    cr_assert(strstr(p.err, "also not ready"), "second dependency not reported:\n%s", p.err);
    pgt_proc_free(&p);
    free(env[0]);
}

Test(wait, tcp_listener_started_later, .timeout = 30)
{
    struct pgt_proc p;
    int port = pgt_free_port();
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    const char *argv[] = {"pgentry", "wait", "--wait-tcp", target, "--wait-timeout", "10s", NULL};
    pgt_proc_spawn(&p, argv, NULL);
    usleep(500 * 1000);
    int fd = pgt_tcp_listen(&port);
    int rc = pgt_proc_wait(&p, 5000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(p.elapsed_ms < 1500);
    pgt_proc_free(&p);
    close(fd);
}

Test(wait, http_dependency, .timeout = 30)
{
    struct pgt_proc p;
    int port = pgt_free_port();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
    pid_t srv = pgt_http_server(port, 204);
    const char *argv[] = {"pgentry", "wait", "--wait-http", url, NULL};
    int rc = pgt_run(&p, argv, NULL, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_kill(srv);

    /* A 503 is not ready. */
    port = pgt_free_port();
    snprintf(url, sizeof url, "http://user:" PGT_PASSWORD "@127.0.0.1:%d/", port);
    srv = pgt_http_server(port, 503);
    const char *argv2[] = {"pgentry", "wait", "--wait-http", url, "--wait-timeout", "700ms", NULL};
    rc = pgt_run(&p, argv2, NULL, 10000);
    cr_assert_eq(rc, 69, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "answered 503"), "%s", p.err);
    cr_assert(strstr(p.err, "outcome=http_status"), "%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
    pgt_kill(srv);
}

Test(wait, every_dependency_at_once, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_proc p;
    char url[256], tcp[64], http[128];
    int tport = 0;
    int fd = pgt_tcp_listen(&tport);
    int hport = pgt_free_port();
    snprintf(tcp, sizeof tcp, "127.0.0.1:%d", tport);
    snprintf(http, sizeof http, "http://127.0.0.1:%d/", hport);
    pid_t srv = pgt_http_server(hport, 200);
    char *env[] = {envvar("DATABASE_URL", pgt_pg_url(pg, "postgres", url, sizeof url)), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-tcp", tcp, "--wait-http", http, NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "dependency=postgres"));
    cr_assert(strstr(p.err, "dependency=tcp"));
    cr_assert(strstr(p.err, "dependency=http"));
    pgt_proc_free(&p);
    pgt_kill(srv);
    close(fd);
    free(env[0]);
}

Test(wait, json_logs_are_one_object_per_line, .timeout = 30)
{
    struct pgt_proc p;
    char url[256];
    snprintf(url, sizeof url, "postgres://u:%s@127.0.0.1:%d/db", PGT_PASSWORD, pgt_free_port());
    char *env[] = {envvar("DATABASE_URL", url), envvar("PGENTRY_LOG_FORMAT", "json"), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "300ms", NULL};
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 69);
    char path[300];
    snprintf(path, sizeof path, "%s", p.err_path);
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\nn=0\nfor l in open(sys.argv[1]):\n  o=json.loads(l)\n"
             "  assert {\"ts\",\"level\",\"pid\",\"msg\"} <= o.keys(), o\n  n+=1\nassert n>=2' %s",
             path);
    cr_assert_eq(system(cmd), 0, "stderr is not JSON lines:\n%s", p.err);
    assert_no_password(&p);
    pgt_proc_free(&p);
    free(env[0]);
    free(env[1]);
}
