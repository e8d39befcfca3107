/* Migrations through a real PgBouncer: transaction pooling (lease row) and session pooling. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_pgbouncer.h"

PGT_SHARED_PG_HOOKS()

#define REPLICAS 4

/* One test's database, behind its own PgBouncer, and the environment pointing through it. */
struct pooled {
    struct pgt_pg *pg;
    struct pgt_bouncer b;
    char name[64], dir[256];
    char env_url[300], env_dir[300];
    const char *env[5];
};

static void pooled_init(struct pooled *d, const char *mode)
{
    char url[256];
    memset(d, 0, sizeof *d);
    if (!pgt_bouncer_available())
        cr_skip_test("pgbouncer is not installed (scripts/install-deps.sh test)");
    d->pg = pgt_pg_shared();
    pgt_pg_createdb(d->pg, d->name, sizeof d->name);
    pgt_tempdir(d->dir, sizeof d->dir);
    pgt_bouncer_start(&d->b, d->pg, mode, 2);
    snprintf(d->env_url, sizeof d->env_url, "DATABASE_URL=%s",
             pgt_bouncer_url(&d->b, d->name, url, sizeof url));
    snprintf(d->env_dir, sizeof d->env_dir, "PGENTRY_MIGRATIONS=%s", d->dir);
    d->env[0] = d->env_url;
    d->env[1] = d->env_dir;
    d->env[2] = "PGENTRY_HEALTH_ADDR=off";
}

static void put(struct pooled *d, const char *file, const char *sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", d->dir, file);
    pgt_write_file(path, sql);
}

/* Checked directly against the server, not through the bouncer. */
static void expect(struct pooled *d, const char *sql, const char *want)
{
    char *got = pgt_pg_query(d->pg, d->name, sql);
    cr_assert_str_eq(got, want, "%s\n  got: %s\n  want: %s", sql, got, want);
    free(got);
}

/* Transactional and no-transaction migrations; every statement that runs twice shows in
 * ran (a duplicate) or fails (23505 in items). */
static void put_migrations(struct pooled *d)
{
    put(d, "0001_tables.up.sql",
        "CREATE TABLE ran (what text PRIMARY KEY DEFERRABLE INITIALLY DEFERRED);\n"
        "CREATE TABLE ran_log (what text);\nCREATE TABLE items (id int PRIMARY KEY);\n");
    put(d, "0002_index.up.sql",
        "-- pgentry:no-transaction\nINSERT INTO ran_log VALUES ('2a');\n"
        "SELECT pg_sleep(0.2);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);\n"
        "INSERT INTO ran_log VALUES ('2b');\n");
    put(d, "0003_rows.up.sql",
        "INSERT INTO items VALUES (1), (2);\n"
        "INSERT INTO ran_log VALUES ('3');\n");
    put(d, "0004_more.up.sql",
        "-- pgentry:no-transaction\nINSERT INTO ran_log VALUES ('4');\nSELECT pg_sleep(0.2);\n");
}

/* Nothing may be left holding the migration lock: no advisory lock, no live lease. */
static void expect_no_lock(struct pooled *d)
{
    expect(d,
           "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid "
           "FROM pg_database WHERE datname = current_database())",
           "0");
    char *t = pgt_pg_query(d->pg, d->name, "SELECT to_regclass('pgentry_migrations_lock')");
    if (t[0])
        expect(d, "SELECT count(*) FROM pgentry_migrations_lock", "0");
    free(t);
}

static void replicas_migrate_once(const char *mode, const char *lock_log)
{
    struct pooled d;
    struct pgt_proc p[REPLICAS];
    const char *argv[] = {"pgentry", "upgrade", NULL};
    int saw_lock_log = 0;
    pooled_init(&d, mode);
    put_migrations(&d);
    for (int i = 0; i < REPLICAS; i++)
        pgt_proc_spawn(&p[i], argv, d.env);
    for (int i = 0; i < REPLICAS; i++) {
        int rc = pgt_proc_wait(&p[i], 90000);
        cr_assert_eq(rc, 0, "replica %d: rc %d\n%s", i, rc, p[i].err);
        saw_lock_log |= strstr(p[i].err, lock_log) != NULL;
    }
    cr_assert(saw_lock_log, "some replica logs \"%s\":\n%s", lock_log, p[0].err);
    for (int i = 0; i < REPLICAS; i++)
        pgt_proc_free(&p[i]);
    expect(&d, "SELECT string_agg(what, ',' ORDER BY what) FROM ran_log", "2a,2b,3,4");
    expect(&d, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
           "1,2,3,4");
    expect(&d, "SELECT count(*) FROM items", "2");
    expect_no_lock(&d);

    /* The next deploy is neither blocked nor slowed by what the last one left. */
    put(&d, "0005_next.up.sql", "INSERT INTO ran_log VALUES ('5');\n");
    int rc = pgt_run(&p[0], argv, d.env, 60000);
    cr_assert_eq(rc, 0, "next deploy: rc %d\n%s", rc, p[0].err);
    cr_assert_lt(p[0].elapsed_ms, 10000, "next deploy took %lld ms\n%s", (long long)p[0].elapsed_ms,
                 p[0].err);
    pgt_proc_free(&p[0]);
    expect(&d, "SELECT string_agg(what, ',' ORDER BY what) FROM ran_log", "2a,2b,3,4,5");
    expect_no_lock(&d);
    pgt_bouncer_stop(&d.b);
}

