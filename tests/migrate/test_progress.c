/* Index-build progress of the running migration: which statements are watched (pure), and a
 * real CREATE INDEX seen in /status and /metrics through pgentry's second connection. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/migrate/progress.h"
#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_http.h"

PGT_SHARED_PG_HOOKS()

Test(progress, statements_that_may_build_an_index, .timeout = 10)
{
    static const struct {
        const char *stmt;
        int yes;
    } cases[] = {
        {"CREATE INDEX i ON t (a);", 1},
        {"create index concurrently if not exists i on t (a)", 1},
        {"CREATE UNIQUE INDEX i ON t (a)", 1},
        {"REINDEX TABLE t", 1},
        {"reindex index concurrently i", 1},
        {"ALTER TABLE t ADD PRIMARY KEY (id)", 1},
        {"ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)", 1},
        {"ALTER TABLE r ADD EXCLUDE USING gist (during WITH &&)", 1},
        {"CREATE TABLE t (id int primary key)", 1},
        {"DROP INDEX i", 1}, /* an over-approximation: a read that finds nothing */
        {"INDEX", 1},
        {"SELECT pg_sleep(6)", 0},
        {"UPDATE t SET indexed = true", 0},
        {"CREATE TABLE indexes (id int)", 0},
        {"SELECT * FROM pg_indexes", 0},
        {"ALTER TABLE t ADD COLUMN primary_key_x int", 0},
        {"CREATE TABLE t (a int)", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i].stmt;
        size_t len = strlen(s);
        cr_assert_eq(pge_progress_may_build_index(s, len), cases[i].yes, "\"%s\"", s);
        /* Bounded by len: every prefix, copied without a terminator, is answered. */
        for (size_t n = 0; n < len; n++) {
            char *copy = malloc(n ? n : 1);
            memcpy(copy, s, n);
            (void)pge_progress_may_build_index(copy, n);
            free(copy);
        }
    }
    cr_assert_eq(pge_progress_may_build_index("CREATE INDEXES", 12), 1, "INDEX ends at len");
}

/* GET path into out; the status code (-1 when it failed). */
static int get(int port, const char *path, char *out, size_t size)
{
    struct pgt_http_resp r;
    int code = pgt_http_get("127.0.0.1", port, "GET", path, &r);
    if (code > 0)
        snprintf(out, size, "%s", r.body);
    return code;
}

/* Poll path until its body contains (want 1) or lacks (want 0) needle; 0, or -1 at timeout. */
static int poll_body(int port, const char *path, const char *needle, int want, char *out,
                     size_t size, int timeout_ms)
{
    int64_t end = pgt_now_ms() + timeout_ms;
    while (pgt_now_ms() < end) {
        if (get(port, path, out, size) == 200 && (strstr(out, needle) != NULL) == want)
            return 0;
        usleep(50000);
    }
    return -1;
}

/* Sessions of db reading pg_stat_progress_create_index other than the asker's. */
static int progress_readers(struct pgt_pg *pg, const char *db)
{
    char *n = pgt_pg_query(pg, db,
                           "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid() AND query LIKE "
                           "'%pg_stat_progress_create_index%'");
    int v = atoi(n);
    free(n);
    return v;
}

/* 0001 makes a table of 3 rows and an IMMUTABLE function that waits for advisory lock 4242
 * (shared); 0002 builds an index on it: held on its first row while the test holds the lock. */
static void write_gated_index(const char *dir)
{
    char path[400];
    snprintf(path, sizeof path, "%s/0001_items.up.sql", dir);
    pgt_write_file(path,
                   "CREATE TABLE items (id int);\n"
                   "INSERT INTO items SELECT generate_series(1, 3);\n"
                   "CREATE FUNCTION gated(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$\n"
                   "BEGIN\n"
                   "    PERFORM pg_advisory_lock_shared(4242);\n"
                   "    PERFORM pg_advisory_unlock_shared(4242);\n"
                   "    RETURN i;\n"
                   "END $$;\n");
    snprintf(path, sizeof path, "%s/0002_index.up.sql", dir);
    pgt_write_file(path, "-- the build waits on the test's lock\n"
                         "CREATE INDEX items_gated ON items (gated(id));\n");
}

