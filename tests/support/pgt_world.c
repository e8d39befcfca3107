/* One migration test's world: database, migrations directory and environment (pgt_world.h). */
#include "pgt_world.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgt_world_init(struct pgt_world *w, const char *url_suffix)
{
    memset(w, 0, sizeof *w);
    w->pg = pgt_pg_shared();
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

void pgt_world_assert_q(struct pgt_world *w, const char *sql, const char *expected)
{
    char *got = pgt_world_query(w, sql);
    cr_assert_str_eq(got, expected, "%s\n  got: %s\n  want: %s", sql, got, expected);
    free(got);
}
