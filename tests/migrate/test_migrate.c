/* Integration tests of migrations: the real binary against a real PostgreSQL. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_world.h"

PGT_SHARED_PG_HOOKS()

/* pgt_world_init(), with the repository's schema migration copied in when with_schema. */
static void world_init(struct pgt_world *w, int with_schema)
{
    pgt_world_init(w, NULL);
    if (with_schema) {
        char *up = pgt_read_file(PGT_SOURCE_DIR "/migrations/0001_initial_schema.up.sql");
        char *down = pgt_read_file(PGT_SOURCE_DIR "/migrations/0001_initial_schema.down.sql");
        cr_assert(strlen(up) > 100, "repository migration missing");
        pgt_world_file(w, "0001_initial_schema.up.sql", up);
        pgt_world_file(w, "0001_initial_schema.down.sql", down);
        free(up);
        free(down);
    }
}

/* Advisory locks held in this test's database (other tests run in parallel in other ones). */
#define ADVISORY_LOCKS_HERE                                                                        \
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM "   \
    "pg_database WHERE datname = current_database())"

/* A fingerprint of the whole schema, to compare two databases. */
static char *schema_fingerprint(struct pgt_world *w)
{
    return pgt_world_query(
        w, "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM ("
           "SELECT table_name || '.' || column_name || ':' || data_type || ':' || "
           "coalesce(character_maximum_length::text, '') || ':' || is_nullable || ':' || "
           "coalesce(column_default, '') AS x FROM information_schema.columns "
           "WHERE table_schema = 'public' "
           "UNION ALL SELECT indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = "
           "'public' UNION ALL SELECT conname || ':' || pg_get_constraintdef(oid) FROM "
           "pg_constraint WHERE connamespace = 'public'::regnamespace "
           "UNION ALL SELECT typname || ':' || array_to_string(enum_range(NULL::task_status)"
           "::text[], '|') FROM pg_type WHERE typname = 'task_status') s");
}

Test(migrate, initial_schema_is_exactly_as_specified, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 1);
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "upgrade: %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    pgt_world_assert_q(
        &w,
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_name IN ('meetings','prds','tasks')",
        "meetings,prds,tasks");
    pgt_world_assert_q(
        &w,
        "SELECT string_agg(column_name || ' ' || CASE WHEN data_type = 'USER-DEFINED' THEN "
        "udt_name ELSE data_type END || coalesce('(' || character_maximum_length || ')', '') "
        "|| CASE WHEN is_nullable = 'NO' THEN ' nn' ELSE '' END, ', ' ORDER BY "
        "ordinal_position) FROM information_schema.columns WHERE table_name = 'meetings'",
        "id character varying(50) nn, user_id character varying(50) nn, title character "
        "varying(255) nn, audio_url character varying(1024), transcript text, language "
        "character varying(10) nn, duration_seconds integer, status character varying(20) "
        "nn, error_message text, processed_at timestamp with time zone, created_at "
        "timestamp with time zone nn, updated_at timestamp with time zone nn");
    pgt_world_assert_q(
        &w,
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'meetings' "
        "AND column_name = 'language'",
        "'es'::character varying");
    pgt_world_assert_q(
        &w,
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'meetings' "
        "AND column_name = 'status'",
        "'pending'::character varying");
    pgt_world_assert_q(
        &w,
        "SELECT string_agg(column_name || ' ' || CASE WHEN data_type = 'USER-DEFINED' THEN "
        "udt_name ELSE data_type END || CASE WHEN is_nullable = 'NO' THEN ' nn' ELSE '' END, "
        "', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = "
        "'prds'",
        "id character varying nn, meeting_id character varying nn, title character varying "
        "nn, content jsonb nn, summary text, version integer nn, created_at timestamp with "
        "time zone nn, updated_at timestamp with time zone nn");
    pgt_world_assert_q(
        &w,
        "SELECT string_agg(column_name || ' ' || CASE WHEN data_type = 'USER-DEFINED' THEN "
        "udt_name ELSE data_type END || coalesce('(' || numeric_precision || ',' || "
        "numeric_scale || ')', '') || CASE WHEN is_nullable = 'NO' THEN ' nn' ELSE '' END, "
        "', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = "
        "'tasks' AND data_type <> 'integer'",
        "id character varying nn, prd_id character varying nn, title character varying nn, "
        "description text, status task_status nn, priority task_priority nn, assignee "
        "character varying, estimated_hours numeric(6,2), due_date date, created_at "
        "timestamp with time zone nn, updated_at timestamp with time zone nn");
    pgt_world_assert_q(
        &w,
        "SELECT column_default FROM information_schema.columns WHERE table_name='tasks' "
        "AND column_name='priority'",
        "'medium'::task_priority");
    pgt_world_assert_q(&w, "SELECT array_to_string(enum_range(NULL::task_status), ',')",
                       "todo,in_progress,done,blocked");
    pgt_world_assert_q(&w, "SELECT array_to_string(enum_range(NULL::task_priority), ',')",
                       "low,medium,high,critical");
    /* Primary keys, foreign keys (with ON DELETE CASCADE), the unique meeting_id. */
    pgt_world_assert_q(
        &w,
        "SELECT string_agg(conrelid::regclass || ' ' || contype::text || ' ' || "
        "pg_get_constraintdef(oid), '; ' ORDER BY conrelid::regclass::text, contype, conname) "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN "
        "('p','f','u') AND conrelid <> 'pgentry_migrations'::regclass",
        "meetings p PRIMARY KEY (id); prds f FOREIGN KEY (meeting_id) REFERENCES "
        "meetings(id) ON DELETE CASCADE; prds p PRIMARY KEY (id); prds u UNIQUE "
        "(meeting_id); tasks f FOREIGN KEY (prd_id) REFERENCES prds(id) ON DELETE CASCADE; "
        "tasks p PRIMARY KEY (id)");
    pgt_world_assert_q(
        &w,
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE "
        "schemaname = 'public' AND indexname LIKE 'ix_%'",
        "ix_meetings_created_at,ix_meetings_status,ix_meetings_user_id,ix_tasks_assignee,"
        "ix_tasks_due_date,ix_tasks_prd_id,ix_tasks_priority,ix_tasks_status");

    /* current prints the version as written. */
    rc = pgt_world_run(&w, &p, "current", NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(p.out, "0001\n");
    pgt_proc_free(&p);

    /* The application's flow works, and one PRD per meeting is enforced. */
    free(pgt_world_query(
        &w, "INSERT INTO meetings (id, user_id, title) VALUES ('m1', 'u1', 'Kickoff')"));
    free(pgt_world_query(
        &w, "INSERT INTO prds (id, meeting_id, title, content) VALUES ('p1', 'm1', 'PRD', "
            "'{\"goals\": []}')"));
    free(pgt_world_query(
        &w, "INSERT INTO tasks (id, prd_id, title, priority, estimated_hours) VALUES ('t1', "
            "'p1', 'Build it', 'high', 12.5)"));
    pgt_world_assert_q(&w, "SELECT status || ' ' || priority || ' ' || estimated_hours FROM tasks",
                       "todo high 12.50");
    pgt_world_assert_q(&w, "SELECT language || ' ' || status FROM meetings", "es pending");
    char st[6];
    char *r = pgt_pg_try(w.pg, w.db,
                         "INSERT INTO prds (id, meeting_id, title, content) VALUES ('p2', 'm1', "
                         "'PRD 2', '{}')",
                         st);
    cr_assert_null(r, "a second PRD for one meeting was accepted");
    cr_assert_str_eq(st, "23505");
    /* Cascades: deleting the meeting removes its PRD and tasks. */
    free(pgt_world_query(&w, "DELETE FROM meetings WHERE id = 'm1'"));
    pgt_world_assert_q(&w, "SELECT count(*) FROM tasks", "0");
}