/* An index build held on its first row by an advisory lock the test owns: it shows in /status
 * and /metrics while held, the migration completes once released, and the fields and the
 * second connection go away. */
Test(progress, index_build_is_seen_in_status_and_metrics, .timeout = 120)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char db[64], url[256], dir[256], err[256], gate[300];
    static char body[65536];
    pgt_pg_createdb(pg, db, sizeof db);
    pgt_pg_url(pg, db, url, sizeof url);
    pgt_tempdir(dir, sizeof dir);
    write_gated_index(dir);
    snprintf(gate, sizeof gate, "%s/app-may-exit", dir);

    PGconn *holder = PQconnectdb(url);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    PQclear(PQexec(holder, "SELECT pg_advisory_lock(4242)"));

    int port = pgt_free_port();
    char env[4][600];
    snprintf(env[0], sizeof env[0], "DATABASE_URL=%s", url);
    snprintf(env[1], sizeof env[1], "PGENTRY_MIGRATIONS=%s", dir);
    snprintf(env[2], sizeof env[2], "PGENTRY_HEALTH_ADDR=127.0.0.1:%d", port);
    snprintf(env[3], sizeof env[3], "PGENTRY_LOG_LEVEL=debug");
    const char *envp[] = {env[0], env[1], env[2], env[3], NULL};
    char script[400];
    snprintf(script, sizeof script, "while [ ! -e '%s' ]; do sleep 0.05; done", gate);
    const char *argv[] = {"pgentry", "--", "/bin/sh", "-c", script, NULL};
    struct pgt_proc p;
    pgt_proc_spawn(&p, argv, envp);

    cr_assert_eq(
        poll_body(port, "/status",
                  "\"line\":2,\"index_build\":{\"phase\":\"building index: scanning table\"", 1,
                  body, sizeof body, 60000),
        0, "no index build in /status: %s\n%s", body, pgt_read_file(p.err_path));
    cr_assert_eq(pgt_json_check(body, strlen(body), err, sizeof err), 0, "%s: %s", err, body);
    cr_assert(strstr(body, "\"running\":{\"version\":\"0002\",\"name\":\"index\""), "%s", body);
    cr_assert(strstr(body, "\"blocks_total\":") && strstr(body, "\"tuples_done\":0,"), "%s", body);
    cr_assert_eq(get(port, "/metrics", body, sizeof body), 200);
    static const char *const gauges[] = {
        "pgentry_index_build_blocks_done", "pgentry_index_build_blocks_planned",
        "pgentry_index_build_tuples_done", "pgentry_index_build_tuples_planned"};
    for (size_t i = 0; i < 4; i++) {
        char help[128], type[128], value[128];
        snprintf(help, sizeof help, "\n# HELP %s ", gauges[i]);
        snprintf(type, sizeof type, "\n# TYPE %s gauge\n", gauges[i]);
        snprintf(value, sizeof value, "\n%s ", gauges[i]);
        cr_assert(strstr(body, help) && strstr(body, type) && strstr(body, value), "%s: %s",
                  gauges[i], body);
    }
    cr_assert_eq(pgt_prom_check(body, err, sizeof err), 0, "%s\n%s", err, body);
    static char promtool[16384];
    int prc = pgt_pipe_cmd("promtool check metrics", body, promtool, sizeof promtool);
    if (prc != 127)
        cr_assert_eq(prc, 0, "promtool: %s\n%s", promtool, body);
    cr_assert_eq(progress_readers(pg, db), 1, "the second connection reads the progress");

    /* Released: the build and the migration complete, the fields and the connection go. */
    PQclear(PQexec(holder, "SELECT pg_advisory_unlock(4242)"));
    cr_assert_eq(poll_body(port, "/status", "\"phase\":\"running\"", 1, body, sizeof body, 60000),
                 0, "the app never started: %s\n%s", body, pgt_read_file(p.err_path));
    cr_assert(strstr(body, "\"running\":null") && !strstr(body, "index_build"), "%s", body);
    cr_assert_eq(get(port, "/metrics", body, sizeof body), 200);
    cr_assert_null(strstr(body, "pgentry_index_build"), "%s", body);
    int64_t end = pgt_now_ms() + 20000;
    while (progress_readers(pg, db) != 0 && pgt_now_ms() < end)
        usleep(50000);
    cr_assert_eq(progress_readers(pg, db), 0, "the second connection was not closed");
    char *valid = pgt_pg_query(pg, db,
                               "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                               "'items_gated'::regclass");
    cr_assert_str_eq(valid, "t");
    free(valid);

    pgt_write_file(gate, "");
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert_null(strstr(p.err, "progress unavailable"), "%s", p.err);
    pgt_proc_free(&p);
    PQfinish(holder);
}

