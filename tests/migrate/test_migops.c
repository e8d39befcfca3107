/* Integration tests of the operations options of migrations: --statement-timeout, and the
 * machine-readable reports (--format json, status --exit-code), against a real PostgreSQL. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgt.h"
#include "pgt_hooks.h"

PGT_SHARED_PG_HOOKS()

/* One test's world: its own database and migrations directory. */
struct world {
    struct pgt_pg *pg;
    char db[64];
    char url[256];
    char dir[256];
    char env_url[300];
    char env_dir[300];
    const char *env[4];
};

static void world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    w->pg = pgt_pg_shared();
    pgt_pg_createdb(w->pg, w->db, sizeof w->db);
    pgt_pg_url(w->pg, w->db, w->url, sizeof w->url);
    pgt_tempdir(w->dir, sizeof w->dir);
    snprintf(w->env_url, sizeof w->env_url, "DATABASE_URL=%s", w->url);
    snprintf(w->env_dir, sizeof w->env_dir, "PGENTRY_MIGRATIONS=%s", w->dir);
    w->env[0] = w->env_url;
    w->env[1] = w->env_dir;
    w->env[2] = "PGENTRY_HEALTH_ADDR=off";
    w->env[3] = NULL;
}

static void add_file(struct world *w, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    pgt_write_file(path, content);
}

/* Run pgentry with the world's environment; argv after "pgentry". */
static int run(struct world *w, struct pgt_proc *p, ...)
{
    const char *argv[32];
    size_t n = 0;
    va_list ap;
    argv[n++] = "pgentry";
    va_start(ap, p);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 31)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return pgt_run(p, argv, w->env, 60000);
}

static void assert_q(struct world *w, const char *sql, const char *expected)
{
    char *s = pgt_pg_query(w->pg, w->db, sql);
    cr_assert_str_eq(s, expected, "%s\n  got: %s\n  want: %s", sql, s, expected);
    free(s);
}

/* The role's own statement_timeout (1s, in this database only: the server is shared) must not
 * kill a migration that runs longer. */
static void role_timeout_1s(struct world *w)
{
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER ROLE postgres IN DATABASE \"%s\" SET statement_timeout = '1s'",
             w->db);
    free(pgt_pg_query(w->pg, w->db, sql));
}

Test(migops, default_statement_timeout_overrides_the_roles, .timeout = 60)
{
    struct world w;
    struct pgt_proc p;
    world_init(&w);
    role_timeout_1s(&w);
    add_file(&w, "0001_slow.up.sql", "CREATE TABLE a (id int);\nSELECT pg_sleep(1.5);\n");
    add_file(&w, "0002_slow_notx.up.sql",
             "-- pgentry:no-transaction\nSELECT pg_sleep(1.5);\nCREATE TABLE b (id int);\n");
    int rc = run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "upgrade under a 1s role timeout: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    assert_q(&w, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
             "1,2");
}

Test(migops, statement_timeout_cancels_a_long_migration_with_65, .timeout = 60)
{
    struct world w;
    struct pgt_proc p;
    world_init(&w);
    role_timeout_1s(&w);
    add_file(&w, "0001_slow.up.sql", "CREATE TABLE a (id int);\nSELECT pg_sleep(1.5);\n");
    int rc = run(&w, &p, "upgrade", "--statement-timeout", "500ms", NULL);
    cr_assert_eq(rc, 65, "upgrade: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "57014"), "the SQLSTATE is named:\n%s", p.err);
    cr_assert(strstr(p.err, "statement timeout"), "PostgreSQL's message is shown:\n%s", p.err);
    pgt_proc_free(&p);
    assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "0");
    assert_q(&w, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'", "0");

    /* A no-transaction migration gets the session-level setting. */
    struct world w2;
    world_init(&w2);
    add_file(&w2, "0001_slow_notx.up.sql", "-- pgentry:no-transaction\nSELECT pg_sleep(1.5);\n");
    const char *env[] = {w2.env_url, w2.env_dir, "PGENTRY_HEALTH_ADDR=off",
                         "PGENTRY_STATEMENT_TIMEOUT=300ms", NULL};
    const char *argv[] = {"pgentry", "upgrade", NULL};
    rc = pgt_run(&p, argv, env, 60000);
    cr_assert_eq(rc, 65, "no-transaction upgrade: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "57014"), "the SQLSTATE is named:\n%s", p.err);
    pgt_proc_free(&p);
}

Test(migops, sql_output_shows_the_timeouts, .timeout = 30)
{
    struct world w;
    struct pgt_proc p;
    world_init(&w);
    add_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    add_file(&w, "0002_b.up.sql", "-- pgentry:no-transaction\nCREATE TABLE b (id int);\n");
    int rc = run(&w, &p, "upgrade", "--sql", "--statement-timeout", "2m", NULL);
    cr_assert_eq(rc, 0, "upgrade --sql: %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "BEGIN;\nSET LOCAL statement_timeout = '120000ms';\n"), "%s", p.out);
    cr_assert(strstr(p.out, "SET statement_timeout = '120000ms';\n-- pgentry:no-transaction"),
              "%s", p.out);
    cr_assert(strstr(p.out, "RESET statement_timeout;\n"), "%s", p.out);
    pgt_proc_free(&p);
}
