/* Integration tests of a whole run: phases as the health endpoint reports them, the real binary
 * against a real PostgreSQL, a real application and real HTTP clients. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_http.h"

PGT_SHARED_PG_HOOKS()

struct run_env {
    char url[300];
    char health[64];
    char dir[256];
    char e_url[340], e_health[100], e_dir[300];
    const char *env[8];
    int port;
};

static void run_env_init(struct run_env *e, const char *database_url)
{
    memset(e, 0, sizeof *e);
    e->port = pgt_free_port();
    snprintf(e->health, sizeof e->health, "127.0.0.1:%d", e->port);
    pgt_tempdir(e->dir, sizeof e->dir);
    snprintf(e->e_url, sizeof e->e_url, "DATABASE_URL=%s", database_url);
    snprintf(e->e_health, sizeof e->e_health, "PGENTRY_HEALTH_ADDR=%s", e->health);
    snprintf(e->e_dir, sizeof e->e_dir, "PGENTRY_MIGRATIONS=%s", e->dir);
    e->env[0] = e->e_url;
    e->env[1] = e->e_health;
    e->env[2] = e->e_dir;
}

static void add_migration(struct run_env *e, const char *name, const char *sql)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", e->dir, name);
    pgt_write_file(path, sql);
}

/* GET path until it answers (the server starts with pgentry); returns the status. */
static int get(struct run_env *e, const char *path, struct pgt_http_resp *r)
{
    for (int i = 0; i < 200; i++) {
        int st = pgt_http_get("127.0.0.1", e->port, "GET", path, r);
        if (st > 0)
            return st;
        usleep(10000);
    }
    return -1;
}

/* Poll /status until its body contains needle. */
static int status_has(struct run_env *e, const char *needle, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    struct pgt_http_resp r;
    while (pgt_now_ms() < deadline) {
        if (get(e, "/status", &r) == 200 && strstr(r.body, needle))
            return 0;
        usleep(20000);
    }
    return -1;
}

static void check_json(const struct pgt_http_resp *r)
{
    char err[256];
    cr_assert_eq(pgt_json_check(r->body, r->body_len, err, sizeof err), 0, "bad JSON (%s): %s", err,
                 r->body);
}

