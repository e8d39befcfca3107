/* Connection attempts over several hosts and through a failover: the real binary against a
 * real primary and its hot standby. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_standby.h"

PGT_SHARED_PG_HOOKS()

static char *envvar(const char *key, const char *value)
{
    char *s = malloc(strlen(key) + strlen(value) + 2);
    sprintf(s, "%s=%s", key, value);
    return s;
}

/* Run `pgentry wait` against url; returns the exit code, p keeps the outputs. */
static int wait_on(struct pgt_proc *p, const char *url, const char *timeout)
{
    char *env[] = {envvar("DATABASE_URL", url), NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", timeout, "--connect-timeout",
                          "3s",      NULL};
    int rc = pgt_run(p, argv, (const char *const *)env, 20000);
    free(env[0]);
    cr_assert_null(strstr(p->err, PGT_PASSWORD), "password leaked:\n%s", p->err);
    return rc;
}

/* The "database is ready" line names the server that answered. */
static void assert_answered(const struct pgt_proc *p, int port, const char *what)
{
    char needle[64];
    snprintf(needle, sizeof needle, "server=127.0.0.1:%d", port);
    const char *line = strstr(p->err, "database is ready");
    cr_assert(line && strstr(line, needle), "%s: expected %s to answer:\n%s", what, needle, p->err);
}

Test(pgconn, every_host_is_tried_until_a_primary_answers, .timeout = 120)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_pg sb;
    struct pgt_proc p;
    char url[512];
    int P = pg->port, S;
    pgt_pg_standby(pg, &sb);
    S = sb.port;

    const char *ip = "127.0.0.1";
    struct {
        const char *what;
        int conninfo;      /* host=... port=... instead of a URL */
        const char *host1; /* the second host is 127.0.0.1 */
        int first, second, answers;
        const char *attrs; /* target_session_attrs, or "" */
    } cases[] = {
        {"standby first", 0, ip, S, P, P, ""},
        {"primary first", 0, ip, P, S, P, ""},
        {"unresolvable first", 0, "no-such-host.invalid", P, P, P, ""},
        {"conninfo, standby first", 1, ip, S, P, P, ""},
        {"conninfo, unresolvable first", 1, "no-such-host.invalid", P, P, P, ""},
        {"closed port first", 0, ip, pgt_free_port(), P, P, ""},
        {"any accepts the standby", 0, ip, S, P, S, "any"},
        {"conninfo, any accepts the standby", 1, ip, S, P, S, "any"},
        {"standby wanted, primary first", 0, ip, P, S, S, "standby"},
        {"prefer-standby, primary first", 0, ip, P, S, S, "prefer-standby"},
        {"read-only, primary first", 0, ip, P, S, S, "read-only"},
        {"primary, standby first", 0, ip, S, P, P, "primary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *a = cases[i].attrs;
        if (cases[i].conninfo)
            snprintf(url, sizeof url,
                     "host=%s,127.0.0.1 port=%d,%d user=postgres password=%s dbname=postgres%s%s",
                     cases[i].host1, cases[i].first, cases[i].second, PGT_PASSWORD,
                     a[0] ? " target_session_attrs=" : "", a);
        else
            snprintf(url, sizeof url, "postgres://postgres:%s@%s:%d,127.0.0.1:%d/postgres%s%s",
                     PGT_PASSWORD, cases[i].host1, cases[i].first, cases[i].second,
                     a[0] ? "?target_session_attrs=" : "", a);
        int rc = wait_on(&p, url, "10s");
        cr_assert_eq(rc, 0, "%s: exit %d\n%s", cases[i].what, rc, p.err);
        assert_answered(&p, cases[i].answers, cases[i].what);
        pgt_proc_free(&p);
    }

    /* prefer-standby takes a primary when no standby answers. */
    snprintf(url, sizeof url,
             "postgres://postgres:%s@127.0.0.1:%d/postgres?target_session_attrs=prefer-standby",
             PGT_PASSWORD, P);
    cr_assert_eq(wait_on(&p, url, "10s"), 0, "%s", p.err);
    assert_answered(&p, P, "prefer-standby, primary only");
    pgt_proc_free(&p);

    /* Nothing but a standby and a name that does not resolve: not ready, and the last error
     * names each host. */
    snprintf(url, sizeof url,
             "postgres://postgres:%s@no-such-host.invalid:%d,127.0.0.1:%d/postgres", PGT_PASSWORD,
             P, S);
    cr_assert_eq(wait_on(&p, url, "1s"), 69, "%s", p.err);
    cr_assert(strstr(p.err, "outcome=standby"), "%s", p.err);
    cr_assert(strstr(p.err, "no-such-host.invalid:"), "%s", p.err);
    char sbname[64];
    snprintf(sbname, sizeof sbname, "127.0.0.1:%d: server is a read-only standby", S);
    cr_assert(strstr(p.err, sbname), "%s", p.err);
    pgt_proc_free(&p);

    /* A value libpq would refuse is a configuration error. */
    snprintf(url, sizeof url,
             "postgres://postgres:%s@127.0.0.1:%d/postgres?target_session_attrs=master",
             PGT_PASSWORD, P);
    cr_assert_eq(wait_on(&p, url, "1s"), 78, "%s", p.err);
    cr_assert(strstr(p.err, "target_session_attrs \"master\""), "%s", p.err);
    pgt_proc_free(&p);

    pgt_pg_destroy(&sb);
}

Test(pgconn, promotion_is_noticed_promptly, .timeout = 120)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_pg sb;
    struct pgt_proc p;
    char url[256];
    pgt_pg_standby(pg, &sb);
    char *env[] = {envvar("DATABASE_URL", pgt_pg_url(&sb, "postgres", url, sizeof url)), NULL};
    const char *argv[] = {"pgentry", "--no-migrate", "--health-addr", "off", "--wait-timeout",
                          "60s",     "--",           "true",          NULL};
    pgt_proc_spawn(&p, argv, (const char *const *)env);
    /* Long enough on the standby for a growing backoff to have grown. */
    cr_assert_eq(pgt_wait_for_text(p.err_path, "outcome=standby", 20000), 0);
    int64_t seen = pgt_now_ms();
    while (pgt_now_ms() - seen < 3000)
        cr_assert_eq(pgt_wait_for_text(p.err_path, "database is ready", 100), -1,
                     "ready while still a standby");
    pgt_pg_promote(&sb);
    int64_t promoted = pgt_now_ms();
    int rc = pgt_proc_wait(&p, 20000);
    int64_t latency = pgt_now_ms() - promoted;
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert_leq(latency, 1500, "COMMAND ran %lld ms after the promotion\n%s", (long long)latency,
                  p.err);
    pgt_proc_free(&p);
    free(env[0]);
    pgt_pg_destroy(&sb);
}
