/* A lost database connection regained by the real binary: the session ended while waiting for
 * the lock, the server stopped and restarted mid-migration, stopped for good (a stop signal
 * while waiting for it again, and 69 once --wait-timeout has passed). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/migrate/histsql.h"
#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_http.h"

PGT_SHARED_PG_HOOKS()

/* One test's server (shared, or its own to stop), database, migrations and pgentry. */
struct scene {
    struct pgt_pg *pg;
    struct pgt_pg own;
    char db[64];
    char dir[256];
    int port; /* health */
    char env[5][400];
    const char *envp[6];
    struct pgt_proc p;
};

/* own: a server of the test's own (it is stopped); else a new database on the shared one. */
static void scene_init(struct scene *s, int own, const char *wait_timeout)
{
    char url[256];
    memset(s, 0, sizeof *s);
    if (own) {
        pgt_pg_init(&s->own);
        pgt_pg_start(&s->own);
        s->pg = &s->own;
        snprintf(s->db, sizeof s->db, "postgres");
    } else {
        s->pg = pgt_pg_shared();
        pgt_pg_createdb(s->pg, s->db, sizeof s->db);
    }
    pgt_pg_url(s->pg, s->db, url, sizeof url);
    pgt_tempdir(s->dir, sizeof s->dir);
    s->port = pgt_free_port();
    snprintf(s->env[0], sizeof s->env[0], "DATABASE_URL=%s", url);
    snprintf(s->env[1], sizeof s->env[1], "PGENTRY_MIGRATIONS=%s", s->dir);
    snprintf(s->env[2], sizeof s->env[2], "PGENTRY_HEALTH_ADDR=127.0.0.1:%d", s->port);
    snprintf(s->env[3], sizeof s->env[3], "PGENTRY_WAIT_TIMEOUT=%s", wait_timeout);
    snprintf(s->env[4], sizeof s->env[4], "PGENTRY_BACKOFF_MAX=500ms");
    for (int i = 0; i < 5; i++)
        s->envp[i] = s->env[i];
    s->envp[5] = NULL;
}

static void scene_free(struct scene *s)
{
    pgt_proc_free(&s->p);
    if (s->pg == &s->own)
        pgt_pg_destroy(&s->own);
}

static void add_file(struct scene *s, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    pgt_write_file(path, content);
}

/* pgentry with no COMMAND: wait, migrate, exit (the health endpoint answers meanwhile). */
static void spawn(struct scene *s)
{
    const char *argv[] = {"pgentry", NULL};
    pgt_proc_spawn(&s->p, argv, s->envp);
}

static void assert_q(struct scene *s, const char *sql, const char *expected)
{
    char *got = pgt_pg_query(s->pg, s->db, sql);
    cr_assert_str_eq(got, expected, "%s\n  got: %s\n  want: %s", sql, got, expected);
    free(got);
}

/* Poll until pgentry's session runs a statement matching pattern (LIKE). */
static void wait_running(struct scene *s, const char *pattern)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
             "pg_backend_pid() AND state = 'active' AND query LIKE '%s'",
             pattern);
    int64_t deadline = pgt_now_ms() + 30000;
    for (;;) {
        char *n = pgt_pg_query(s->pg, s->db, sql);
        int seen = strcmp(n, "0") != 0;
        free(n);
        if (seen)
            return;
        cr_assert_lt(pgt_now_ms(), deadline, "the statement never ran:\n%s",
                     pgt_read_file(s->p.err_path));
        usleep(20000);
    }
}

/* Poll /status until it contains needle. */
static int status_shows(struct scene *s, const char *needle, int timeout_ms)
{
    int64_t end = pgt_now_ms() + timeout_ms;
    while (pgt_now_ms() < end) {
        struct pgt_http_resp r;
        if (pgt_http_get("127.0.0.1", s->port, "GET", "/status", &r) == 200 &&
            strstr(r.body, needle))
            return 0;
        usleep(20000);
    }
    return -1;
}

/* A migration that sleeps until the test has seen it: the setting is read by a new session. */
#define SLOW_UNTIL_SEEN                                                                            \
    "SELECT pg_sleep(CASE WHEN current_setting('pgt.slow', true) = 'off' THEN 0 ELSE 30 END);\n"

static void seen_slow(struct scene *s)
{
    char sql[200];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET pgt.slow = 'off'", s->db);
    free(pgt_pg_query(s->pg, s->db, sql));
}

/* Stop the test's own server the hard way (a crash, for PostgreSQL). The test servers run with
 * synchronous_commit off: a checkpoint first keeps what was committed before. */
static void crash_server(struct scene *s)
{
    free(pgt_pg_query(s->pg, s->db, "CHECKPOINT"));
    pgt_pg_stop(&s->own);
}

