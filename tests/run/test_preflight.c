/* Which connection a run uses: --migrate-database-url for pgentry's own work, DATABASE_URL for
 * COMMAND, and a writable primary whenever migrations run. Real binary, real servers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_standby.h"

PGT_SHARED_PG_HOOKS()

/* A pooler's URL that nothing answers, with its own password. */
#define POOLER_PW "Pooler-pw-77"

struct setup {
    char db[64], dir[256], out[300];
    char direct[300], pooled[300];
    char e_pooled[340], e_dir[300], e_direct[340];
};

static void setup(struct setup *s, struct pgt_pg *pg)
{
    pgt_pg_createdb(pg, s->db, sizeof s->db);
    pgt_tempdir(s->dir, sizeof s->dir);
    snprintf(s->out, sizeof s->out, "%s/seen", s->dir);
    char mig[300];
    snprintf(mig, sizeof mig, "%s/migrations/0001_t.up.sql", s->dir);
    pgt_write_file(mig, "CREATE TABLE t (id int);\n");
    pgt_pg_url(pg, s->db, s->direct, sizeof s->direct);
    snprintf(s->pooled, sizeof s->pooled, "postgres://app:%s@127.0.0.1:%d/%s", POOLER_PW,
             pgt_free_port(), s->db);
    snprintf(s->e_pooled, sizeof s->e_pooled, "DATABASE_URL=%s", s->pooled);
    snprintf(s->e_dir, sizeof s->e_dir, "PGENTRY_MIGRATIONS=%s/migrations", s->dir);
    snprintf(s->e_direct, sizeof s->e_direct, "PGENTRY_MIGRATE_DATABASE_URL=%s", s->direct);
}

static void assert_no_secret(const struct pgt_proc *p)
{
    cr_assert_null(strstr(p->err, PGT_PASSWORD), "password leaked:\n%s", p->err);
    cr_assert_null(strstr(p->err, POOLER_PW), "pooler password leaked:\n%s", p->err);
}

Test(preflight, migrate_database_url_waits_and_migrates_while_command_keeps_database_url,
     .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct setup s;
    struct pgt_proc p;
    setup(&s, pg);
    char script[400];
    snprintf(script, sizeof script, "printf %%s \"$DATABASE_URL\" > '%s'", s.out);
    const char *env[] = {s.e_pooled, s.e_dir, s.e_direct, NULL};
    const char *argv[] = {"pgentry", "--health-addr", "off", "--wait-timeout", "10s", "--", "sh",
                          "-c",      script,          NULL};
    int rc = pgt_run(&p, argv, env, 30000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    char *seen = pgt_read_file(s.out);
    cr_assert_str_eq(seen, s.pooled, "COMMAND's DATABASE_URL");
    free(seen);
    char *t = pgt_pg_query(pg, s.db, "SELECT to_regclass('t') IS NOT NULL");
    cr_assert_str_eq(t, "t", "the migration was not applied through the direct URL");
    free(t);
    cr_assert(strstr(p.err, "database is ready"), "%s", p.err);
    assert_no_secret(&p);
    pgt_proc_free(&p);
}

Test(preflight, migrate_cmd_gets_the_direct_url_and_the_flag_works_too, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct setup s;
    struct pgt_proc p;
    setup(&s, pg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "printf %%s \"$DATABASE_URL\" > '%s'", s.out);
    const char *env[] = {s.e_pooled, NULL};
    const char *argv[] = {"pgentry", "--health-addr",
                          "off",     "--migrate-cmd",
                          cmd,       "--wait-timeout",
                          "10s",     "--migrate-database-url",
                          s.direct,  NULL};
    int rc = pgt_run(&p, argv, env, 30000);
    cr_assert_eq(rc, 0, "exit %d\n%s", rc, p.err);
    char *seen = pgt_read_file(s.out);
    cr_assert_str_eq(seen, s.direct, "--migrate-cmd's DATABASE_URL");
    free(seen);
    assert_no_secret(&p);
    pgt_proc_free(&p);

    /* Without it, the pooled URL is all there is: nothing answers there. */
    const char *argv2[] = {"pgentry", "--health-addr", "off", "--wait-timeout", "1s", NULL};
    const char *env2[] = {s.e_pooled, s.e_dir, NULL};
    rc = pgt_run(&p, argv2, env2, 30000);
    cr_assert_eq(rc, 69, "exit %d\n%s", rc, p.err);
    assert_no_secret(&p);
    pgt_proc_free(&p);
}

Test(preflight, migrations_wait_for_a_primary_whatever_target_session_attrs_says, .timeout = 90)
{
    struct pgt_pg *pg = pgt_pg_shared();
    struct pgt_pg sb;
    struct pgt_proc p;
    struct setup s;
    char url[400], e_url[440];
    setup(&s, pg);
    pgt_pg_standby(pg, &sb);
    snprintf(url, sizeof url, "postgres://postgres:%s@127.0.0.1:%d/%s?target_session_attrs=any",
             PGT_PASSWORD, sb.port, s.db);
    snprintf(e_url, sizeof e_url, "DATABASE_URL=%s", url);
    const char *env[] = {e_url, s.e_dir, NULL};

    /* Only waiting: the standby is what was asked for. */
    const char *wait[] = {"pgentry", "wait", "--wait-timeout", "10s", NULL};
    cr_assert_eq(pgt_run(&p, wait, env, 30000), 0, "%s", p.err);
    pgt_proc_free(&p);
    const char *nomig[] = {"pgentry", "--no-migrate", "--health-addr", "off", NULL};
    cr_assert_eq(pgt_run(&p, nomig, env, 30000), 0, "%s", p.err);
    pgt_proc_free(&p);

    /* Migrations need a primary: the standby is not good enough, and nothing is applied. */
    const char *run[] = {"pgentry", "--health-addr", "off", "--wait-timeout", "1s", NULL};
    int rc = pgt_run(&p, run, env, 30000);
    cr_assert_eq(rc, 69, "exit %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "migrations need a writable primary"), "%s", p.err);
    cr_assert(strstr(p.err, "outcome=standby"), "%s", p.err);
    pgt_proc_free(&p);
    char *t = pgt_pg_query(pg, s.db, "SELECT to_regclass('t') IS NULL");
    cr_assert_str_eq(t, "t");
    free(t);
    pgt_pg_destroy(&sb);
}
