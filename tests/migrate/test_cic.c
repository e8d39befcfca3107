/* INVALID indexes left by an interrupted CREATE INDEX CONCURRENTLY: what status says about them,
 * and a server restart in the middle of a migration's index build. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgt_world.h"
#include "pgt.h"
#include "pgt_hooks.h"

PGT_SHARED_PG_HOOKS()

#define WARN_T_U                                                                                   \
    "warning: index public.t_u on public.t is INVALID (an interrupted CREATE INDEX "               \
    "CONCURRENTLY): DROP INDEX CONCURRENTLY public.t_u; then run pgentry again\n"

Test(cic, status_names_an_invalid_index_and_its_fix, .timeout = 90)
{
    struct pgt_world d;
    struct pgt_proc p;
    char state[6];
    pgt_world_init(&d, NULL);
    pgt_world_file(&d, "0001_t.up.sql",
                   "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (1);\n");
    int rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    /* A unique build over duplicates fails and leaves its index behind, INVALID. */
    cr_assert_null(pgt_pg_try(d.pg, d.db, "CREATE UNIQUE INDEX CONCURRENTLY t_u ON t (id)", state));
    cr_assert_str_eq(state, "23505");
    pgt_world_assert_q(&d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_u'::regclass",
                       "f");

    rc = pgt_world_run(&d, &p, "status", NULL);
    cr_assert_eq(rc, 0, "without --exit-code status reports and exits 0: rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, WARN_T_U), "%s", p.out);
    pgt_proc_free(&p);

    rc = pgt_world_run(&d, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 65, "the schema is not what the history says: rc %d\n%s", rc, p.out);
    cr_assert(strstr(p.out, WARN_T_U), "%s", p.out);
    pgt_proc_free(&p);

    rc = pgt_world_run(&d, &p, "status", "--exit-code", "--format", "json", NULL);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.out);
    cr_assert(strstr(p.out, "\"up_to_date\":false,\"invalid_indexes\":[{\"index\":\"public.t_u\","
                            "\"table\":\"public.t\",\"fix\":\"DROP INDEX CONCURRENTLY "
                            "public.t_u;\"}],\"migrations\":["),
              "%s", p.out);
    pgt_proc_free(&p);

    pgt_world_exec(&d, "DROP INDEX CONCURRENTLY public.t_u");
    rc = pgt_world_run(&d, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 0, "after the fix: rc %d\n%s", rc, p.out);
    cr_assert_null(strstr(p.out, "INVALID"), "%s", p.out);
    pgt_proc_free(&p);
    rc = pgt_world_run(&d, &p, "status", "--format", "json", NULL);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "\"up_to_date\":true,\"invalid_indexes\":[],\"migrations\":["), "%s",
              p.out);
    pgt_proc_free(&p);
}

/* pgentry's own connection to the index build's phase. */
#define BUILD_PHASE "SELECT coalesce(max(phase), '') FROM pg_stat_progress_create_index"

/* A session whose snapshot holds any later CREATE INDEX CONCURRENTLY back in its last wait
 * ("waiting for old snapshots"), its index INVALID, until the session ends its transaction. */
