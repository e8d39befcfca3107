/* Integration tests of the apply path: error reports, history rows, connections lost midway. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_world.h"

PGT_SHARED_PG_HOOKS()

/* A world that gives up waiting after 20 s: these tests break connections on purpose. */
static void scene_init(struct pgt_world *s, const char *url_suffix)
{
    pgt_world_init(s, url_suffix);
    pgt_world_setenv(s, "PGENTRY_WAIT_TIMEOUT=20s");
}

Test(apply, missing_schema_of_table_is_a_configuration_error, .timeout = 60)
{
    struct pgt_world s;
    struct pgt_proc p;
    scene_init(&s, NULL);
    pgt_world_file(&s, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    int rc = pgt_world_run(&s, &p, "--table", "nosuch.history", "upgrade", NULL);
    cr_assert_eq(rc, 78, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "sqlstate=3F000"), "%s", p.err);
    cr_assert(strstr(p.err, "nosuch"), "schema not named:\n%s", p.err);
    cr_assert(strstr(p.err, "--table"), "fix not said:\n%s", p.err);
    cr_assert_null(strstr(p.err, "AddressSanitizer"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&s, "SELECT to_regclass('a') IS NULL", "t");
}

Test(apply, missing_schema_of_search_path_is_a_configuration_error, .timeout = 60)
{
    struct pgt_world s;
    struct pgt_proc p;
    scene_init(&s, "?options=-csearch_path%3Dnosuch");
    pgt_world_file(&s, "0001_a.up.sql", "CREATE TABLE public.a (id int);\n");
    int rc = pgt_world_run(&s, &p, "upgrade", NULL);
    cr_assert_eq(rc, 78, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "sqlstate=3F000"), "%s", p.err);
    cr_assert(strstr(p.err, "search_path"), "fix not said:\n%s", p.err);
    cr_assert_null(strstr(p.err, "AddressSanitizer"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&s, "SELECT to_regclass('public.a') IS NULL", "t");
}

Test(apply, error_token_at_the_start_of_a_line_is_reported_on_that_line, .timeout = 60)
{
    struct pgt_world s;
    struct pgt_proc p;
    scene_init(&s, NULL);
    pgt_world_file(&s, "0001_a.up.sql",
                   "-- d\xc3\xa9j\xc3\xa0 vu\r\n"
                   "SELECT 1 FROM\r\n"
                   "no_such_table;\r\n");
    int rc = pgt_world_run(&s, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "0001_a.up.sql:3 "), "not at line 3:\n%s", p.err);
    cr_assert(strstr(p.err, "sqlstate=42P01"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(apply, history_rows_are_parameters_not_literals, .timeout = 60)
{
    struct pgt_world s;
    struct pgt_proc p;
    /* With standard_conforming_strings off, a hand-quoted 'a\b' would lose its backslash. */
    scene_init(&s, "?options=-cstandard_conforming_strings%3Doff");
    pgt_world_file(&s, "0001_it's a\\back.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&s, "0002_b\\n.up.sql", "CREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&s, &p, "upgrade", "1", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&s, &p, "stamp", "2", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&s, "SELECT string_agg(name, '|' ORDER BY version) FROM pgentry_migrations",
                       "it's a\\back|b\\n");
    pgt_world_assert_q(&s, "SELECT bool_and(applied_by LIKE 'pgentry %') FROM pgentry_migrations",
                       "t");
    pgt_world_assert_q(&s, "SELECT to_regclass('b') IS NULL", "t");
    rc = pgt_world_run(&s, &p, "verify", NULL);
    cr_assert_eq(rc, 0, "verify after stamp: exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&s, &p, "stamp", "base", NULL);
    cr_assert_eq(rc, 0, "stamp base: exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&s, "SELECT count(*) FROM pgentry_migrations", "0");
}

/* Start pgentry upgrade, wait until its session runs a statement matching pattern (a LIKE on
 * pg_stat_activity.query in the scene's database), then end that session from outside. */
static void terminate_when_running(struct pgt_world *s, struct pgt_proc *p, const char *pattern)
{
    const char *argv[] = {"pgentry", "upgrade", NULL};
    char sql[600];
    pgt_proc_spawn(p, argv, s->env);
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
             "current_database() AND pid <> pg_backend_pid() AND query LIKE '%s'",
             pattern);
    int64_t deadline = pgt_now_ms() + 30000;
    for (;;) {
        char *n = pgt_pg_query(s->pg, s->db, sql);
        int done = strcmp(n, "0") != 0;
        free(n);
        if (done)
            return;
        cr_assert_lt(pgt_now_ms(), deadline, "the statement never ran:\n%s",
                     pgt_read_file(p->err_path));
        usleep(20000);
    }
}

Test(apply, session_ended_inside_a_no_transaction_migration_says_what_stays, .timeout = 60)
{
    struct pgt_world s;
    struct pgt_proc p;
    scene_init(&s, NULL);
    pgt_world_file(&s, "0001_slow.up.sql",
                   "-- pgentry:no-transaction\n"
                   "CREATE TABLE a (id int);\n"
                   "CREATE TABLE b (id int);\n"
                   "SELECT pg_sleep(30);\n"
                   "CREATE TABLE c (id int);\n");
    terminate_when_running(&s, &p, "SELECT pg_sleep(30)%");
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "statements 1-2 of 4 completed; the 3rd was interrupted"),
              "statements not counted:\n%s", p.err);
    cr_assert(strstr(p.err, "0001_slow.up.sql:4"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&s, "SELECT count(*) FROM pgentry_migrations", "0");
    pgt_world_assert_q(&s, "SELECT to_regclass('b') IS NOT NULL AND to_regclass('c') IS NULL", "t");
}

Test(apply, session_ended_inside_a_transactional_migration_leaves_nothing, .timeout = 60)
{
    struct pgt_world s;
    struct pgt_proc p;
    scene_init(&s, NULL);
    pgt_world_file(&s, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&s, "0002_slow.up.sql", "CREATE TABLE b (id int);\nSELECT pg_sleep(30);\n");
    terminate_when_running(&s, &p, "SELECT pg_sleep(30)%");
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "lost the database connection"), "%s", p.err);
    cr_assert(strstr(p.err, "rolled the migration back") && strstr(p.err, "migration=0002"), "%s",
              p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&s, "SELECT string_agg(version::text, ',') FROM pgentry_migrations", "1");
    pgt_world_assert_q(&s, "SELECT to_regclass('a') IS NOT NULL AND to_regclass('b') IS NULL", "t");
}