Test(run, health_follows_the_phases, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct run_env e;
    struct pgt_proc p;
    struct pgt_http_resp r;
    char url[256], db[64], marker[300], cmd[600];
    pgt_pg_createdb(pg, db, sizeof db);

    /* Waiting: a database that is down (a closed port). */
    snprintf(url, sizeof url, "postgres://postgres:%s@127.0.0.1:%d/%s", PGT_PASSWORD,
             pgt_free_port(), db);
    run_env_init(&e, url);
    const char *argv[] = {"pgentry", "--wait-timeout", "30s", "--", "sleep", "30", NULL};
    pgt_proc_spawn(&p, argv, e.env);
    cr_assert_eq(get(&e, "/livez", &r), 200, "livez while waiting");
    cr_assert_eq(status_has(&e, "\"phase\":\"waiting\"", 5000), 0);
    cr_assert_eq(get(&e, "/readyz", &r), 503);
    cr_assert_eq(get(&e, "/status", &r), 200);
    check_json(&r);
    cr_assert(strstr(r.body, "\"attempts\":"), "%s", r.body);
    cr_assert(strstr(r.body, "\"ready\":false"), "%s", r.body);
    cr_assert_null(strstr(r.body, PGT_PASSWORD), "password in /status");
    cr_assert_eq(get(&e, "/metrics", &r), 200);
    cr_assert(strstr(r.body, "refused"), "attempts by outcome missing:\n%s", r.body);
    cr_assert_eq(get(&e, "/readyz?verbose", &r), 503);
    cr_assert(strstr(r.body, "[-]"), "%s", r.body);
    kill(p.pid, SIGTERM);
    cr_assert_eq(pgt_proc_wait(&p, 5000), 143, "%s", p.err);
    pgt_proc_free(&p);

    /* Migrating, then running: a migration that takes a moment, an app that stays up. */
    pgt_pg_url(pg, db, url, sizeof url);
    run_env_init(&e, url);
    add_migration(&e, "0001_slow.up.sql", "CREATE TABLE t (id int);\nSELECT pg_sleep(1.5);\n");
    snprintf(marker, sizeof marker, "%s/app-started", e.dir);
    snprintf(cmd, sizeof cmd, "touch %s; exec sleep 30", marker);
    const char *argv2[] = {"pgentry", "--", "sh", "-c", cmd, NULL};
    pgt_proc_spawn(&p, argv2, e.env);
    cr_assert_eq(status_has(&e, "\"phase\":\"migrating\"", 10000), 0, "never seen migrating");
    cr_assert_eq(get(&e, "/readyz", &r), 503);
    cr_assert_neq(access(marker, F_OK), 0, "app started during migrations");
    cr_assert_eq(status_has(&e, "\"phase\":\"running\"", 10000), 0, "never seen running");
    cr_assert_eq(get(&e, "/readyz", &r), 200);
    cr_assert_eq(get(&e, "/healthz", &r), 200);
    cr_assert_eq(get(&e, "/status", &r), 200);
    check_json(&r);
    cr_assert(strstr(r.body, "\"current\":\"0001\""), "%s", r.body);
    cr_assert(strstr(r.body, "\"running\":true"), "%s", r.body);
    cr_assert(strstr(r.body, "\"ready\":true"), "%s", r.body);
    cr_assert_eq(get(&e, "/metrics", &r), 200);
    cr_assert(strstr(r.body, "pgentry_migrations_recorded 1\n"), "%s", r.body);
    cr_assert(strstr(r.body, "pgentry_migration_duration_seconds_count 1\n"), "%s", r.body);

    /* healthcheck: 0 against this ready instance. */
    char hurl[128];
    snprintf(hurl, sizeof hurl, "http://%s/healthz", e.health);
    const char *hargv[] = {"pgentry", "healthcheck", hurl, NULL};
    struct pgt_proc h;
    cr_assert_eq(pgt_run(&h, hargv, NULL, 5000), 0, "%s%s", h.out, h.err);
    cr_assert(strstr(h.out, "healthy"), "%s", h.out);
    pgt_proc_free(&h);
    /* And with the address from the environment, as a HEALTHCHECK would run it. */
    const char *henv[] = {e.e_health, NULL};
    const char *hargv2[] = {"pgentry", "healthcheck", NULL};
    cr_assert_eq(pgt_run(&h, hargv2, henv, 5000), 0, "%s%s", h.out, h.err);
    pgt_proc_free(&h);

    kill(p.pid, SIGTERM);
    cr_assert_eq(pgt_proc_wait(&p, 5000), 143, "%s", p.err);
    pgt_proc_free(&p);
}

Test(run, readiness_drops_on_stop_before_the_app_exits, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct run_env e;
    struct pgt_proc p;
    struct pgt_http_resp r;
    char url[256];
    run_env_init(&e, pgt_pg_url(pg, "postgres", url, sizeof url));
    /* The app takes a second to shut down after TERM. */
    const char *argv[] = {"pgentry", "--no-migrate",
                          "--",      "sh",
                          "-c",      "trap 'sleep 1; exit 0' TERM; while :; do sleep 0.05; done",
                          NULL};
    pgt_proc_spawn(&p, argv, e.env);
    cr_assert_eq(status_has(&e, "\"phase\":\"running\"", 10000), 0);
    cr_assert_eq(get(&e, "/readyz", &r), 200);
    kill(p.pid, SIGTERM);
    usleep(100 * 1000);
    cr_assert_eq(get(&e, "/readyz", &r), 503, "still ready after TERM");
    cr_assert_eq(get(&e, "/livez", &r), 200, "liveness must hold while stopping");
    cr_assert_eq(get(&e, "/status", &r), 200);
    cr_assert(strstr(r.body, "\"phase\":\"stopping\""), "%s", r.body);
    cr_assert(strstr(r.body, "\"running\":true"), "app gone too early: %s", r.body);
    cr_assert_eq(pgt_proc_wait(&p, 5000), 0, "%s", p.err);
    pgt_proc_free(&p);
}

