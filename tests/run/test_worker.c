/* The database phases in a forked worker: its state reaches the supervisor, its death or the
 * supervisor's is never silent, stop signals reach it, and the supervisor keeps what is its. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/run/worker.h"
#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_http.h"

PGT_SHARED_PG_HOOKS()

Test(worker, merge_keeps_what_the_supervisor_owns, .timeout = 10)
{
    struct pge_runstate sup, wrk;
    pge_runstate_init(&sup);
    pge_runstate_init(&wrk);
    sup.stopping = 1;
    sup.app.pid = 42;
    sup.app.running = 1;
    wrk.phase = PGE_PHASE_MIGRATING;
    wrk.db.attempts = 7;
    strcpy(wrk.running.name, "add_users");
    wrk.worker_log_dropped = 3;
    wrk.app.pid = 99; /* never the worker's to say */
    pge_worker_merge(&sup, &wrk);
    cr_assert_eq(sup.phase, PGE_PHASE_MIGRATING);
    cr_assert_eq(sup.db.attempts, 7);
    cr_assert_str_eq(sup.running.name, "add_users");
    cr_assert_eq(sup.worker_log_dropped, 3);
    cr_assert_eq(sup.stopping, 1, "the supervisor's stop flag was lost");
    cr_assert_eq(sup.app.pid, 42);
    cr_assert_eq(sup.app.running, 1);
    /* A stop the worker saw (a signal sent to it directly) shows too. */
    sup.stopping = 0;
    wrk.stopping = 1;
    pge_worker_merge(&sup, &wrk);
    cr_assert_eq(sup.stopping, 1);
}

/* The first line of a /proc file (their size is 0: read them as streams), "" when none. */
static void proc_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    buf[0] = '\0';
    if (f && !fgets(buf, (int)size, f))
        buf[0] = '\0';
    if (f)
        fclose(f);
}

/* The only child of pgentry pid while it waits or migrates: the worker. */
static pid_t worker_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    int64_t deadline = pgt_now_ms() + 10000;
    while (pgt_now_ms() < deadline) {
        proc_line(path, line, sizeof line);
        long w = strtol(line, NULL, 10);
        if (w > 0)
            return (pid_t)w;
        usleep(10000);
    }
    return 0;
}

/* Gone: no such process, or a zombie nobody has reaped yet. */
static int gone(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    proc_line(path, line, sizeof line);
    const char *close_paren = strrchr(line, ')');
    return !close_paren || close_paren[1] == '\0' || close_paren[2] == 'Z';
}

static int await_gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    while (pgt_now_ms() < deadline) {
        if (gone(pid))
            return 0;
        usleep(10000);
    }
    return -1;
}

/* pgentry waiting for a database that is down, with an app that leaves a marker. */
struct waiting {
    struct pgt_proc p;
    char dir[256], marker[300], cmd[400], e_url[300], e_dir[300];
    const char *env[4];
    pid_t worker;
};

static void start_waiting(struct waiting *w)
{
    memset(w, 0, sizeof *w);
    pgt_tempdir(w->dir, sizeof w->dir);
    snprintf(w->marker, sizeof w->marker, "%s/app-started", w->dir);
    snprintf(w->cmd, sizeof w->cmd, "touch %s", w->marker);
    snprintf(w->e_url, sizeof w->e_url, "DATABASE_URL=postgres://postgres:%s@127.0.0.1:%d/db",
             PGT_PASSWORD, pgt_free_port());
    snprintf(w->e_dir, sizeof w->e_dir, "PGENTRY_MIGRATIONS=%s", w->dir);
    w->env[0] = w->e_url;
    w->env[1] = w->e_dir;
    w->env[2] = "PGENTRY_HEALTH_ADDR=off";
    const char *argv[] = {"pgentry", "--wait-timeout", "60s", "--", "sh", "-c", w->cmd, NULL};
    pgt_proc_spawn(&w->p, argv, w->env);
    w->worker = worker_of(w->p.pid);
    cr_assert_gt(w->worker, 0, "no worker process under pgentry");
}

Test(worker, its_death_is_an_internal_error_and_the_app_never_starts, .timeout = 60)
{
    struct waiting w;
    start_waiting(&w);
    kill(w.worker, SIGKILL);
    cr_assert_eq(pgt_proc_wait(&w.p, 10000), 70, "%s", w.p.err);
    cr_assert(strstr(w.p.err, "database worker died before reporting"), "%s", w.p.err);
    cr_assert(strstr(w.p.err, "signal=9"), "%s", w.p.err);
    cr_assert_neq(access(w.marker, F_OK), 0, "the app started after the worker died");
    pgt_proc_free(&w.p);
}

Test(worker, it_ends_when_the_supervisor_dies, .timeout = 60)
{
    struct waiting w;
    start_waiting(&w);
    kill(w.p.pid, SIGKILL);
    pgt_proc_wait(&w.p, 10000);
    cr_assert_eq(await_gone(w.worker, 10000), 0, "the worker outlived its supervisor");
    pgt_proc_free(&w.p);
}

Test(worker, a_stop_signal_reaches_it_and_rolls_the_migration_back, .timeout = 90)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char db[64], url[256], dir[256], path[400], marker[300], cmd[400];
    char e_url[300], e_dir[300], e_health[100];
    struct pgt_proc p;
    struct pgt_http_resp r;
    int port = pgt_free_port();

    pgt_pg_createdb(pg, db, sizeof db);
    pgt_pg_url(pg, db, url, sizeof url);
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/0001_slow.up.sql", dir);
    pgt_write_file(path, "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n");
    snprintf(marker, sizeof marker, "%s/app-started", dir);
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    snprintf(e_url, sizeof e_url, "DATABASE_URL=%s", url);
    snprintf(e_dir, sizeof e_dir, "PGENTRY_MIGRATIONS=%s", dir);
    snprintf(e_health, sizeof e_health, "PGENTRY_HEALTH_ADDR=127.0.0.1:%d", port);
    const char *env[] = {e_url, e_dir, e_health, NULL};
    const char *argv[] = {"pgentry", "--", "sh", "-c", cmd, NULL};
    pgt_proc_spawn(&p, argv, env);
    pid_t worker = worker_of(p.pid);
    cr_assert_gt(worker, 0);

    /* The supervisor's /status shows the worker's statement, relayed. */
    int64_t deadline = pgt_now_ms() + 20000;
    int seen = 0;
    while (!seen && pgt_now_ms() < deadline) {
        if (pgt_http_get("127.0.0.1", port, "GET", "/status", &r) == 200 &&
            strstr(r.body, "\"phase\":\"migrating\"") && strstr(r.body, "\"name\":\"slow\""))
            seen = 1;
        else
            usleep(20000);
    }
    cr_assert(seen, "the running migration never showed in /status");

    kill(p.pid, SIGTERM);
    cr_assert_eq(pgt_proc_wait(&p, 20000), 143, "%s", p.err);
    cr_assert_eq(await_gone(worker, 10000), 0, "the worker is still there");
    cr_assert_neq(access(marker, F_OK), 0, "the app started");
    char *n = pgt_pg_query(pg, db, "SELECT count(*) FROM pg_tables WHERE tablename = 'slow'");
    cr_assert_str_eq(n, "0", "the cancelled migration left its table");
    free(n);
    pgt_proc_free(&p);
}
