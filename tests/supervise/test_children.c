/* What every child of pgentry inherits: COMMAND and --migrate-cmd alike, the real binary. */
#include "pgt_hooks.h"
#include "supervise_test.h"

PGT_SHARED_PG_HOOKS()

TestSuite(children, .fini = kill_leftovers);

/* A database of its own, an empty migrations directory, a scratch dir every user may write. */
struct world {
    char db[64], url[256], dir[256], mig[300];
    char e_url[300], e_mig[340];
};

static void world_init(struct world *w)
{
    char ignored[320];
    struct pgt_pg *pg = pgt_pg_shared();
    memset(w, 0, sizeof *w);
    pgt_pg_createdb(pg, w->db, sizeof w->db);
    pgt_pg_url(pg, w->db, w->url, sizeof w->url);
    scratch(w->dir, sizeof w->dir, ignored, sizeof ignored, "x");
    snprintf(w->mig, sizeof w->mig, "%s/migrations", w->dir);
    cr_assert_eq(mkdir(w->mig, 0755), 0);
    snprintf(w->e_url, sizeof w->e_url, "DATABASE_URL=%s", w->url);
    snprintf(w->e_mig, sizeof w->e_mig, "PGENTRY_MIGRATIONS=%s", w->mig);
}

static void run_ok(struct world *w, const char *const *argv)
{
    struct pgt_proc p;
    const char *env[] = {w->e_url, w->e_mig, NULL};
    pgt_proc_spawn(&p, argv, env);
    if (nstarted < MAX_STARTED)
        started[nstarted++] = p.pid;
    int rc = pgt_proc_wait(&p, 60000);
    cr_assert_eq(rc, 0, "exit %d, stderr:\n%s", rc, p.err);
    pgt_proc_free(&p);
}

static void assert_only_stdio(const char *file, const char *who)
{
    cr_assert_eq(count_lines(file, "fds=0,1,2"), 1, "%s inherited descriptors:\n%s", who,
                 pgt_read_file(file));
}

Test(children, command_and_migrate_cmd_inherit_only_stdio, .timeout = 120)
{
    struct world w;
    char f_mig[400], f_cmd[400], f_exec[400], mig_cmd[500], http[64], health[64];
    world_init(&w);
    int port = pgt_free_port();
    pid_t srv = pgt_http_server(port, 200);
    snprintf(http, sizeof http, "http://127.0.0.1:%d/", port);
    snprintf(health, sizeof health, "127.0.0.1:%d", pgt_free_port());
    snprintf(f_mig, sizeof f_mig, "%s/migrate-cmd", w.dir);
    snprintf(f_cmd, sizeof f_cmd, "%s/command", w.dir);
    snprintf(f_exec, sizeof f_exec, "%s/exec", w.dir);
    snprintf(mig_cmd, sizeof mig_cmd, "exec %s fds %s", CHILD, f_mig);
    /* Everything that makes descriptors at once: a database session (held by the migrate
     * command's lock), libcurl (an HTTP wait, the app's health), the health server. */
    const char *argv[] = {"pgentry", "--health-addr",
                          health,    "--wait-http",
                          http,      "--app-health-url",
                          http,      "--migrate-cmd",
                          mig_cmd,   "--",
                          CHILD,     "fds",
                          f_cmd,     NULL};
    run_ok(&w, argv);
    assert_only_stdio(f_mig, "--migrate-cmd");
    assert_only_stdio(f_cmd, "COMMAND");

    /* --exec replaces pgentry: what pgentry had open must not survive into the app. */
    const char *argv_exec[] = {"pgentry", "--wait-http", http,   "--exec", "--",
                               CHILD,     "fds",         f_exec, NULL};
    run_ok(&w, argv_exec);
    assert_only_stdio(f_exec, "--exec COMMAND");
    pgt_kill(srv);
}

/* The identity lines of CHILD status in file: uid, gid and only that group, and HOME. */
static void assert_identity(const char *file, const char *who)
{
    char *got = pgt_read_file(file);
    cr_assert_eq(count_lines(file, "Uid:\t65534\t65534\t65534\t65534"), 1, "%s uid:\n%s", who, got);
    cr_assert_eq(count_lines(file, "Gid:\t65534\t65534\t65534\t65534"), 1, "%s gid:\n%s", who, got);
    cr_assert_eq(count_lines(file, "Groups:\t65534 "), 1, "%s groups:\n%s", who, got);
    cr_assert_eq(count_lines(file, "HOME=/nonexistent"), 1, "%s HOME:\n%s", who, got);
    free(got);
}

Test(children, user_applies_to_migrate_cmd_as_to_command, .timeout = 120)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch users");
    struct world w;
    char f_mig[400], f_cmd[400], f_init[400], mig_cmd[500], init_cmd[500];
    world_init(&w);
    snprintf(f_mig, sizeof f_mig, "%s/migrate-cmd", w.dir);
    snprintf(f_cmd, sizeof f_cmd, "%s/command", w.dir);
    snprintf(f_init, sizeof f_init, "%s/init", w.dir);
    snprintf(mig_cmd, sizeof mig_cmd, "exec %s status %s", CHILD, f_mig);
    const char *argv[] = {"pgentry", "--health-addr", "off",   "--user",
                          "nobody",  "--migrate-cmd", mig_cmd, "--",
                          CHILD,     "status",        f_cmd,   NULL};
    run_ok(&w, argv);
    assert_identity(f_mig, "--migrate-cmd");
    assert_identity(f_cmd, "COMMAND");

    /* The init-container form: no COMMAND, the migrate command still runs as the user. */
    snprintf(init_cmd, sizeof init_cmd, "exec %s status %s", CHILD, f_init);
    const char *argv_init[] = {"pgentry", "--health-addr", "off",    "--user",
                               "nobody",  "--migrate-cmd", init_cmd, NULL};
    run_ok(&w, argv_init);
    assert_identity(f_init, "--migrate-cmd without COMMAND");
}