Test(run, app_health_url_gates_readiness, .timeout = 60)
{
    struct run_env e;
    struct pgt_proc p;
    struct pgt_http_resp r;
    char app_url[128], e_app[200];
    int app_port = pgt_free_port();
    snprintf(app_url, sizeof app_url, "http://127.0.0.1:%d/health", app_port);
    snprintf(e_app, sizeof e_app, "PGENTRY_APP_HEALTH_URL=%s", app_url);

    /* No database: a plain init whose app answers 503 at first. */
    run_env_init(&e, "");
    const char *env[] = {e.e_health, e_app, NULL};
    const char *argv[] = {"pgentry", "--", "sleep", "30", NULL};
    pid_t srv = pgt_http_server(app_port, 503);
    pgt_proc_spawn(&p, argv, env);
    cr_assert_eq(status_has(&e, "\"phase\":\"running\"", 10000), 0);
    usleep(1500 * 1000);
    cr_assert_eq(get(&e, "/readyz", &r), 503, "ready while the app says 503");
    cr_assert_eq(get(&e, "/readyz?verbose", &r), 503);
    cr_assert(strstr(r.body, "[-]"), "%s", r.body);
    pgt_kill(srv);
    srv = pgt_http_server(app_port, 200);
    int ok = 0;
    for (int i = 0; i < 60 && !ok; i++) {
        ok = get(&e, "/readyz", &r) == 200;
        usleep(50000);
    }
    cr_assert(ok, "never ready after the app turned healthy");
    pgt_kill(srv);
    kill(p.pid, SIGTERM);
    cr_assert_eq(pgt_proc_wait(&p, 5000), 143);
    pgt_proc_free(&p);
}

Test(run, health_address_in_use_is_a_configuration_error, .timeout = 30)
{
    struct pgt_proc p;
    int port = 0;
    int fd = pgt_tcp_listen(&port);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *argv[] = {"pgentry", "--health-addr", addr, "--", "true", NULL};
    int rc = pgt_run(&p, argv, NULL, 5000);
    cr_assert_eq(rc, 78, "%s", p.err);
    cr_assert(strstr(p.err, "--health-addr"), "no fix named:\n%s", p.err);
    pgt_proc_free(&p);
    close(fd);
}

Test(run, healthcheck_fails_against_waiting_and_closed, .timeout = 30)
{
    struct run_env e;
    struct pgt_proc p, h;
    char url[256], hurl[128];
    snprintf(url, sizeof url, "postgres://u:pw@127.0.0.1:%d/db", pgt_free_port());
    run_env_init(&e, url);
    const char *argv[] = {"pgentry", "--", "true", NULL};
    add_migration(&e, "0001_a.up.sql", "SELECT 1;\n");
    pgt_proc_spawn(&p, argv, e.env);
    struct pgt_http_resp r;
    cr_assert_eq(get(&e, "/livez", &r), 200);
    snprintf(hurl, sizeof hurl, "http://%s/healthz", e.health);
    const char *hargv[] = {"pgentry", "healthcheck", hurl, NULL};
    cr_assert_eq(pgt_run(&h, hargv, NULL, 5000), 1, "%s", h.out);
    cr_assert(strstr(h.out, "unhealthy"), "%s", h.out);
    pgt_proc_free(&h);
    kill(p.pid, SIGTERM);
    cr_assert_eq(pgt_proc_wait(&p, 5000), 143);
    pgt_proc_free(&p);

    snprintf(hurl, sizeof hurl, "http://127.0.0.1:%d/healthz", pgt_free_port());
    const char *hargv2[] = {"pgentry", "healthcheck", hurl, NULL};
    cr_assert_eq(pgt_run(&h, hargv2, NULL, 5000), 1);
    cr_assert(h.elapsed_ms < 3000);
    pgt_proc_free(&h);
}

/* /proc/PID/cmdline with the NULs between arguments turned into spaces. */
static void read_cmdline(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        n = 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
}

