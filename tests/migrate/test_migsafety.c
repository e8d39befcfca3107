/* Migrations that must never be recorded as applied: empty files, invalid indexes left behind. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_world.h"

PGT_SHARED_PG_HOOKS()

Test(migsafety, empty_or_comment_only_migration_is_refused_naming_the_file, .timeout = 60)
{
    struct pgt_world d;
    struct pgt_proc p;
    pgt_world_init(&d, NULL);
    pgt_world_file(&d, "0001_ok.up.sql", "CREATE TABLE t1 (id int);\n");
    pgt_world_file(&d, "0002_todo.up.sql",
                   "-- todo\n-- Runs in one transaction with its history row.\n\n/* later */\n");
    int rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "no statement"), "%s", p.err);
    cr_assert(strstr(p.err, "0002_todo.up.sql"), "the file is named: %s", p.err);
    pgt_proc_free(&p);
    /* Refused before anything ran: not even 0001 is applied. */
    pgt_world_assert_q(&d, "SELECT to_regclass('t1') IS NULL", "t");
    pgt_world_assert_q(&d, "SELECT count(*) FROM pgentry_migrations", "0");

    pgt_world_file(&d, "0002_todo.up.sql", "");
    rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "an empty file too: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    pgt_world_file(&d, "0002_todo.up.sql", "-- filled in\nCREATE TABLE t2 (id int);\n");
    rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "once filled in: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &d, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
        "1,2");
}

/* Poll (up to 30 s) until sql, run on the server, answers want. */
static void await(struct pgt_world *d, const char *sql, const char *want)
{
    int64_t deadline = pgt_now_ms() + 30000;
    for (;;) {
        char *got = pgt_pg_query(d->pg, d->db, sql);
        int done = strcmp(got, want) == 0;
        free(got);
        if (done)
            return;
        cr_assert_lt(pgt_now_ms(), deadline, "timed out waiting for: %s", sql);
        usleep(50000);
    }
}

#define CIC_WAITING                                                                                \
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE "     \
    "'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'"

Test(migsafety, interrupted_concurrent_index_is_never_recorded_as_applied, .timeout = 90)
{
    struct pgt_world d;
    struct pgt_proc p;
    char conninfo[512];
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pgt_world_init(&d, NULL);
    pgt_world_file(&d, "0001_t.up.sql",
                   "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (2);\n");
    pgt_world_file(&d, "0002_idx.up.sql",
                   "-- pgentry:no-transaction\n"
                   "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);\n");
    int rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    free(pgt_world_query(&d, "DROP INDEX t_id_idx"));
    free(pgt_world_query(&d, "DELETE FROM pgentry_migrations WHERE version = 2"));

    /* An old snapshot holds the index build back in its last wait; stop pgentry there. */
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d dbname=%s user=postgres", d.pg->dir,
             d.pg->port, d.db);
    PGconn *old = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(old), CONNECTION_OK, "%s", PQerrorMessage(old));
    PQclear(PQexec(old, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    PQclear(PQexec(old, "SELECT count(*) FROM t"));
    pgt_proc_spawn(&p, argv, d.env);
    await(&d, CIC_WAITING, "1");
    kill(p.pid, SIGTERM);
    rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 128 + SIGTERM, "stopped: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    PQfinish(old);
    pgt_world_assert_q(&d,
                       "SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indexrelid = "
                       "'t_id_idx'::regclass",
                       "1");

    /* IF NOT EXISTS skips the statement; the invalid index is still refused. */
    rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "INVALID index"), "%s", p.err);
    cr_assert(strstr(p.err, "DROP INDEX CONCURRENTLY public.t_id_idx;"), "the fix: %s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "0");

    free(pgt_world_query(&d, "DROP INDEX CONCURRENTLY public.t_id_idx"));
    rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "after the fix: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id_idx'::regclass", "t");
    pgt_world_assert_q(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "1");
}
