/* A silent network partition mid-migration: TCP keepalives end the wait within the bound. */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_http.h"

/* Move this test's process into a new network namespace with its loopback up, so the
 * PostgreSQL it starts, pgentry and the firewall rule are all its own. Skips when the machine
 * does not allow it (not root, no iptables). */
static void own_network(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0)
        cr_skip_test("needs root and unshare(CLONE_NEWNET)");
    cr_assert_eq(system("ip link set lo up"), 0, "ip link set lo up failed");
    if (system("iptables -L INPUT -n >/dev/null 2>&1") != 0)
        cr_skip_test("iptables is missing (scripts/install-deps.sh test)");
}

Test(keepalive, silent_partition_mid_migration_is_noticed_within_40s, .timeout = 120)
{
    struct pgt_pg pg;
    struct pgt_proc p;
    char dir[256], path[400], url[300], env_url[350], env_dir[300], env_health[64], sql[200];
    own_network();
    pgt_pg_init(&pg);
    pgt_pg_start(&pg);
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/0001_slow.up.sql", dir);
    pgt_write_file(path, "SELECT pg_sleep(60);\n");
    int hport = pgt_free_port();
    pgt_pg_url(&pg, "postgres", url, sizeof url);
    snprintf(env_url, sizeof env_url, "DATABASE_URL=%s", url);
    snprintf(env_dir, sizeof env_dir, "PGENTRY_MIGRATIONS=%s", dir);
    snprintf(env_health, sizeof env_health, "PGENTRY_HEALTH_ADDR=127.0.0.1:%d", hport);
    /* Once noticed, the connection is sought again (the partition stays): give up soon. */
    const char *env[] = {env_url, env_dir, env_health, "PGENTRY_WAIT_TIMEOUT=2s", NULL};
    const char *argv[] = {"pgentry", NULL};
    pgt_proc_spawn(&p, argv, env);

    /* The migration's statement is running: cut the database off without a reset. */
    int64_t deadline = pgt_now_ms() + 30000;
    for (;;) {
        char *n = pgt_pg_query(&pg, "postgres",
                               "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                               "'SELECT pg_sleep(60)%' AND pid <> pg_backend_pid()");
        int running = strcmp(n, "0") != 0;
        free(n);
        if (running)
            break;
        cr_assert_lt(pgt_now_ms(), deadline, "the migration never ran:\n%s",
                     pgt_read_file(p.err_path));
        usleep(50000);
    }
    snprintf(sql, sizeof sql, "iptables -I INPUT -p tcp --dport %d -j DROP", pg.port);
    cr_assert_eq(system(sql), 0, "%s failed", sql);
    int64_t cut = pgt_now_ms();

    /* pgentry stays alive (and says so) until the keepalives give up on the database. */
    int alive = 0;
    struct pgt_http_resp r;
    const char *noticed = "connection lost during migration 0001_slow";
    while (pgt_now_ms() - cut < 45000 && pgt_wait_for_text(p.err_path, noticed, 20) < 0) {
        int status = pgt_http_get("127.0.0.1", hport, "GET", "/livez", &r);
        if (status < 0)
            break;
        cr_assert_eq(status, 200, "/livez answered %d during the partition", status);
        alive++;
        usleep(500000);
    }
    int64_t took = pgt_now_ms() - cut;
    int rc = pgt_proc_wait(&p, 20000);
    cr_assert_gt(alive, 10, "/livez was not served during the partition (%d answers)", alive);
    cr_assert(strstr(p.err, noticed), "%s", p.err);
    cr_assert_leq(took, 40000, "noticed after %lld ms, not within 40 s", (long long)took);
    /* Not regained within --wait-timeout: the partition is still there. */
    cr_assert_eq(rc, 69, "exit %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_pg_stop(&pg);
    pgt_pg_destroy(&pg);
}
