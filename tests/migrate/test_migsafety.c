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

PGT_SHARED_PG_HOOKS()

/* One test's database and migrations directory, and the environment pointing at them. */
struct db {
    struct pgt_pg *pg;
    char name[64], dir[256];
    char env_url[300], env_dir[300];
    const char *env[4];
};

static void db_init(struct db *d)
{
    char url[256];
    memset(d, 0, sizeof *d);
    d->pg = pgt_pg_shared();
    pgt_pg_createdb(d->pg, d->name, sizeof d->name);
    pgt_tempdir(d->dir, sizeof d->dir);
    snprintf(d->env_url, sizeof d->env_url, "DATABASE_URL=%s",
             pgt_pg_url(d->pg, d->name, url, sizeof url));
    snprintf(d->env_dir, sizeof d->env_dir, "PGENTRY_MIGRATIONS=%s", d->dir);
    d->env[0] = d->env_url;
    d->env[1] = d->env_dir;
    d->env[2] = "PGENTRY_HEALTH_ADDR=off";
}

static void put(struct db *d, const char *file, const char *sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", d->dir, file);
    pgt_write_file(path, sql);
}

static void exec(struct db *d, const char *sql)
{
    free(pgt_pg_query(d->pg, d->name, sql));
}

static void expect(struct db *d, const char *sql, const char *want)
{
    char *got = pgt_pg_query(d->pg, d->name, sql);
    cr_assert_str_eq(got, want, "%s\n  got: %s\n  want: %s", sql, got, want);
    free(got);
}

static int upgrade(struct db *d, struct pgt_proc *p)
{
    const char *argv[] = {"pgentry", "upgrade", NULL};
    return pgt_run(p, argv, d->env, 60000);
}

Test(migsafety, empty_or_comment_only_migration_is_refused_naming_the_file, .timeout = 60)
{
    struct db d;
    struct pgt_proc p;
    db_init(&d);
    put(&d, "0001_ok.up.sql", "CREATE TABLE t1 (id int);\n");
    put(&d, "0002_todo.up.sql",
        "-- todo\n-- Runs in one transaction with its history row.\n\n/* later */\n");
    int rc = upgrade(&d, &p);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "no statement"), "%s", p.err);
    cr_assert(strstr(p.err, "0002_todo.up.sql"), "the file is named: %s", p.err);
    pgt_proc_free(&p);
    /* Refused before anything ran: not even 0001 is applied. */
    expect(&d, "SELECT to_regclass('t1') IS NULL", "t");
    expect(&d, "SELECT count(*) FROM pgentry_migrations", "0");

    put(&d, "0002_todo.up.sql", "");
    rc = upgrade(&d, &p);
    cr_assert_eq(rc, 65, "an empty file too: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    put(&d, "0002_todo.up.sql", "-- filled in\nCREATE TABLE t2 (id int);\n");
    rc = upgrade(&d, &p);
    cr_assert_eq(rc, 0, "once filled in: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    expect(&d, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
           "1,2");
}

/* Poll (up to 30 s) until sql, run on the server, answers want. */
static void await(struct db *d, const char *sql, const char *want)
{
    int64_t deadline = pgt_now_ms() + 30000;
    for (;;) {
        char *got = pgt_pg_query(d->pg, d->name, sql);
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
    struct db d;
    struct pgt_proc p;
    char conninfo[512];
    const char *argv[] = {"pgentry", "upgrade", NULL};
    db_init(&d);
    put(&d, "0001_t.up.sql", "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (2);\n");
    put(&d, "0002_idx.up.sql",
        "-- pgentry:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);\n");
    int rc = upgrade(&d, &p);
    cr_assert_eq(rc, 0, "rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    exec(&d, "DROP INDEX t_id_idx");
    exec(&d, "DELETE FROM pgentry_migrations WHERE version = 2");

    /* An old snapshot holds the index build back in its last wait; stop pgentry there. */
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d dbname=%s user=postgres", d.pg->dir,
             d.pg->port, d.name);
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
    expect(&d,
           "SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indexrelid = "
           "'t_id_idx'::regclass",
           "1");

    /* IF NOT EXISTS skips the statement; the invalid index is still refused. */
    rc = upgrade(&d, &p);
    cr_assert_eq(rc, 65, "rc %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "INVALID index"), "%s", p.err);
    cr_assert(strstr(p.err, "DROP INDEX CONCURRENTLY public.t_id_idx;"), "the fix: %s", p.err);
    pgt_proc_free(&p);
    expect(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "0");

    exec(&d, "DROP INDEX CONCURRENTLY public.t_id_idx");
    rc = upgrade(&d, &p);
    cr_assert_eq(rc, 0, "after the fix: rc %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    expect(&d, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id_idx'::regclass", "t");
    expect(&d, "SELECT count(*) FROM pgentry_migrations WHERE version = 2", "1");
}