Test(migrate, round_trips_targets_and_stamp, .timeout = 90)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 1);
    pgt_world_file(&w, "0002_add_rating.up.sql", "ALTER TABLE prds ADD COLUMN rating integer;\n");
    pgt_world_file(&w, "0002_add_rating.down.sql", "ALTER TABLE prds DROP COLUMN rating;\n");
    pgt_world_file(&w, "0003_notifications.up.sql",
                   "CREATE TABLE notifications (id bigserial PRIMARY KEY, user_id varchar(50) NOT "
                   "NULL, body text NOT NULL);\n");
    pgt_world_file(&w, "0003_notifications.down.sql", "DROP TABLE notifications;\n");

    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", "+1", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &w, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations", "1");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", "0002", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &w, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'rating'", "1");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    char *full = schema_fingerprint(&w);
    pgt_world_assert_q(&w,
                       "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM "
                       "pgentry_migrations",
                       "1:initial_schema,2:add_rating,3:notifications");
    pgt_world_assert_q(
        &w,
        "SELECT bool_and(length(checksum) = 64 AND duration_ms >= 0 AND applied_by LIKE "
        "'pgentry %') FROM pgentry_migrations",
        "t");

    cr_assert_eq(pgt_world_run(&w, &p, "downgrade", "-1", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('notifications') IS NULL", "t");
    cr_assert_eq(pgt_world_run(&w, &p, "downgrade", "base", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "0");
    pgt_world_assert_q(&w, "SELECT to_regclass('meetings') IS NULL", "t");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", "head", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    char *again = schema_fingerprint(&w);
    cr_assert_str_eq(full, again, "upgrade → base → upgrade changed the schema");

    /* downgrade to a version keeps that version applied. */
    cr_assert_eq(pgt_world_run(&w, &p, "downgrade", "1", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "current", NULL), 0);
    cr_assert_str_eq(p.out, "0001\n");
    pgt_proc_free(&p);

    /* stamp records without running SQL. */
    cr_assert_eq(pgt_world_run(&w, &p, "stamp", "head", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "3");
    pgt_world_assert_q(&w, "SELECT to_regclass('notifications') IS NULL", "t");
    cr_assert_eq(pgt_world_run(&w, &p, "stamp", "base", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "0");
    pgt_world_assert_q(&w, "SELECT to_regclass('meetings') IS NOT NULL", "t");

    /* Bad targets: a usage error or an unknown version, and nothing changes. */
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", "+9", NULL), 65);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "downgrade", "nonsense", NULL), 64);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", "0042", NULL), 65, "%s", p.err);
    pgt_proc_free(&p);
    free(full);
    free(again);
}

Test(migrate, sql_output_applied_by_psql_gives_the_same_schema, .timeout = 90)
{
    struct pgt_world a, b;
    struct pgt_proc p;
    world_init(&a, 1);
    pgt_world_file(&a, "0002_conc.up.sql",
                   "-- pgentry:no-transaction\nCREATE INDEX CONCURRENTLY ix_prds_title ON prds "
                   "(title);\n");
    pgt_world_file(&a, "0003_fn.up.sql",
                   "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$\nBEGIN\n  "
                   "NEW.updated_at := now(); -- keep ; inside\n  RETURN NEW;\nEND\n$body$;\n"
                   "CREATE TRIGGER meetings_touch BEFORE UPDATE ON meetings FOR EACH ROW EXECUTE "
                   "FUNCTION touch()");
    world_init(&b, 0);

    /* Plan against b's (empty) database with a's files; b's database gets it through psql. */
    const char *env[] = {b.env_url, a.env_dir, NULL};
    const char *argv[] = {"pgentry", "upgrade", "--sql", NULL};
    int rc = pgt_run(&p, argv, env, 30000);
    cr_assert_eq(rc, 0, "%s", p.err);
    pgt_world_assert_q(&b, "SELECT to_regclass('pgentry_migrations') IS NULL", "t");
    cr_assert(strstr(p.out, "INSERT INTO \"pgentry_migrations\""), "%s", p.out);
    cr_assert(strstr(p.out, "CREATE INDEX CONCURRENTLY"), "%s", p.out);
    char sqlfile[300];
    snprintf(sqlfile, sizeof sqlfile, "%s/plan.sql", b.dir);
    pgt_write_file(sqlfile, p.out);
    pgt_proc_free(&p);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "psql -X -q -v ON_ERROR_STOP=1 -h '%s' -p %d -U postgres -d %s -f %s",
             b.pg->dir, b.pg->port, b.db, sqlfile);
    cr_assert_eq(system(cmd), 0, "psql could not apply the --sql output");

    cr_assert_eq(pgt_world_run(&a, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    char *fa = schema_fingerprint(&a), *fb = schema_fingerprint(&b);
    cr_assert_str_eq(fa, fb, "--sql applied by psql differs from pgentry's own upgrade");
    /* And pgentry agrees that b is now up to date: same checksums recorded. */
    const char *argv2[] = {"pgentry", "verify", NULL};
    rc = pgt_run(&p, argv2, env, 30000);
    cr_assert_eq(rc, 0, "verify after psql: %s%s", p.out, p.err);
    pgt_proc_free(&p);
    free(fa);
    free(fb);
}

Test(migrate, failing_statement_is_reported_and_leaves_no_trace, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    char marker[300], cmd[400];
    world_init(&w, 1);
    pgt_world_file(&w, "0002_broken.up.sql",
                   "CREATE TABLE first_ok (id int);\n"
                   "INSERT INTO first_ok VALUES (1);\n"
                   "-- the third statement is wrong\n"
                   "CREATE TABLE third (\n"
                   "    id int,\n"
                   "    oops int SELECT\n"
                   ");\n"
                   "CREATE TABLE never (id int);\n");
    snprintf(marker, sizeof marker, "%s/app-ran", w.dir);
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    int rc = pgt_world_run(&w, &p, "--", "sh", "-c", cmd, NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "0002_broken.up.sql:6"), "no file:line in\n%s", p.err);
    cr_assert(strstr(p.err, "sqlstate=42601"), "no SQLSTATE in\n%s", p.err);
    cr_assert(strstr(p.err, "syntax error"), "%s", p.err);
    cr_assert(strstr(p.err, "rolled back"), "state of the database not said:\n%s", p.err);
    cr_assert(strstr(p.err, "version 0001"), "%s", p.err);
    cr_assert_neq(access(marker, F_OK), 0, "COMMAND ran after a failed migration");
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT string_agg(version::text, ',') FROM pgentry_migrations", "1");
    pgt_world_assert_q(&w, "SELECT to_regclass('first_ok') IS NULL", "t");
    pgt_world_assert_q(&w, "SELECT to_regclass('meetings') IS NOT NULL", "t");
    pgt_world_assert_q(&w, ADVISORY_LOCKS_HERE, "0");
}

Test(migrate, no_transaction_runs_create_index_concurrently, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 1);
    pgt_world_file(&w, "0002_concurrent_index.up.sql",
                   "-- pgentry:no-transaction\r\n"
                   "CREATE INDEX CONCURRENTLY ix_tasks_title ON tasks (title);\r\n"
                   "CREATE INDEX CONCURRENTLY ix_prds_title ON prds USING btree (title);\r\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "%s", p.err);
    cr_assert(strstr(p.err, "transaction=none"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &w,
        "SELECT string_agg(c.relname || ':' || i.indisvalid, ',' ORDER BY c.relname) FROM "
        "pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE '%_title'",
        "ix_prds_title:true,ix_tasks_title:true");
}

Test(migrate, drift_crlf_and_database_ahead, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    char path[512];
    world_init(&w, 0);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);

    /* Only line ends and a BOM changed: the same migration. */
    pgt_world_file(&w, "0001_a.up.sql",
                   "\xEF\xBB\xBF"
                   "CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n");
    cr_assert_eq(pgt_world_run(&w, &p, "verify", NULL), 0, "%s%s", p.out, p.err);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);

    /* A real edit is drift: verify and every upgrade refuse, and say which file. */
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id bigint);\nCREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&w, &p, "verify", NULL);
    cr_assert_eq(rc, 65, "%s%s", p.out, p.err);
    cr_assert(strstr(p.err, "0001"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_file(&w, "0002_b.up.sql", "CREATE TABLE c (id int);\n");
    rc = pgt_world_run(&w, &p, "--", "true", NULL);
    cr_assert_eq(rc, 65, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('c') IS NULL", "t");
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(p.out, "drift"), "%s", p.out);
    pgt_proc_free(&p);

    /* Restore; then a newer release applied 0099 that these files do not know: warn, go on. */
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n");
    snprintf(path, sizeof path, "%s/0002_b.up.sql", w.dir);
    unlink(path);
    free(pgt_world_query(
        &w, "INSERT INTO pgentry_migrations (version, name, checksum, duration_ms) VALUES "
            "(99, 'from_the_future', 'x', 1)"));
    rc = pgt_world_run(&w, &p, "--", "true", NULL);
    cr_assert_eq(rc, 0, "%s", p.err);
    cr_assert(strstr(p.err, "warn") && strstr(p.err, "99"), "no warning:\n%s", p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert(strstr(p.out, "ahead: 99"), "%s", p.out);
    pgt_proc_free(&p);
}

Test(migrate, copy_in_a_migration_neither_hangs_nor_passes_silently, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 0);
    /* COPY TO STDOUT: its rows are read and dropped (it used to spin forever holding the lock). */
    pgt_world_file(&w, "0001_copy_out.up.sql",
                   "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1), (2);\nCOPY c TO STDOUT;\n"
                   "COPY (SELECT g FROM generate_series(1, 20000) g) TO STDOUT;\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "1");
    /* COPY FROM STDIN has no data source: a clear failure, rolled back. */
    pgt_world_file(&w, "0002_copy_in.up.sql", "CREATE TABLE d (id int);\nCOPY d FROM STDIN;\n");
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "COPY FROM STDIN"), "%s", p.err);
    cr_assert(strstr(p.err, "0002_copy_in.up.sql:2"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('d') IS NULL", "t");
    pgt_world_assert_q(&w, ADVISORY_LOCKS_HERE, "0");
}

Test(migrate, transaction_control_is_refused_before_anything_runs, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 0);
    pgt_world_file(&w, "0001_commits.up.sql",
                   "CREATE TABLE early1 (id int);\nCOMMIT;\nCREATE TABLE late1 (id int);\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "0001_commits.up.sql:2"), "line not named:\n%s", p.err);
    cr_assert(strstr(p.err, "no-transaction"), "fix not named:\n%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('early1') IS NULL", "t");
    /* ROLLBACK TO a savepoint is fine: it stays inside the transaction. */
    pgt_world_file(&w, "0001_commits.up.sql",
                   "CREATE TABLE early1 (id int);\nSAVEPOINT s;\nINSERT INTO early1 VALUES (1);\n"
                   "ROLLBACK TO SAVEPOINT s;\n");
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM early1", "0");
}

Test(migrate, stop_inside_a_no_transaction_migration_says_what_stays, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 0);
    pgt_world_file(
        &w, "0001_ntx.up.sql",
        "-- pgentry:no-transaction\nCREATE TABLE ntx1 (id int);\nSELECT pg_sleep(30);\n");
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pgt_proc_spawn(&p, argv, w.env);
    for (int i = 0; i < 200; i++) {
        char *n =
            pgt_world_query(&w, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT "
                                "pg_sleep(30)%'");
        int running = atoi(n);
        free(n);
        if (running)
            break;
        usleep(20000);
    }
    kill(p.pid, SIGTERM);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 143, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "statements_committed=1"), "not said what stays:\n%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('ntx1') IS NOT NULL", "t");
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "0");
    pgt_world_assert_q(&w, ADVISORY_LOCKS_HERE, "0");
}

