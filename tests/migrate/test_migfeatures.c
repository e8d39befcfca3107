/* Integration tests of the migration-file features: directives, ${NAME} placeholders,
 * out-of-order files and repeatable migrations; the real binary against a real PostgreSQL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_world.h"

PGT_SHARED_PG_HOOKS()

/* ---- Directives ------------------------------------------------------------------------ */

Test(migfeatures, unknown_directive_is_refused_before_anything_runs, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0002_b.up.sql",
                   "-- add b\n-- pgentry:no-transactoin\nCREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "0002_b.up.sql:2"), "no file:line in\n%s", p.err);
    cr_assert(strstr(p.err, "no-transactoin"), "%s", p.err);
    cr_assert(strstr(p.err, "no-transaction, envsubst"), "known list missing:\n%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &w, "SELECT to_regclass('a') IS NULL AND to_regclass('pgentry_migrations') IS NULL", "t");
}

/* ---- Out of order ---------------------------------------------------------------------- */

Test(migfeatures, out_of_order_needs_the_flag_and_is_warned, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0003_c.up.sql", "CREATE TABLE c (id int);\n");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_file(&w, "0002_b.up.sql", "CREATE TABLE b (id int);\n");

    /* Without the flag: refused, the way out named, nothing applied. */
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "0002_b.up.sql") && strstr(p.err, "--allow-out-of-order"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('b') IS NULL", "t");

    /* status still calls it out of order. */
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "0002") && strstr(p.out, "out_of_order"), "%s", p.out);
    pgt_proc_free(&p);

    /* With it (here from the environment): applied, with a warning naming it. */
    pgt_world_setenv(&w, "PGENTRY_ALLOW_OUT_OF_ORDER=1");
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "out of order") && strstr(p.err, "migration=0002"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &w, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
        "1,2,3");
    pgt_world_assert_q(&w, "SELECT to_regclass('b') IS NOT NULL", "t");
}

/* ---- Placeholders ---------------------------------------------------------------------- */

#define SECRET_VALUE "s3cr3t-Pa55w0rd-xyzzy"

Test(migfeatures, placeholders_are_replaced_in_quotes_and_dollar_bodies, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_setenv(&w, "APP_ROLE=meetings_app");
    pgt_world_setenv(&w, "GREETING=it's ok");
    pgt_world_file(&w, "0001_role.up.sql",
                   "-- the application's role\n"
                   "-- pgentry:envsubst\n"
                   "CREATE ROLE ${APP_ROLE};\n"
                   "CREATE TABLE notes (body text);\n"
                   "INSERT INTO notes VALUES ($q$${GREETING}$q$), ('${APP_ROLE}');\n"
                   "DO $$ BEGIN EXECUTE 'GRANT SELECT ON notes TO ${APP_ROLE}'; END $$;\n");
    pgt_world_file(&w, "0001_role.down.sql",
                   "-- pgentry:envsubst\nDROP TABLE notes;\nDROP ROLE ${APP_ROLE};\n");
    /* Without the directive, ${...} is plain text. */
    pgt_world_file(&w, "0002_plain.up.sql", "INSERT INTO notes VALUES ('${APP_ROLE}');\n");
    pgt_world_file(&w, "0002_plain.down.sql", "DELETE FROM notes;\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT string_agg(body, '|' ORDER BY body) FROM notes",
                       "${APP_ROLE}|it's ok|meetings_app");
    pgt_world_assert_q(&w, "SELECT has_table_privilege('meetings_app', 'notes', 'SELECT')", "t");
    /* The checksum is of the file as written: verify passes, whatever the value. */
    rc = pgt_world_run(&w, &p, "verify", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "downgrade", "base", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pg_roles WHERE rolname = 'meetings_app'", "0");
}

Test(migfeatures, unset_placeholder_applies_nothing_and_logs_no_value, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_setenv(&w, "APP_PASSWORD=" SECRET_VALUE);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0002_role.up.sql",
                   "-- pgentry:envsubst\nCREATE ROLE r2 LOGIN PASSWORD '${APP_PASSWORD}';\n");
    pgt_world_file(
        &w, "0003_grant.up.sql",
        "-- pgentry:no-transaction\n-- pgentry:envsubst\n\nGRANT SELECT ON a TO ${APP_ROLE};\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "APP_ROLE"), "variable not named:\n%s", p.err);
    cr_assert(strstr(p.err, "0003_grant.up.sql:4"), "no file:line in\n%s", p.err);
    cr_assert_null(strstr(p.err, SECRET_VALUE), "a value was logged:\n%s", p.err);
    pgt_proc_free(&p);
    /* Checked before the first file ran: not even 0001 is applied. */
    pgt_world_assert_q(&w, "SELECT to_regclass('a') IS NULL", "t");
    pgt_world_assert_q(&w, "SELECT count(*) FROM pg_roles WHERE rolname = 'r2'", "0");

    /* --sql checks too, and prints the text as written. */
    rc = pgt_world_run(&w, &p, "upgrade", "--sql", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_setenv(&w, "APP_ROLE=r2");
    rc = pgt_world_run(&w, &p, "upgrade", "--sql", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "'${APP_PASSWORD}'"), "%s", p.out);
    cr_assert_null(strstr(p.out, SECRET_VALUE), "a value was printed:\n%s", p.out);
    pgt_proc_free(&p);
}

Test(migfeatures, failing_envsubst_statement_masks_values, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_setenv(&w, "APP_PASSWORD=" SECRET_VALUE);
    /* PostgreSQL quotes the bad value back: the report must not. */
    pgt_world_file(
        &w, "0001_bad.up.sql",
        "-- pgentry:envsubst\nCREATE TABLE t (id int);\nSELECT '${APP_PASSWORD}'::int;\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "0001_bad.up.sql:3"), "no file:line in\n%s", p.err);
    cr_assert(strstr(p.err, "invalid input syntax"), "%s", p.err);
    cr_assert(strstr(p.err, "***"), "value not masked:\n%s", p.err);
    cr_assert_null(strstr(p.err, SECRET_VALUE), "a value was logged:\n%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('t') IS NULL", "t");
}

/* ---- Repeatable migrations ------------------------------------------------------------- */

#define TASKS_TABLE "CREATE TABLE tasks (id int, status text);\n"
#define COUNTS_VIEW                                                                                \
    "CREATE OR REPLACE VIEW task_counts AS SELECT status, count(*) AS n FROM tasks GROUP BY "      \
    "status;\n"

Test(migfeatures, repeatable_runs_when_new_or_changed_only, .timeout = 90)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_tasks.up.sql", TASKS_TABLE);
    pgt_world_file(&w, "R__task_counts.sql", COUNTS_VIEW);
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "repeatable migration applied"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('task_counts') IS NOT NULL", "t");
    pgt_world_assert_q(
        &w, "SELECT count(*) FROM pgentry_migrations_repeatable WHERE name = 'task_counts'", "1");
    /* The history table keeps the contract's shape: no repeatable in it. */
    pgt_world_assert_q(&w, "SELECT string_agg(version::text, ',') FROM pgentry_migrations", "1");

    /* Unchanged: not run again (and nothing pending, so no lock either). */
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert_null(strstr(p.err, "repeatable migration applied"), "%s", p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "task_counts") && strstr(p.out, "applied"), "%s", p.out);
    pgt_proc_free(&p);

    /* Changed: re-applied exactly once. */
    pgt_world_file(
        &w, "R__task_counts.sql",
        "CREATE OR REPLACE VIEW task_counts AS SELECT status, count(*) AS n, 1 AS v2 FROM tasks "
        "GROUP BY status;\n");
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert(strstr(p.out, "pending"), "%s", p.out);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "upgrade", "--sql", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "v2") && strstr(p.out, "pgentry_migrations_repeatable"), "%s", p.out);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "repeatable migration applied"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w,
                       "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                       "'task_counts' AND column_name = 'v2'",
                       "1");
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_null(strstr(p.err, "repeatable migration applied"), "%s", p.err);
    pgt_proc_free(&p);
    /* --wait-migrations is satisfied by the current checksums. */
    pgt_world_setenv(&w, "PGENTRY_WAIT_MIGRATIONS=1");
    pgt_world_setenv(&w, "PGENTRY_WAIT_TIMEOUT=20s");
    rc = pgt_world_run(&w, &p, NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
}