Test(run, password_never_in_the_process_title, .timeout = 30)
{
    struct pgt_proc p;
    char url[256], wait_http[128], cmdline[4096] = "";
    snprintf(url, sizeof url, "postgres://u:TopSecretPW@127.0.0.1:%d/x", pgt_free_port());
    snprintf(wait_http, sizeof wait_http, "--wait-http=http://a:HttpSecretPW@127.0.0.1:%d/",
             pgt_free_port());
    const char *argv[] = {"pgentry", "--database-url", url,   wait_http, "--wait-timeout",
                          "20s",     "--health-addr",  "off", "wait",    NULL};
    pgt_proc_spawn(&p, argv, NULL);
    /* Until pgentry has run (the forked test process shows its own arguments before exec). */
    int64_t deadline = pgt_now_ms() + 5000;
    while (pgt_now_ms() < deadline && !strstr(cmdline, "--database-url postgres://u:***@")) {
        usleep(10000);
        read_cmdline(p.pid, cmdline, sizeof cmdline);
    }
    cr_assert(strstr(cmdline, "postgres://u:***@127.0.0.1:"), "never redacted: %s", cmdline);
    cr_assert(strstr(cmdline, "http://a:***@127.0.0.1:"), "%s", cmdline);
    cr_assert_null(strstr(cmdline, "TopSecretPW"), "password in the process title: %s", cmdline);
    cr_assert_null(strstr(cmdline, "HttpSecretPW"), "password in the process title: %s", cmdline);
    cr_assert(strstr(cmdline, " wait"), "the arguments after it were moved: %s", cmdline);
    kill(p.pid, SIGTERM);
    cr_assert_eq(pgt_proc_wait(&p, 5000), 143, "%s", p.err);
    cr_assert_null(strstr(p.err, "TopSecretPW"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(run, migration_options_without_a_database_are_a_configuration_error, .timeout = 30)
{
    /* Never a silent skip: the app must not start as if the migrations had been dealt with. */
    static const struct {
        const char *flag, *value, *env;
    } cases[] = {
        {"--migrate-cmd", "true", NULL},
        {"--wait-migrations", NULL, NULL},
        {NULL, NULL, "PGENTRY_MIGRATE_CMD=true"},
        {NULL, NULL, "PGENTRY_WAIT_MIGRATIONS=1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pgt_proc p;
        char dir[256], marker[300], cmd[400];
        pgt_tempdir(dir, sizeof dir);
        snprintf(marker, sizeof marker, "%s/app-started", dir);
        snprintf(cmd, sizeof cmd, "touch %s", marker);
        const char *argv[10];
        int n = 0;
        argv[n++] = "pgentry";
        argv[n++] = "--health-addr";
        argv[n++] = "off";
        if (cases[i].flag)
            argv[n++] = cases[i].flag;
        if (cases[i].value)
            argv[n++] = cases[i].value;
        argv[n++] = "--";
        argv[n++] = "sh";
        argv[n++] = "-c";
        argv[n++] = cmd;
        argv[n] = NULL;
        const char *env[] = {cases[i].env, NULL};
        int rc = pgt_run(&p, argv, env, 10000);
        cr_assert_eq(rc, 78, "case %zu: exit %d:\n%s", i, rc, p.err);
        cr_assert(strstr(p.err, "needs a database: set DATABASE_URL"), "case %zu:\n%s", i, p.err);
        cr_assert_neq(access(marker, F_OK), 0, "case %zu: the app started", i);
        pgt_proc_free(&p);
    }
}

Test(run, mistakes_fail_at_once_before_waiting, .timeout = 60)
{
    /* The database is down (a closed port) and would be waited for 30 s: a usage or
     * configuration mistake must not wait for it, nor be reported as "not ready" (69). */
    static char long_table[80];
    memset(long_table, 'h', 64);
    static const struct {
        const char *args[8];
        int code;
        const char *needle;
    } cases[] = {
        {{"upgrade", "base"}, 64, "upgrade: bad target \"base\""},
        {{"downgrade", "head"}, 64, "downgrade: bad target \"head\""},
        {{"stamp", "+1"}, 64, "stamp: bad target \"+1\""},
        {{"--table", ".hist", "upgrade"}, 78, "--table must be NAME or SCHEMA.NAME"},
        {{"--table", long_table, "current"}, 78, "--table must be NAME or SCHEMA.NAME"},
        {{"--table", "a.b.c", "--", "true"}, 78, "--table must be NAME or SCHEMA.NAME"},
        {{"--user", "pgt-no-such-user", "--", "true"}, 78, "unknown user"},
        {{"--no-migrate", "--migrate-cmd", "touch /tmp/pgt-never", "--", "true"},
         78,
         "--no-migrate and --migrate-cmd contradict each other"},
    };
    struct run_env e;
    char url[256];
    snprintf(url, sizeof url, "postgres://u:pw@127.0.0.1:%d/db", pgt_free_port());
    run_env_init(&e, url);
    add_migration(&e, "0001_a.up.sql", "CREATE TABLE t (id int);\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[16] = {"pgentry", "--wait-timeout", "30s"};
        int n = 3;
        for (int k = 0; cases[i].args[k]; k++)
            argv[n++] = cases[i].args[k];
        argv[n] = NULL;
        struct pgt_proc p;
        int rc = pgt_run(&p, argv, e.env, 10000);
        cr_assert_eq(rc, cases[i].code, "case %zu (%s): exit %d:\n%s", i, cases[i].needle, rc,
                     p.err);
        cr_assert(strstr(p.err, cases[i].needle), "case %zu: no \"%s\" in:\n%s", i, cases[i].needle,
                  p.err);
        cr_assert_lt(p.elapsed_ms, 1000, "case %zu took %lld ms", i, (long long)p.elapsed_ms);
        cr_assert_null(strstr(p.err, "waiting for dependency"), "case %zu waited:\n%s", i, p.err);
        pgt_proc_free(&p);
    }
}

Test(run, unknown_user_applies_no_migration, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct run_env e;
    struct pgt_proc p;
    char url[256], db[64], marker[300], cmd[400];
    pgt_pg_createdb(pg, db, sizeof db);
    run_env_init(&e, pgt_pg_url(pg, db, url, sizeof url));
    add_migration(&e, "0001_a.up.sql", "CREATE TABLE t (id int);\n");
    snprintf(marker, sizeof marker, "%s/app-started", e.dir);
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    const char *argv[] = {"pgentry", "--user", "pgt-no-such-user", "--", "sh", "-c", cmd, NULL};
    int rc = pgt_run(&p, argv, e.env, 10000);
    cr_assert_eq(rc, 78, "exit %d:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "unknown user"), "%s", p.err);
    cr_assert_null(strstr(p.err, "applied"), "%s", p.err);
    char *t = pgt_pg_query(pg, db, "SELECT coalesce(to_regclass('t')::text, 'none')");
    cr_assert_str_eq(t, "none", "the migration ran before the --user check");
    free(t);
    t = pgt_pg_query(pg, db, "SELECT coalesce(to_regclass('pgentry_migrations')::text, 'none')");
    cr_assert_str_eq(t, "none", "the history table was created before the --user check");
    free(t);
    cr_assert_neq(access(marker, F_OK), 0, "the app ran");
    pgt_proc_free(&p);
}

Test(run, healthcheck_answers_only_zero_or_one, .timeout = 30)
{
    /* Docker reads 0 as healthy, 1 as unhealthy and reserves 2: a configuration problem is
     * an unhealthy answer with its reason, never 64 or 78. */
    int port = pgt_free_port();
    char url[128], e_addr[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    snprintf(e_addr, sizeof e_addr, "PGENTRY_HEALTH_ADDR=127.0.0.1:%d", port);
    pid_t srv = pgt_http_server(port, 200);
    static const struct {
        const char *arg; /* after "healthcheck"; NULL: none */
        const char *env;
        int code;
        const char *says;
    } cases[] = {
        /* Variables set for the app do not concern the probe. */
        {NULL, "PGENTRY_WAIT_TIMEOUT=bogus", 0, "healthy"},
        {NULL, "PGENTRY_WAIT_TCP=bad", 0, "healthy"},
        {NULL, "PGENTRY_REWRITE=NOPE", 0, "healthy"},
        /* What the probe uses, or a mistyped command line: unhealthy, and why. */
        {NULL, "PGENTRY_HEALTH_ADDR=8081", 1, "unhealthy: PGENTRY_HEALTH_ADDR: \"8081\""},
        {"--wait-timeout=soon", NULL, 1, "unhealthy: --wait-timeout: bad duration"},
        {"--bogus", NULL, 1, "unhealthy: unknown option --bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pgt_proc p;
        const char *argv[] = {"pgentry", "healthcheck", cases[i].arg, NULL};
        const char *env[] = {e_addr, cases[i].env, NULL};
        /* The address comes from the environment unless the case replaces it. */
        if (cases[i].env && strncmp(cases[i].env, "PGENTRY_HEALTH_ADDR=", 20) == 0) {
            env[0] = cases[i].env;
            env[1] = NULL;
        }
        int rc = pgt_run(&p, argv, env, 10000);
        cr_assert_eq(rc, cases[i].code, "case %zu: exit %d\n%s%s", i, rc, p.out, p.err);
        cr_assert(strncmp(p.out, cases[i].says, strlen(cases[i].says)) == 0, "case %zu: %s", i,
                  p.out);
        cr_assert_eq(strchr(p.out, '\n'), p.out + strlen(p.out) - 1, "case %zu: not one line: %s",
                     i, p.out);
        pgt_proc_free(&p);
    }
    pgt_kill(srv);
}