Test(migrate, drift_advice_re_records_without_running_sql, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 0);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0002_b.up.sql", "CREATE TABLE b (id int);\n");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_file(&w, "0003_c.up.sql", "CREATE TABLE c (id int);\n");
    /* An intended edit of 0002 (say, a comment), already reflected in the database. */
    pgt_world_file(&w, "0002_b.up.sql", "-- b holds things\nCREATE TABLE b (id int);\n");
    cr_assert_eq(pgt_world_run(&w, &p, "status", NULL), 0);
    cr_assert(strstr(p.out, "pgentry stamp 0001 && pgentry stamp 0002"), "advice:\n%s", p.out);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "stamp", "0001", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "stamp", "0002", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    cr_assert_eq(pgt_world_run(&w, &p, "verify", NULL), 0, "%s%s", p.out, p.err);
    pgt_proc_free(&p);
    /* 0003 stayed pending (never marked applied), and nothing was run twice. */
    pgt_world_assert_q(
        &w, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
        "1,2");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('c') IS NOT NULL", "t");
}

Test(migrate, out_of_order_file_is_refused, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 0);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0003_c.up.sql", "CREATE TABLE c (id int);\n");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_file(&w, "0002_b.up.sql", "CREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "%s", p.err);
    cr_assert(strstr(p.err, "0002"), "%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT to_regclass('b') IS NULL", "t");
}