Test(migfeatures, failing_repeatable_is_rolled_back_and_versions_stay, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_tasks.up.sql", TASKS_TABLE);
    pgt_world_file(&w, "R__a_counts.sql", COUNTS_VIEW);
    pgt_world_file(&w, "R__b_broken.sql",
                   "CREATE VIEW half AS SELECT 1 AS x;\n"
                   "CREATE VIEW broken AS SELECT nope FROM tasks;\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "R__b_broken.sql:2"), "no file:line in\n%s", p.err);
    cr_assert(strstr(p.err, "rolled back"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT string_agg(version::text, ',') FROM pgentry_migrations", "1");
    pgt_world_assert_q(
        &w, "SELECT to_regclass('task_counts') IS NOT NULL AND to_regclass('half') IS NULL", "t");
    pgt_world_assert_q(
        &w, "SELECT string_agg(name, ',' ORDER BY name) FROM pgentry_migrations_repeatable",
        "a_counts");
}

Test(migfeatures, repeatable_record_is_parameters_not_literals, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    /* With standard_conforming_strings off, a hand-quoted 'a\b' would lose its backslash. */
    pgt_world_init(&w, "?options=-cstandard_conforming_strings%3Doff");
    pgt_world_file(&w, "R__it's a\\view.sql", "CREATE OR REPLACE VIEW v AS SELECT 1 AS x;\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT name FROM pgentry_migrations_repeatable", "it's a\\view");
    /* Changed: the same row is updated, through the same parameters. */
    pgt_world_file(&w, "R__it's a\\view.sql",
                   "CREATE OR REPLACE VIEW v AS SELECT 1 AS x, 2 AS y;\n");
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "repeatable migration applied"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) || ' ' || min(name) FROM pgentry_migrations_repeatable",
                       "1 it's a\\view");
}

Test(migfeatures, empty_repeatable_is_refused, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_tasks.up.sql", TASKS_TABLE);
    pgt_world_file(&w, "R__todo.sql", "-- fill in later\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "R__todo.sql") && strstr(p.err, "no statement"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('tasks') IS NULL", "t");
}