static PGconn *old_snapshot(struct pgt_world *d)
{
    PGconn *old = pgt_world_connect(d);
    PQclear(PQexec(old, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    PQclear(PQexec(old, "SELECT count(*) FROM pg_class"));
    return old;
}

/* Start CREATE INDEX CONCURRENTLY on the test's own connection, held back by *old, and wait
 * until it sits in its last wait. */
static PGconn *held_back_build(struct pgt_world *d, PGconn **old, const char *sql)
{
    *old = old_snapshot(d);
    PGconn *build = pgt_world_connect(d);
    cr_assert_eq(PQsendQuery(build, sql), 1, "%s", PQerrorMessage(build));
    pgt_world_await(d, BUILD_PHASE, "waiting for old snapshots", 30000);
    return build;
}

Test(cic, status_leaves_an_index_being_built_alone, .timeout = 90)
{
    struct pgt_world d;
    struct pgt_proc p;
    PGconn *old;
    pgt_world_init(&d, NULL);
    pgt_world_file(&d, "0001_t.up.sql",
                   "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (2);\n");
    int rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    PGconn *build = held_back_build(&d, &old, "CREATE INDEX CONCURRENTLY t_id ON t (id)");
    pgt_world_assert_q(&d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass",
                       "f");
    rc = pgt_world_run(&d, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 0, "a running build is not an invalid index: rc %d\n%s", rc, p.out);
    cr_assert_null(strstr(p.out, "INVALID"), "%s", p.out);
    pgt_proc_free(&p);

    PQclear(PQexec(old, "COMMIT"));
    PGresult *res;
    while ((res = PQgetResult(build))) {
        cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
        PQclear(res);
    }
    PQfinish(build);
    PQfinish(old);
    pgt_world_assert_q(&d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass",
                       "t");
}

/* The restart test's own server: restarting the binary's shared one would break its neighbours. */
static struct pgt_pg own;

static void own_start(void)
{
    pgt_pg_init(&own);
    pgt_pg_start(&own);
}

static void own_destroy(void)
{
    pgt_pg_destroy(&own);
}

/* A fast shutdown (what a rolling restart of the server does: every session is ended), then a
 * start on the same port. */
static void restart_fast(struct pgt_pg *pg)
{
    char pgctl[300];
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", pg->bindir);
    const char *argv[] = {pgctl, "-D", pg->dir, "-m", "fast", "-w", "stop", NULL};
    pgt_run_as_pg(argv, 1);
    pgt_pg_start(pg);
}

Test(cic, server_restart_during_a_migrations_index_build, .init = own_start, .fini = own_destroy,
     .timeout = 120)
{
    struct pgt_world d;
    struct pgt_proc p;
    PGconn *old;
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pgt_world_init_on(&d, &own, NULL);
    pgt_world_file(&d, "0001_t.up.sql",
                   "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (2);\n");
    int rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    pgt_world_file(&d, "0002_idx.up.sql",
                   "-- pgentry:no-transaction\n"
                   "CREATE TABLE IF NOT EXISTS t2 (id int);\n"
                   "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);\n");
    /* An old snapshot holds the build back in its last wait: restart the server there. */
    old = old_snapshot(&d);
    pgt_proc_spawn(&p, argv, d.env);
    pgt_world_await(&d, BUILD_PHASE, "waiting for old snapshots", 30000);
    restart_fast(d.pg);
    PQfinish(old);
    rc = pgt_proc_wait(&p, 60000);
    cr_assert_eq(rc, 65, "the connection was lost inside a no-transaction migration: rc %d\n%s", rc,
                 p.err);
    cr_assert(strstr(p.err, "0002"), "names the migration: %s", p.err);
    cr_assert(strstr(p.err, "statements 1-1 of 2 completed"), "says which statements completed: %s",
              p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id_idx'::regclass", "f");
    pgt_world_assert_q(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "0");

    /* IF NOT EXISTS skips the build: refused, naming the index and the fix. */
    rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "INVALID index"), "%s", p.err);
    cr_assert(strstr(p.err, "DROP INDEX CONCURRENTLY public.t_id_idx;"), "the fix: %s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "0");
    rc = pgt_world_run(&d, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.out);
    cr_assert(strstr(p.out, "warning: index public.t_id_idx on public.t is INVALID"), "%s", p.out);
    pgt_proc_free(&p);

    pgt_world_exec(&d, "DROP INDEX CONCURRENTLY public.t_id_idx");
    rc = pgt_world_run(&d, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "after the fix: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id_idx'::regclass", "t");
    pgt_world_assert_q(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "1");
    rc = pgt_world_run(&d, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.out);
    pgt_proc_free(&p);
}