Test(migrate, replicas_started_together_apply_each_migration_once, .timeout = 120)
{
    for (int round = 0; round < 3; round++) {
        struct pgt_world w;
        struct pgt_proc p[8];
        world_init(&w, 1);
        for (int i = 2; i <= 6; i++) {
            char name[64], sql[160];
            snprintf(name, sizeof name, "%04d_t%d.up.sql", i, i);
            /* Not idempotent on purpose: a second run would fail with 42P07. */
            snprintf(sql, sizeof sql, "CREATE TABLE t%d (id int);\nSELECT pg_sleep(0.02);\n", i);
            pgt_world_file(&w, name, sql);
        }
        const char *argv[] = {"pgentry", "--", "true", NULL};
        for (int i = 0; i < 8; i++)
            pgt_proc_spawn(&p[i], argv, w.env);
        int appliers = 0;
        for (int i = 0; i < 8; i++) {
            int rc = pgt_proc_wait(&p[i], 60000);
            cr_assert_eq(rc, 0, "round %d replica %d: exit %d\n%s", round, i, rc, p[i].err);
            cr_assert_null(strstr(p[i].err, " error "), "error logged:\n%s", p[i].err);
            appliers += strstr(p[i].err, "migration applied") != NULL;
            pgt_proc_free(&p[i]);
        }
        cr_assert_geq(appliers, 1);
        pgt_world_assert_q(
            &w, "SELECT count(*) || ':' || count(DISTINCT version) FROM pgentry_migrations", "6:6");
        pgt_world_assert_q(&w, ADVISORY_LOCKS_HERE, "0");
    }
}

