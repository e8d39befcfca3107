/* --create-database against a real PostgreSQL: quoting, racing replicas, refusals. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"

PGT_SHARED_PG_HOOKS()

static unsigned counter;

/* A database name unique to this test, that needs quoting: a dash, a space, double quotes. */
static void odd_name(char *name, size_t size, const char *tag)
{
    snprintf(name, size, "my-db \"%s\" %d-%u", tag, (int)getpid(), counter++);
}

/* Its URL form: space %20, double quote %22. */
static void url_for(const struct pgt_pg *pg, const char *user, const char *name, char *url,
                    size_t size)
{
    char enc[256];
    size_t n = 0;
    for (const char *p = name; *p && n + 4 < sizeof enc; p++) {
        if (*p == ' ' || *p == '"')
            n += (size_t)snprintf(enc + n, sizeof enc - n, "%%%02X", (unsigned char)*p);
        else
            enc[n++] = *p;
    }
    enc[n] = '\0';
    snprintf(url, size, "postgres://%s:%s@127.0.0.1:%d/%s", user, PGT_PASSWORD, pg->port, enc);
}

static char *exists(const struct pgt_pg *pg, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_database WHERE datname = '%s'", name);
    return pgt_pg_query(pg, "postgres", sql);
}

static void spawn_wait(struct pgt_proc *p, const char *url, int create)
{
    char env_url[512];
    snprintf(env_url, sizeof env_url, "DATABASE_URL=%s", url);
    const char *env[] = {env_url, "PGENTRY_HEALTH_ADDR=off", "PGENTRY_WAIT_TIMEOUT=20s",
                         create ? "PGENTRY_CREATE_DATABASE=1" : NULL, NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    pgt_proc_spawn(p, argv, env);
}

Test(createdb, a_name_that_needs_quoting_is_created, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char name[128], url[512];
    struct pgt_proc p;
    odd_name(name, sizeof name, "q");
    url_for(pg, "postgres", name, url, sizeof url);
    spawn_wait(&p, url, 1);
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 0, "wait --create-database: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "database created"), "%s", p.err);
    pgt_proc_free(&p);
    char *n = exists(pg, name);
    cr_assert_str_eq(n, "1", "the database exists under its exact name");
    free(n);

    /* Exists now: nothing to create, no message. */
    spawn_wait(&p, url, 1);
    rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 0, "second run: %d\n%s", rc, p.err);
    cr_assert_null(strstr(p.err, "creat"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(createdb, without_the_flag_a_missing_database_is_77, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char name[128], url[512];
    struct pgt_proc p;
    odd_name(name, sizeof name, "no");
    url_for(pg, "postgres", name, url, sizeof url);
    spawn_wait(&p, url, 0);
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 77, "without --create-database: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "3D000"), "%s", p.err);
    pgt_proc_free(&p);
    char *n = exists(pg, name);
    cr_assert_str_eq(n, "0");
    free(n);
}

Test(createdb, replicas_racing_to_create_both_succeed, .timeout = 90)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char name[128], url[512];
    struct pgt_proc p[4];
    odd_name(name, sizeof name, "race");
    url_for(pg, "postgres", name, url, sizeof url);
    for (int i = 0; i < 4; i++)
        spawn_wait(&p[i], url, 1);
    for (int i = 0; i < 4; i++) {
        int rc = pgt_proc_wait(&p[i], 60000);
        cr_assert_eq(rc, 0, "replica %d: %d\n%s", i, rc, p[i].err);
        pgt_proc_free(&p[i]);
    }
    char *n = exists(pg, name);
    cr_assert_str_eq(n, "1");
    free(n);
}

Test(createdb, a_role_without_createdb_is_77_with_the_fix, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char name[128], url[512], role[64], sql[256];
    struct pgt_proc p;
    snprintf(role, sizeof role, "nocreate_%d_%u", (int)getpid(), counter++);
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN NOCREATEDB PASSWORD '%s'", role, PGT_PASSWORD);
    free(pgt_pg_query(pg, "postgres", sql));
    odd_name(name, sizeof name, "priv");
    url_for(pg, role, name, url, sizeof url);
    spawn_wait(&p, url, 1);
    int rc = pgt_proc_wait(&p, 30000);
    cr_assert_eq(rc, 77, "no CREATEDB: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "42501"), "%s", p.err);
    cr_assert(strstr(p.err, "CREATEDB"), "the fix is named:\n%s", p.err);
    cr_assert_null(strstr(p.err, PGT_PASSWORD), "no password in the logs");
    pgt_proc_free(&p);
    char *n = exists(pg, name);
    cr_assert_str_eq(n, "0");
    free(n);
}