Test(pooling, transaction_pooling_replicas_run_each_statement_once, .timeout = 120)
{
    replicas_migrate_once("transaction", "migration lock: lease row");
}

/* Whether a pooler pins the session cannot be proven from the client: the lease is used
 * behind any pooler, and session pooling works with it too. */
Test(pooling, session_pooling_replicas_run_each_statement_once, .timeout = 120)
{
    replicas_migrate_once("session", "migration lock: lease row (connection pooler detected)");
}

Test(pooling, wait_migrations_through_transaction_pooling_notices, .timeout = 90)
{
    struct pooled d;
    struct pgt_proc waiter, up;
    const char *wait_argv[] = {"pgentry", "--wait-migrations", "--wait-timeout", "60s", NULL};
    const char *up_argv[] = {"pgentry", "upgrade", NULL};
    pooled_init(&d, "transaction");
    put(&d, "0001_t.up.sql", "CREATE TABLE t (id int);\n");
    pgt_proc_spawn(&waiter, wait_argv, d.env);
    cr_assert_eq(pgt_wait_for_text(waiter.err_path, "waiting for another instance", 30000), 0,
                 "the waiter waits");
    int rc = pgt_run(&up, up_argv, d.env, 60000);
    cr_assert_eq(rc, 0, "upgrade: rc %d\n%s", rc, up.err);
    pgt_proc_free(&up);
    rc = pgt_proc_wait(&waiter, 30000);
    cr_assert_eq(rc, 0, "the waiter notices: rc %d\n%s", rc, waiter.err);
    cr_assert(strstr(waiter.err, "polling the history instead of LISTEN"), "%s", waiter.err);
    pgt_proc_free(&waiter);
    pgt_bouncer_stop(&d.b);
}

/* Poll (up to 30 s) until the lease row exists. */
static void await_lease(struct pooled *d)
{
    int64_t deadline = pgt_now_ms() + 30000;
    for (;;) {
        char *got = pgt_pg_query(d->pg, d->name,
                                 "SELECT CASE WHEN to_regclass('pgentry_migrations_lock') IS "
                                 "NULL THEN 'no' ELSE 'table' END");
        int table = strcmp(got, "table") == 0;
        free(got);
        if (table) {
            got = pgt_pg_query(d->pg, d->name, "SELECT count(*) FROM pgentry_migrations_lock");
            int held = strcmp(got, "1") == 0;
            free(got);
            if (held)
                return;
        }
        cr_assert_lt(pgt_now_ms(), deadline, "no lease was taken");
        usleep(50000);
    }
}

/* A migration longer than the lease: its holder renews it, the replica waiting behind it never
 * takes over, and each statement runs once. */
Test(pooling, lease_is_renewed_through_a_long_migration, .timeout = 120)
{
    struct pooled d;
    struct pgt_proc a, b;
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pooled_init(&d, "transaction");
    put(&d, "0001_log.up.sql", "CREATE TABLE ran_log (what text);\n");
    put(&d, "0002_long.up.sql",
        "-- pgentry:no-transaction\nINSERT INTO ran_log VALUES ('a');\n"
        "SELECT pg_sleep(36);\nINSERT INTO ran_log VALUES ('b');\n");
    pgt_proc_spawn(&a, argv, d.env);
    await_lease(&d);
    pgt_proc_spawn(&b, argv, d.env);
    int rc = pgt_proc_wait(&a, 90000);
    cr_assert_eq(rc, 0, "holder: rc %d\n%s", rc, a.err);
    rc = pgt_proc_wait(&b, 90000);
    cr_assert_eq(rc, 0, "waiter: rc %d\n%s", rc, b.err);
    cr_assert(strstr(b.err, "waiting for the migration lock"), "%s", b.err);
    expect(&d, "SELECT string_agg(what, ',' ORDER BY what) FROM ran_log", "a,b");
    expect_no_lock(&d);
    pgt_proc_free(&a);
    pgt_proc_free(&b);
    pgt_bouncer_stop(&d.b);
}

/* A holder killed outright leaves its lease row; it expires and the next deploy goes on. */
Test(pooling, dead_holders_lease_expires, .timeout = 120)
{
    struct pooled d;
    struct pgt_proc a, b;
    const char *argv[] = {"pgentry", "upgrade", NULL};
    pooled_init(&d, "transaction");
    put(&d, "0001_slow.up.sql",
        "-- pgentry:no-transaction\nCREATE TABLE ran_log (what text);\nSELECT pg_sleep(2);\n");
    pgt_proc_spawn(&a, argv, d.env);
    await_lease(&d);
    kill(a.pid, SIGKILL);
    pgt_proc_wait(&a, 30000);
    pgt_proc_free(&a);
    /* The no-transaction file is idempotent enough for the rerun: the table may exist. */
    put(&d, "0001_slow.up.sql",
        "-- pgentry:no-transaction\nCREATE TABLE IF NOT EXISTS ran_log (what text);\n"
        "SELECT pg_sleep(2);\n");
    int rc = pgt_run(&b, argv, d.env, 90000);
    cr_assert_eq(rc, 0, "next deploy: rc %d\n%s", rc, b.err);
    cr_assert(strstr(b.err, "waiting for the migration lock"), "the lease was honoured: %s", b.err);
    pgt_proc_free(&b);
    expect(&d, "SELECT count(*) FROM pgentry_migrations", "1");
    expect_no_lock(&d);
    pgt_bouncer_stop(&d.b);
}