Test(migrate, migrate_cmd_runs_under_the_lock_one_at_a_time, .timeout = 120)
{
    struct pgt_world w;
    struct pgt_proc p[8];
    char lockfile[300], cmd[900], env_cmd[1000];
    world_init(&w, 0);
    snprintf(lockfile, sizeof lockfile, "%s/inside", w.dir);
    /* Fails if two commands ever overlap; records DATABASE_URL reaching the command. */
    snprintf(cmd, sizeof cmd,
             "set -C; : > %s || exit 3; psql -X -q \"$DATABASE_URL\" -c 'CREATE TABLE IF NOT "
             "EXISTS runs (n int); INSERT INTO runs VALUES (1)' || exit 4; sleep 0.1; rm -f %s; "
             "echo migrate-cmd-output",
             lockfile, lockfile);
    snprintf(env_cmd, sizeof env_cmd, "PGENTRY_MIGRATE_CMD=%s", cmd);
    const char *env[] = {w.env_url, w.env_dir, env_cmd, "PGENTRY_HEALTH_ADDR=off", NULL};
    const char *argv[] = {"pgentry", "--", "true", NULL};
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < 8; i++)
            pgt_proc_spawn(&p[i], argv, env);
        for (int i = 0; i < 8; i++) {
            int rc = pgt_proc_wait(&p[i], 60000);
            cr_assert_eq(rc, 0, "round %d replica %d: exit %d\n%s", round, i, rc, p[i].err);
            cr_assert(strstr(p[i].out, "migrate-cmd-output"), "command output not passed through");
            cr_assert_null(strstr(p[i].err, " error "), "error logged:\n%s", p[i].err);
            pgt_proc_free(&p[i]);
        }
        char want[16];
        snprintf(want, sizeof want, "%d", 8 * round);
        pgt_world_assert_q(&w, "SELECT count(*) FROM runs", want);
    }

    /* A failing command is exit 65 and the app never starts. */
    const char *env2[] = {w.env_url, w.env_dir, "PGENTRY_MIGRATE_CMD=exit 9",
                          "PGENTRY_HEALTH_ADDR=off", NULL};
    const char *argv2[] = {"pgentry", "--", "sh", "-c", "echo app-started", NULL};
    struct pgt_proc f;
    int rc = pgt_run(&f, argv2, env2, 30000);
    cr_assert_eq(rc, 65, "%s", f.err);
    cr_assert_null(strstr(f.out, "app-started"));
    pgt_proc_free(&f);
}