/* A second connection the server refuses (the role's CONNECTION LIMIT 1 is taken by the
 * migration) is logged at debug and changes nothing: the migration completes, exit 0. */
Test(progress, refused_second_connection_is_ignored, .timeout = 120)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char db[64], url[256], dir[256], role[80], sql[800];
    pgt_pg_createdb(pg, db, sizeof db);
    snprintf(role, sizeof role, "r_%s", db);
    snprintf(sql, sizeof sql,
             "CREATE ROLE \"%s\" LOGIN PASSWORD 'pw-progress' CONNECTION LIMIT 1; "
             "ALTER DATABASE \"%s\" OWNER TO \"%s\"; ALTER SCHEMA public OWNER TO \"%s\"",
             role, db, role, role);
    free(pgt_pg_query(pg, db, sql));
    snprintf(url, sizeof url, "postgres://%s:pw-progress@127.0.0.1:%d/%s", role, pg->port, db);
    pgt_tempdir(dir, sizeof dir);
    write_gated_index(dir);

    char admin[256];
    pgt_pg_url(pg, db, admin, sizeof admin);
    PGconn *holder = PQconnectdb(admin);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    PQclear(PQexec(holder, "SELECT pg_advisory_lock(4242)"));

    char env[4][600];
    snprintf(env[0], sizeof env[0], "DATABASE_URL=%s", url);
    snprintf(env[1], sizeof env[1], "PGENTRY_MIGRATIONS=%s", dir);
    snprintf(env[2], sizeof env[2], "PGENTRY_HEALTH_ADDR=off");
    snprintf(env[3], sizeof env[3], "PGENTRY_LOG_LEVEL=debug");
    const char *envp[] = {env[0], env[1], env[2], env[3], NULL};
    const char *argv[] = {"pgentry", "upgrade", NULL};
    struct pgt_proc p;
    pgt_proc_spawn(&p, argv, envp);
    cr_assert_eq(pgt_wait_for_text(p.err_path, "index build progress unavailable", 60000), 0, "%s",
                 pgt_read_file(p.err_path));
    PQclear(PQexec(holder, "SELECT pg_advisory_unlock(4242)"));
    int rc = pgt_proc_wait(&p, 60000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "too many connections") || strstr(p.err, "53300"), "%s", p.err);
    cr_assert_null(strstr(p.err, "pw-progress"), "the password reached a log line: %s", p.err);
    char *valid = pgt_pg_query(pg, db,
                               "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                               "'items_gated'::regclass");
    cr_assert_str_eq(valid, "t");
    free(valid);
    pgt_proc_free(&p);
    PQfinish(holder);
    snprintf(sql, sizeof sql, "ALTER ROLE \"%s\" CONNECTION LIMIT -1", role);
    free(pgt_pg_query(pg, db, sql));
}
