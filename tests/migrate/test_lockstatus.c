/* The migration lock and the statement under it, seen in /status and /metrics of the real binary:
 * one instance holds the lock and runs a slow migration, a second one waits for it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_http.h"

PGT_SHARED_PG_HOOKS()

struct inst {
    struct pgt_proc p;
    int port;
    char env[4][600];
    const char *envp[5];
};

static void inst_start(struct inst *in, const char *url, const char *dir)
{
    in->port = pgt_free_port();
    snprintf(in->env[0], sizeof in->env[0], "DATABASE_URL=%s", url);
    snprintf(in->env[1], sizeof in->env[1], "PGENTRY_MIGRATIONS=%s", dir);
    snprintf(in->env[2], sizeof in->env[2], "PGENTRY_HEALTH_ADDR=127.0.0.1:%d", in->port);
    snprintf(in->env[3], sizeof in->env[3], "PGENTRY_LOG_LEVEL=debug");
    for (int i = 0; i < 4; i++)
        in->envp[i] = in->env[i];
    in->envp[4] = NULL;
    const char *argv[] = {"pgentry", NULL};
    pgt_proc_spawn(&in->p, argv, in->envp);
}

/* Poll path until its body contains every needle (up to timeout_ms); the last body into out. */
static int poll_until(int port, const char *path, const char *const *needles, char *out,
                      size_t size, int timeout_ms)
{
    int64_t end = pgt_now_ms() + timeout_ms;
    while (pgt_now_ms() < end) {
        struct pgt_http_resp r;
        if (pgt_http_get("127.0.0.1", port, "GET", path, &r) == 200) {
            snprintf(out, size, "%s", r.body);
            int all = 1;
            for (const char *const *n = needles; *n; n++)
                all = all && strstr(r.body, *n);
            if (all)
                return 0;
        }
        usleep(20000);
    }
    return -1;
}

static void assert_promtool(const char *body)
{
    static char out[16384];
    char err[256];
    cr_assert_eq(pgt_prom_check(body, err, sizeof err), 0, "%s\n%s", err, body);
    int rc = pgt_pipe_cmd("promtool check metrics", body, out, sizeof out);
    if (rc != 127)
        cr_assert_eq(rc, 0, "promtool: %s\n%s", out, body);
}

Test(lockstatus, holder_and_waiter_show_the_lock_and_the_running_statement, .timeout = 90)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char db[64], url[256], dir[256], path[400], err[256];
    static char body[65536];
    struct inst a, b;
    pgt_pg_createdb(pg, db, sizeof db);
    pgt_pg_url(pg, db, url, sizeof url);
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/0001_slow.up.sql", dir);
    pgt_write_file(path, "CREATE TABLE t (id int);\n\nSELECT pg_sleep(6);\n");

    inst_start(&a, url, dir);
    const char *held[] = {"\"lock\":{\"state\":\"held\",\"holder\":\"pgentry@",
                          "\"running\":{\"version\":\"0001\",\"name\":\"slow\",\"line\":3}",
                          "\"since\":\"20", NULL};
    cr_assert_eq(poll_until(a.port, "/status", held, body, sizeof body, 30000), 0,
                 "the holder's /status: %s", body);
    cr_assert_eq(pgt_json_check(body, strlen(body), err, sizeof err), 0, "%s: %s", err, body);
    const char *held_m[] = {"\npgentry_migration_lock_state{state=\"held\"} 1\n",
                            "\npgentry_migration_running_version 1\n",
                            "\npgentry_migration_running_line 3\n", NULL};
    cr_assert_eq(poll_until(a.port, "/metrics", held_m, body, sizeof body, 5000), 0, "%s", body);
    assert_promtool(body);

    inst_start(&b, url, dir);
    const char *waiting[] = {"\"lock\":{\"state\":\"waiting\",\"holder\":\"pgentry@",
                             "\"since\":null", "\"running\":null", NULL};
    cr_assert_eq(poll_until(b.port, "/status", waiting, body, sizeof body, 30000), 0,
                 "the waiter's /status: %s", body);
    cr_assert_eq(pgt_json_check(body, strlen(body), err, sizeof err), 0, "%s: %s", err, body);
    /* The waiter names the holder by its pid: the holder's own process. */
    char holder_pid[32];
    snprintf(holder_pid, sizeof holder_pid, ":%ld\"", (long)a.p.pid);
    cr_assert(strstr(body, holder_pid), "holder is not pid %ld: %s", (long)a.p.pid, body);
    const char *waiting_m[] = {"\npgentry_migration_lock_state{state=\"waiting\"} 1\n",
                               "\npgentry_migration_lock_state{state=\"held\"} 0\n", NULL};
    cr_assert_eq(poll_until(b.port, "/metrics", waiting_m, body, sizeof body, 5000), 0, "%s", body);
    assert_promtool(body);
    cr_assert_null(strstr(body, "pgentry_migration_running_line"), "%s", body);

    cr_assert_eq(pgt_proc_wait(&a.p, 30000), 0, "%s", a.p.err);
    cr_assert_eq(pgt_proc_wait(&b.p, 30000), 0, "%s", b.p.err);
    pgt_proc_free(&a.p);
    pgt_proc_free(&b.p);
}