/* Start pgentry with PGENTRY_MIGRATE_CMD=cmd, an optional option and its value, and an app
 * that says it started. */
static void spawn_cmd(struct pgt_world *w, struct pgt_proc *p, const char *cmd, const char *opt,
                      const char *val)
{
    static char env_cmd[2000];
    snprintf(env_cmd, sizeof env_cmd, "PGENTRY_MIGRATE_CMD=%s", cmd);
    const char *env[] = {w->env_url, w->env_dir, env_cmd, "PGENTRY_HEALTH_ADDR=off", NULL};
    const char *argv[10];
    size_t n = 0;
    argv[n++] = "pgentry";
    if (opt) {
        argv[n++] = opt;
        argv[n++] = val;
    }
    argv[n++] = "--";
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = "echo app-started";
    argv[n] = NULL;
    pgt_proc_spawn(p, argv, env);
}

Test(migrate, migrate_cmd_keeps_its_lock_or_stops, .timeout = 90)
{
    struct pgt_world w;
    struct pgt_proc p;
    char sql[300];
    world_init(&w, 0);
    /* A server-side idle timeout must not end the lock's session while the command works. */
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET idle_session_timeout = '500ms'", w.db);
    free(pgt_world_query(&w, sql));
    spawn_cmd(&w, &p, "sleep 1.5; echo migrated", NULL, NULL);
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "app-started"), "%s", p.out);
    pgt_proc_free(&p);

    /* The lock's session killed under the command: the command is stopped, no app, 65. */
    snprintf(sql, sizeof sql,
             "sleep 0.5; psql -X -q -A -t \"$DATABASE_URL\" -c \"SELECT pg_terminate_backend(pid) "
             "FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE "
             "'pgentry@%%'\"; sleep 20");
    int64_t t0 = pgt_now_ms();
    spawn_cmd(&w, &p, sql, NULL, NULL);
    rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 65, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "lost the database session holding the migration lock"), "%s", p.err);
    cr_assert_null(strstr(p.out, "app-started"), "the app started without the lock");
    cr_assert(pgt_now_ms() - t0 < 8000, "the command was not stopped");
    pgt_proc_free(&p);
}

Test(migrate, migrate_cmd_ignoring_term_is_killed_before_the_lock_is_released, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    char marker[300], cmd[600];
    world_init(&w, 0);
    snprintf(marker, sizeof marker, "%s/still-running", w.dir);
    snprintf(cmd, sizeof cmd, "trap '' TERM; echo started; sleep 20; touch %s", marker);
    spawn_cmd(&w, &p, cmd, "--stop-timeout", "1s");
    cr_assert_eq(pgt_wait_for_text(p.out_path, "started", 10000), 0);
    int64_t t0 = pgt_now_ms();
    kill(p.pid, SIGTERM);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 143, "exit %d\n%s", rc, p.err);
    int64_t took = pgt_now_ms() - t0;
    cr_assert(took >= 900 && took < 3000, "stop took %lld ms with --stop-timeout 1s",
              (long long)took);
    cr_assert(strstr(p.err, "did not stop in time"), "%s", p.err);
    pgt_proc_free(&p);
    /* The command is gone for good, and so is the lock. */
    char *n = pgt_world_query(
        &w, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'pgentry@%'");
    cr_assert_str_eq(n, "0");
    free(n);
    pgt_world_assert_q(&w, ADVISORY_LOCKS_HERE, "0");
    usleep(300 * 1000);
    cr_assert_neq(access(marker, F_OK), 0, "the migrate command outlived pgentry");
}

Test(migrate, sigterm_during_a_long_migration_rolls_back, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 1);
    pgt_world_file(
        &w, "0002_slow.up.sql",
        "CREATE TABLE slow_one (id int);\nSELECT pg_sleep(30);\nCREATE TABLE slow_two (id "
        "int);\n");
    const char *argv[] = {"pgentry", "--", "true", NULL};
    pgt_proc_spawn(&p, argv, w.env);
    cr_assert_eq(pgt_wait_for_text(p.err_path, "applying migrations", 20000), 0);
    /* Let pg_sleep start. */
    for (int i = 0; i < 100; i++) {
        char *n =
            pgt_world_query(&w, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT "
                                "pg_sleep(30)%'");
        int running = atoi(n);
        free(n);
        if (running)
            break;
        usleep(20000);
    }
    int64_t t0 = pgt_now_ms();
    kill(p.pid, SIGTERM);
    int rc = pgt_proc_wait(&p, 10000);
    cr_assert_eq(rc, 143, "exit %d\n%s", rc, p.err);
    cr_assert(pgt_now_ms() - t0 < 3000, "stop took %lld ms", (long long)(pgt_now_ms() - t0));
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT string_agg(version::text, ',') FROM pgentry_migrations", "1");
    pgt_world_assert_q(&w, "SELECT to_regclass('slow_one') IS NULL", "t");
    pgt_world_assert_q(&w, ADVISORY_LOCKS_HERE, "0");
    pgt_world_assert_q(
        &w, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'", "0");
}

