/* Migrations that must never be recorded as applied: empty files, invalid indexes left behind. */
#include <criterion/criterion.h>
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
