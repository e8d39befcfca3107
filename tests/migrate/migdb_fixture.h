/* The migration integration tests' fixture: a database of their own in a given server, a
 * migrations directory, and the environment that points pgentry at both. */
#ifndef PGT_MIGDB_FIXTURE_H
#define PGT_MIGDB_FIXTURE_H

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"

struct migdb {
    struct pgt_pg *pg;
    char name[64], dir[256], url[256];
    char env_url[300], env_dir[300];
    const char *env[8]; /* room for the test's own additions before the NULL */
};

/* A new database in pg and a new migrations directory. */
static inline void migdb_init(struct migdb *d, struct pgt_pg *pg)
{
    memset(d, 0, sizeof *d);
    d->pg = pg;
    pgt_pg_createdb(pg, d->name, sizeof d->name);
    pgt_tempdir(d->dir, sizeof d->dir);
    pgt_pg_url(pg, d->name, d->url, sizeof d->url);
    snprintf(d->env_url, sizeof d->env_url, "DATABASE_URL=%s", d->url);
    snprintf(d->env_dir, sizeof d->env_dir, "PGENTRY_MIGRATIONS=%s", d->dir);
    d->env[0] = d->env_url;
    d->env[1] = d->env_dir;
    d->env[2] = "PGENTRY_HEALTH_ADDR=off";
}

/* Write the migration file d->dir/file. */
static inline void migdb_put(struct migdb *d, const char *file, const char *sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", d->dir, file);
    pgt_write_file(path, sql);
}

static inline void migdb_exec(struct migdb *d, const char *sql)
{
    free(pgt_pg_query(d->pg, d->name, sql));
}

static inline void migdb_expect(struct migdb *d, const char *sql, const char *want)
{
    char *got = pgt_pg_query(d->pg, d->name, sql);
    cr_assert_str_eq(got, want, "%s\n  got: %s\n  want: %s", sql, got, want);
    free(got);
}

/* Poll (up to timeout_ms) until sql answers want. */
static inline void migdb_await(struct migdb *d, const char *sql, const char *want, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    for (;;) {
        char *got = pgt_pg_query(d->pg, d->name, sql);
        int done = strcmp(got, want) == 0;
        free(got);
        if (done)
            return;
        cr_assert_lt(pgt_now_ms(), deadline, "timed out waiting for %s = %s", sql, want);
        usleep(20000);
    }
}

/* A libpq connection of the test's own to d's database, over the socket. */
static inline PGconn *migdb_connect(struct migdb *d)
{
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d dbname=%s user=postgres", d->pg->dir,
             d->pg->port, d->name);
    PGconn *c = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

/* Run pgentry (arguments after "pgentry", NULL-terminated) with d's environment, 60 s at most.
 * Returns the exit code; the caller frees p. */
static inline int migdb_run(struct migdb *d, struct pgt_proc *p, ...)
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
    return pgt_run(p, argv, d->env, 60000);
}

#endif