Test(migrate, lock_wait_gives_up_with_75, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc holder, waiter;
    world_init(&w, 0);
    pgt_world_file(&w, "0001_slow.up.sql", "SELECT pg_sleep(3);\n");
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pgt_proc_spawn(&holder, argv, w.env);
    cr_assert_eq(pgt_wait_for_text(holder.err_path, "applying migrations", 20000), 0);
    const char *argv2[] = {"pgentry", "upgrade", "--lock-wait", "700ms", NULL};
    int rc = pgt_run(&waiter, argv2, w.env, 20000);
    cr_assert_eq(rc, 75, "exit %d\n%s", rc, waiter.err);
    cr_assert(strstr(waiter.err, "waiting for the migration lock"), "%s", waiter.err);
    cr_assert(strstr(waiter.err, "holder=\"pgentry@"), "holder not named:\n%s", waiter.err);
    cr_assert(waiter.elapsed_ms < 2500, "took %lld ms", (long long)waiter.elapsed_ms);
    pgt_proc_free(&waiter);
    cr_assert_eq(pgt_proc_wait(&holder, 20000), 0, "%s", holder.err);
    pgt_proc_free(&holder);
}

Test(migrate, stop_signal_while_waiting_for_the_lock_exits_promptly, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc holder, waiter;
    world_init(&w, 0);
    pgt_world_file(&w, "0001_slow.up.sql", "SELECT pg_sleep(2);\n");
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pgt_proc_spawn(&holder, argv, w.env);
    cr_assert_eq(pgt_wait_for_text(holder.err_path, "applying migrations", 20000), 0);
    const char *argv2[] = {"pgentry", "--", "sh", "-c", "echo app-started", NULL};
    pgt_proc_spawn(&waiter, argv2, w.env);
    cr_assert_eq(pgt_wait_for_text(waiter.err_path, "waiting for the migration lock", 20000), 0);
    int64_t t0 = pgt_now_ms();
    kill(waiter.pid, SIGINT);
    int rc = pgt_proc_wait(&waiter, 10000);
    cr_assert_eq(rc, 130, "exit %d\n%s", rc, waiter.err);
    cr_assert(pgt_now_ms() - t0 < 1000, "took %lld ms", (long long)(pgt_now_ms() - t0));
    cr_assert_null(strstr(waiter.out, "app-started"), "the app started after a stop signal");
    pgt_proc_free(&waiter);
    cr_assert_eq(pgt_proc_wait(&holder, 20000), 0, "%s", holder.err);
    pgt_proc_free(&holder);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "1");
}

Test(migrate, lock_timeout_retries_until_the_table_is_free, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p, blocker;
    char cmd[600];
    world_init(&w, 0);
    free(pgt_world_query(&w, "CREATE TABLE busy (id int)"));
    pgt_world_file(&w, "0001_alter_busy.up.sql", "ALTER TABLE busy ADD COLUMN note text;\n");
    /* Another session holds the table for 1.5 s. */
    snprintf(cmd, sizeof cmd,
             "BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE; SELECT "
             "pg_sleep(1.5); COMMIT;");
    const char *bargv[] = {"/usr/bin/psql", "-X", "-q", w.url, "-c", cmd, NULL};
    pgt_proc_spawn(&blocker, bargv, NULL);
    for (int i = 0; i < 100; i++) {
        char *n = pgt_world_query(
            &w, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'busy' AND l.mode = 'AccessExclusiveLock'");
        int held = atoi(n);
        free(n);
        if (held)
            break;
        usleep(20000);
    }
    const char *argv[] = {"pgentry", "upgrade", "--lock-timeout", "100ms", NULL};
    int rc = pgt_run(&p, argv, w.env, 30000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "lock_timeout"), "no retry logged:\n%s", p.err);
    pgt_proc_free(&p);
    pgt_proc_wait(&blocker, 10000);
    pgt_proc_free(&blocker);
    pgt_world_assert_q(
        &w,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'busy' AND "
        "column_name = 'note'",
        "1");
}

