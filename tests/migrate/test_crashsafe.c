/* CRASH SAFETY TRIAL: pgentry is SIGKILLed at a random moment while it applies 200 migrations,
 * then run again to the end; the database must be consistent every time. The seed is logged
 * (PGT_CRASH_SEED=N replays a run). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgt_world.h"
#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_pgbouncer.h"

PGT_SHARED_PG_HOOKS()

#define MIGRATIONS    200
#define TRIALS        20
#define POOLED_TRIALS 2
#define NOTX_EVERY    8 /* every 8th migration is -- pgentry:no-transaction */

/* splitmix64: small, seeded, the same sequence everywhere. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t seed_of_run(void)
{
    const char *s = getenv("PGT_CRASH_SEED");
    if (s && *s)
        return strtoull(s, NULL, 10);
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
}

/* Each migration leaves one row in side per run of it. Transactional ones are an INSERT and an
 * UPDATE (every 20th a CREATE TABLE too): a second run would show as a second row, or fail.
 * No-transaction ones are two autocommit statements, idempotent DDL first, as the
 * documentation advises. Small on purpose: 20 trials of 200 must fit in well under a minute. */
static void write_migrations(struct pgt_world *d)
{
    char name[64], sql[512];
    pgt_world_file(d, "0001_side.up.sql",
                   "CREATE TABLE side (version int NOT NULL, kind text NOT NULL);\n"
                   "INSERT INTO side VALUES (1, 'tx');\n");
    for (int v = 2; v <= MIGRATIONS; v++) {
        snprintf(name, sizeof name, "%04d_m%d.up.sql", v, v);
        if (v % NOTX_EVERY == 0)
            snprintf(sql, sizeof sql,
                     "-- pgentry:no-transaction\n"
                     "CREATE TABLE IF NOT EXISTS nt_%d (id int);\n"
                     "INSERT INTO side VALUES (%d, 'notx');\n",
                     v, v);
        else if (v % 20 == 5)
            snprintf(sql, sizeof sql,
                     "CREATE TABLE t_%d (id int PRIMARY KEY);\n"
                     "INSERT INTO side VALUES (%d, 'tx');\n",
                     v, v);
        else
            snprintf(sql, sizeof sql,
                     "INSERT INTO side VALUES (%d, 'tx');\n"
                     "UPDATE side SET kind = 'tx' WHERE version = %d;\n",
                     v, v);
        pgt_world_file(d, name, sql);
    }
}

/* The number of history rows, or 0 while the table does not exist yet. */
static long applied(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT count(*) FROM pgentry_migrations");
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return n;
}

/* Start pgentry, SIGKILL it once the history has reached k rows and a random pause more, wait
 * for its death. Returns the history rows at the kill. */
static long kill_at_random(struct pgt_world *d, uint64_t *rnd, long k, int trial)
{
    struct pgt_proc p;
    const char *argv[] = {"pgentry", "upgrade", NULL};
    PGconn *c = pgt_world_connect(d);
    pgt_proc_spawn(&p, argv, d->env);
    int64_t deadline = pgt_now_ms() + 30000;
    while (k > 0 && applied(c) < k) {
        cr_assert_lt(pgt_now_ms(), deadline, "trial %d: %ld migrations never applied", trial, k);
        usleep(2000);
    }
    /* Where in the next migration the kill lands: anywhere in a few milliseconds. */
    usleep((useconds_t)(next_random(rnd) % 8000));
    kill(p.pid, SIGKILL);
    int rc = pgt_proc_wait(&p, 30000);
    long at = applied(c);
    cr_assert(rc == 128 + SIGKILL || (rc == 0 && at == MIGRATIONS),
              "trial %d: killed pgentry: rc %d\n%s", trial, rc, p.err);
    pgt_proc_free(&p);
    PQfinish(c);
    return at;
}

/* Every version recorded once; each transactional migration ran exactly once; a no-transaction
 * one ran twice at most, and only the one the kill interrupted (the first not recorded). */
