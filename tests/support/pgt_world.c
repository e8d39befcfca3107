/* One migration test's world: database, migrations directory and environment (pgt_world.h). */
#include "pgt_world.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pgt_world_init(struct pgt_world *w, const char *url_suffix)
{
    pgt_world_init_on(w, pgt_pg_shared(), url_suffix);
}

void pgt_world_init_on(struct pgt_world *w, struct pgt_pg *pg, const char *url_suffix)
{
    memset(w, 0, sizeof *w);
    w->pg = pg;
    pgt_pg_createdb(w->pg, w->db, sizeof w->db);
    pgt_pg_url(w->pg, w->db, w->url, sizeof w->url);
    pgt_tempdir(w->dir, sizeof w->dir);
    snprintf(w->env_url, sizeof w->env_url, "DATABASE_URL=%s%s", w->url,
             url_suffix ? url_suffix : "");
    snprintf(w->env_dir, sizeof w->env_dir, "PGENTRY_MIGRATIONS=%s", w->dir);
    pgt_world_setenv(w, "%s", w->env_url);
    pgt_world_setenv(w, "%s", w->env_dir);
    pgt_world_setenv(w, "PGENTRY_HEALTH_ADDR=off");
}

void pgt_world_set_url(struct pgt_world *w, const char *url)
{
    /* DATABASE_URL is always the first variable (pgt_world_init_on). */
    snprintf(w->vars[0], sizeof w->vars[0], "DATABASE_URL=%s", url);
}

void pgt_world_setenv(struct pgt_world *w, const char *fmt, ...)
{
    va_list ap;
    cr_assert_lt(w->nenv, PGT_WORLD_MAX_ENV, "too many variables for one world: %s", fmt);
    va_start(ap, fmt);
    vsnprintf(w->vars[w->nenv], sizeof w->vars[0], fmt, ap);
    va_end(ap);
    w->env[w->nenv] = w->vars[w->nenv];
    w->env[++w->nenv] = NULL;
}

void pgt_world_file(struct pgt_world *w, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    pgt_write_file(path, content);
}

int pgt_world_run(struct pgt_world *w, struct pgt_proc *p, ...)
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

char *pgt_world_query(struct pgt_world *w, const char *sql)
{
    return pgt_pg_query(w->pg, w->db, sql);
}

void pgt_world_exec(struct pgt_world *w, const char *sql)
{
    free(pgt_world_query(w, sql));
}

void pgt_world_await(struct pgt_world *w, const char *sql, const char *expected, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    for (;;) {
        char *got = pgt_world_query(w, sql);
        int done = strcmp(got, expected) == 0;
        free(got);
        if (done)
            return;
        cr_assert_lt(pgt_now_ms(), deadline, "timed out waiting for %s = %s", sql, expected);
        usleep(20000);
    }
}

PGconn *pgt_world_connect(struct pgt_world *w)
{
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d dbname=%s user=postgres", w->pg->dir,
             w->pg->port, w->db);
    PGconn *c = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

void pgt_world_assert_q(struct pgt_world *w, const char *sql, const char *expected)
{
    char *got = pgt_world_query(w, sql);
    cr_assert_str_eq(got, expected, "%s\n  got: %s\n  want: %s", sql, got, expected);
    free(got);
}