Test(migrate, wait_migrations_follows_another_instance, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc waiter, applier;
    world_init(&w, 1);
    const char *wargv[] = {"pgentry", "--wait-migrations", "--", "true", NULL};
    pgt_proc_spawn(&waiter, wargv, w.env);
    cr_assert_eq(pgt_wait_for_text(waiter.err_path, "waiting for another instance", 10000), 0);
    usleep(300 * 1000);
    cr_assert_eq(pgt_world_run(&w, &applier, "upgrade", NULL), 0, "%s", applier.err);
    int64_t applied = pgt_now_ms();
    pgt_proc_free(&applier);
    int rc = pgt_proc_wait(&waiter, 10000);
    cr_assert_eq(rc, 0, "%s", waiter.err);
    cr_assert(pgt_now_ms() - applied < 1000, "waiter noticed late");
    pgt_proc_free(&waiter);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "1");

    /* Alone, it gives up at --wait-timeout with 69 and applies nothing. */
    struct pgt_world w2;
    world_init(&w2, 1);
    const char *argv2[] = {"pgentry", "--wait-migrations", "--wait-timeout", "1s", "--", "true",
                           NULL};
    rc = pgt_run(&waiter, argv2, w2.env, 10000);
    cr_assert_eq(rc, 69, "%s", waiter.err);
    pgt_proc_free(&waiter);
    pgt_world_assert_q(&w2, "SELECT to_regclass('pgentry_migrations') IS NULL", "t");
}

Test(migrate, history_status_and_revision, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_init(&w, 1);
    const char *argv[] = {"pgentry", "revision", "-m", "Add rating to PRDs", NULL};
    int rc = pgt_run(&p, argv, w.env, 10000);
    cr_assert_eq(rc, 0, "%s", p.err);
    cr_assert(strstr(p.out, "0002_add_rating_to_prds.up.sql"), "%s", p.out);
    pgt_proc_free(&p);
    pgt_world_file(&w, "0002_add_rating_to_prds.up.sql",
                   "ALTER TABLE prds ADD COLUMN rating integer CHECK (rating BETWEEN 1 AND 5);\n");
    pgt_world_file(&w, "0002_add_rating_to_prds.down.sql",
                   "ALTER TABLE prds DROP COLUMN rating;\n");
    cr_assert_eq(pgt_world_run(&w, &p, "upgrade", "+1", NULL), 0, "%s", p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "history", NULL);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(p.out, "0001") && strstr(p.out, "initial_schema") && strstr(p.out, "applied"),
              "%s", p.out);
    cr_assert(strstr(p.out, "0002") && strstr(p.out, "add_rating_to_prds") &&
                  strstr(p.out, "pending"),
              "%s", p.out);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(p.out, "head: 0001 (1 applied, 1 pending)"), "%s", p.out);
    pgt_proc_free(&p);
}

Test(migrate, configuration_errors_fail_before_waiting, .timeout = 30)
{
    struct pgt_proc p;
    char dir[256], env_dir[300], path[400];
    pgt_tempdir(dir, sizeof dir);
    snprintf(env_dir, sizeof env_dir, "PGENTRY_MIGRATIONS=%s", dir);
    snprintf(path, sizeof path, "%s/0001_a.up.sql", dir);
    pgt_write_file(path, "SELECT 1;\n");

    /* Files but no database: 78, not a silent skip; --no-migrate runs the command. */
    const char *env[] = {env_dir, "PGENTRY_HEALTH_ADDR=off", NULL};
    const char *argv[] = {"pgentry", "--", "true", NULL};
    cr_assert_eq(pgt_run(&p, argv, env, 10000), 78, "%s", p.err);
    cr_assert(strstr(p.err, "--no-migrate"), "%s", p.err);
    pgt_proc_free(&p);
    const char *argv2[] = {"pgentry", "--no-migrate", "--", "sh", "-c", "exit 4", NULL};
    cr_assert_eq(pgt_run(&p, argv2, env, 10000), 4, "%s", p.err);
    pgt_proc_free(&p);

    /* Duplicate versions: 65 at once, even though the database is unreachable. */
    snprintf(path, sizeof path, "%s/1_b.up.sql", dir);
    pgt_write_file(path, "SELECT 2;\n");
    const char *env2[] = {env_dir, "DATABASE_URL=postgres://u:p@127.0.0.1:1/db",
                          "PGENTRY_HEALTH_ADDR=off", NULL};
    cr_assert_eq(pgt_run(&p, argv, env2, 10000), 65, "%s", p.err);
    cr_assert(p.elapsed_ms < 1000);
    pgt_proc_free(&p);

    /* A database but no migrations directory: 78 naming the fix. */
    const char *env3[] = {"PGENTRY_MIGRATIONS=/nonexistent/migrations",
                          "DATABASE_URL=postgres://u:p@127.0.0.1:1/db", "PGENTRY_HEALTH_ADDR=off",
                          NULL};
    cr_assert_eq(pgt_run(&p, argv, env3, 10000), 78, "%s", p.err);
    cr_assert(strstr(p.err, "migrations directory not found"), "%s", p.err);
    pgt_proc_free(&p);
}