static void check_consistent(struct pgt_world *d, long at_kill, int trial)
{
    char sql[512], want[64];
    (void)trial;
    snprintf(want, sizeof want, "%d|%d", MIGRATIONS, MIGRATIONS);
    pgt_world_assert_q(d,
                       "SELECT count(*) || '|' || count(DISTINCT version) FROM pgentry_migrations "
                       "WHERE version BETWEEN 1 AND 200",
                       want);
    pgt_world_assert_q(d, "SELECT count(DISTINCT version) FROM side", "200");
    pgt_world_assert_q(d,
                       "SELECT count(*) FROM (SELECT version FROM side WHERE kind = 'tx' GROUP BY "
                       "version HAVING count(*) <> 1) x",
                       "0");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT version FROM side GROUP BY version HAVING count(*) > 1 "
             "AND NOT (version = %ld AND version %% %d = 0 AND count(*) = 2)) x",
             at_kill + 1, NOTX_EVERY);
    pgt_world_assert_q(d, sql, "0");
    /* Nothing of the killed run holds a lock any more: no advisory lock, no lease row. */
    pgt_world_assert_q(d,
                       "SELECT count(*) FROM pg_locks l JOIN pg_database b ON b.oid = l.database "
                       "WHERE l.locktype = 'advisory' AND b.datname = current_database()",
                       "0");
    char *lease = pgt_pg_query(d->pg, d->db, "SELECT to_regclass('pgentry_migrations_lock')");
    if (lease[0])
        pgt_world_assert_q(d, "SELECT count(*) FROM pgentry_migrations_lock", "0");
    free(lease);
}

/* trials rounds on d (whose environment says how pgentry connects): a fresh schema, a kill at
 * a random moment, a rerun that must succeed within rerun_max_ms, a consistency check. */
static void run_trials(struct pgt_world *d, const char *what, int trials, int64_t rerun_max_ms)
{
    uint64_t seed = seed_of_run(), rnd = seed;
    fprintf(stderr, "crashsafe %s: seed %llu (PGT_CRASH_SEED=%llu replays it)\n", what,
            (unsigned long long)seed, (unsigned long long)seed);
    write_migrations(d);
    int64_t started = pgt_now_ms();
    for (int trial = 0; trial < trials; trial++) {
        struct pgt_proc p;
        /* A fresh schema (cheaper than a fresh database): no history, no side table, no lease. */
        pgt_world_exec(d, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        int64_t t0 = pgt_now_ms();
        long k = (long)(next_random(&rnd) % MIGRATIONS);
        long at = kill_at_random(d, &rnd, k, trial);
        int rc = pgt_world_run(d, &p, "upgrade", NULL);
        cr_assert_eq(rc, 0, "%s trial %d (seed %llu, killed at %ld applied): rerun rc %d\n%s", what,
                     trial, (unsigned long long)seed, at, rc, p.err);
        cr_assert_lt(p.elapsed_ms, rerun_max_ms, "%s trial %d: the rerun took %lld ms\n%s", what,
                     trial, (long long)p.elapsed_ms, p.err);
        int64_t rerun_ms = p.elapsed_ms;
        pgt_proc_free(&p);
        check_consistent(d, at, trial);
        fprintf(stderr,
                "crashsafe %s: trial %d: killed after %ld of %d applied, rerun ok in %lld ms "
                "(trial %lld ms)\n",
                what, trial, at, MIGRATIONS, (long long)rerun_ms, (long long)(pgt_now_ms() - t0));
    }
    fprintf(stderr, "crashsafe %s: %d trials in %lld ms\n", what, trials,
            (long long)(pgt_now_ms() - started));
}

/* Direct connections: the session advisory lock dies with the killed pgentry's session, so the
 * rerun never waits for --lock-wait (20 s here; it must be done well before). */
Test(crashsafe, sigkill_at_a_random_moment_then_a_rerun_ends_consistent, .timeout = 300)
{
    struct pgt_world d;
    pgt_world_init(&d, NULL);
    pgt_world_setenv(&d, "PGENTRY_LOCK_WAIT=20s");
    run_trials(&d, "direct", TRIALS, 15000);
}

/* Through PgBouncer in transaction pooling: the lock is a lease row, which a killed holder
 * leaves behind until it expires (30 s): the rerun may wait that long, not longer. Fewer trials,
 * each may cost that wait. */
Test(crashsafe, through_transaction_pooling_a_killed_holders_lease_expires, .timeout = 300)
{
    struct pgt_world d;
    struct pgt_bouncer b;
    char url[256];
    if (!pgt_bouncer_available())
        cr_skip_test("pgbouncer is not installed (scripts/install-deps.sh test)");
    pgt_world_init(&d, NULL);
    pgt_bouncer_start(&b, d.pg, "transaction", 2);
    pgt_world_set_url(&d, pgt_bouncer_url(&b, d.db, url, sizeof url));
    pgt_world_setenv(&d, "PGENTRY_LOCK_WAIT=60s");
    run_trials(&d, "pgbouncer", POOLED_TRIALS, 50000);
    pgt_bouncer_stop(&b);
}