Test(reconnect, session_ended_while_waiting_for_the_lock_is_regained, .timeout = 90)
{
    struct scene s;
    char url[256], sql[400];
    scene_init(&s, 0, "20s");
    add_file(&s, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    /* Another session holds the migration lock, so pgentry waits for it. */
    PGconn *holder = PQconnectdb(pgt_pg_url(s.pg, s.db, url, sizeof url));
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%" PRId64 ")",
             pge_histsql_lock_key(s.db, "public", "pgentry_migrations"));
    PGresult *res = PQexec(holder, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);

    spawn(&s);
    cr_assert_eq(pgt_wait_for_text(s.p.err_path, "waiting for the migration lock", 30000), 0, "%s",
                 pgt_read_file(s.p.err_path));
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
             "current_database() AND pid NOT IN (pg_backend_pid(), %d) AND backend_type = 'client "
             "backend'",
             PQbackendPID(holder));
    assert_q(&s, sql, "1");
    cr_assert_eq(pgt_wait_for_text(s.p.err_path, "reconnected; ", 30000), 0, "%s",
                 pgt_read_file(s.p.err_path));
    PQfinish(holder);

    int rc = pgt_proc_wait(&s.p, 30000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, s.p.err);
    cr_assert(strstr(s.p.err, "connection lost while no migration was running: reconnecting"), "%s",
              s.p.err);
    assert_q(&s, "SELECT string_agg(version::text, ',') FROM pgentry_migrations", "1");
    scene_free(&s);
}

Test(reconnect, server_restarted_mid_migration_is_regained, .timeout = 120)
{
    struct scene s;
    scene_init(&s, 1, "30s");
    add_file(&s, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    add_file(&s, "0002_slow.up.sql",
             "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\n" SLOW_UNTIL_SEEN);
    add_file(&s, "0003_c.up.sql", "CREATE TABLE c (id int);\n");
    spawn(&s);
    wait_running(&s, "SELECT pg_sleep(CASE%");
    seen_slow(&s);
    crash_server(&s);
    /* While the server is down, pgentry is waiting for it again, and says so. */
    cr_assert_eq(status_shows(&s, "{\"phase\":\"waiting\"", 30000), 0, "%s",
                 pgt_read_file(s.p.err_path));
    cr_assert_eq(pgt_wait_for_text(s.p.err_path,
                                   "connection lost during migration 0002_slow: the "
                                   "server rolled it back; reconnecting",
                                   5000),
                 0, "%s", pgt_read_file(s.p.err_path));
    pgt_pg_start(&s.own);

    int rc = pgt_proc_wait(&s.p, 60000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, s.p.err);
    cr_assert(strstr(s.p.err, "reconnected; "), "%s", s.p.err);
    assert_q(&s, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
             "1,2,3");
    assert_q(&s, "SELECT count(*) FROM b", "1");
    assert_q(&s, "SELECT to_regclass('c') IS NOT NULL", "t");
    scene_free(&s);
}

/* Down for good: a stop signal while waiting for it again exits at once, 128+N; without one,
 * the run gives up with 69 once --wait-timeout has passed since the loss. */
Test(reconnect, server_down_while_waiting_again, .timeout = 120)
{
    struct scene s;
    scene_init(&s, 1, "60s");
    add_file(&s, "0001_slow.up.sql", "CREATE TABLE b (id int);\nSELECT pg_sleep(30);\n");
    spawn(&s);
    wait_running(&s, "SELECT pg_sleep(30)%");
    crash_server(&s);
    cr_assert_eq(pgt_wait_for_text(s.p.err_path, "waiting for the database again", 30000), 0, "%s",
                 pgt_read_file(s.p.err_path));
    int64_t sent = pgt_now_ms();
    cr_assert_eq(kill(s.p.pid, SIGTERM), 0);
    int rc = pgt_proc_wait(&s.p, 30000);
    int64_t took = pgt_now_ms() - sent;
    cr_assert_eq(rc, 128 + SIGTERM, "exit %d\n%s", rc, s.p.err);
    cr_assert_lt(took, 3000, "took %lld ms\n%s", (long long)took, s.p.err);
    pgt_proc_free(&s.p);

    pgt_pg_start(&s.own);
    snprintf(s.env[3], sizeof s.env[3], "PGENTRY_WAIT_TIMEOUT=2s");
    spawn(&s);
    wait_running(&s, "SELECT pg_sleep(30)%");
    crash_server(&s);
    int64_t stopped = pgt_now_ms();
    rc = pgt_proc_wait(&s.p, 30000);
    took = pgt_now_ms() - stopped;
    cr_assert_eq(rc, 69, "exit %d\n%s", rc, s.p.err);
    cr_assert(strstr(s.p.err, "not regained within --wait-timeout"), "%s", s.p.err);
    /* 2 s from the loss, plus the last attempt's connect timeout and a loaded machine. */
    cr_assert_lt(took, 2000 + 6000, "took %lld ms\n%s", (long long)took, s.p.err);
    cr_assert_geq(took, 1500, "gave up after %lld ms\n%s", (long long)took, s.p.err);
    scene_free(&s);
}
