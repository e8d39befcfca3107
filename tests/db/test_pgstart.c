/* Unit tests of one connection attempt's lifetime: freed while its thread still works. */
#include <criterion/criterion.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/workqueue.h"
#include "pgentry/db/conninfo.h"
#include "pgentry/db/pgconn.h"
#include "pgt.h"

static struct ev_loop *loop;
static struct pge_workqueue *wq;

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    wq = pge_workqueue_new(loop);
    cr_assert_not_null(wq);
}

static void teardown(void)
{
    pge_workqueue_free(wq);
    ev_loop_destroy(loop);
}

TestSuite(pgstart, .init = setup, .fini = teardown, .timeout = 30);

static void on_attempt(void *arg, PGconn *conn, const struct pge_pgconn_error *err)
{
    (void)err;
    ++*(int *)arg;
    if (conn)
        PQfinish(conn);
}

/* Start an attempt with settings parsed from url and envp, turn the loop until its job is on
 * a worker thread, then free the attempt and the settings at once (as a shutdown does) and
 * let the thread finish: under ASan a read of the freed settings fails the test. */
static void free_while_the_thread_works(const char *url, char **envp)
{
    struct pge_conninfo p;
    char err[256] = "";
    int calls = 0;
    cr_assert_eq(pge_conninfo_parse(&p, url, envp, err, sizeof err), 0, "%s", err);
    struct pge_pgconn *c = pge_pgconn_start(loop, wq, &p, 10000, on_attempt, &calls);
    cr_assert_not_null(c);
    int64_t deadline = pgt_now_ms() + 5000;
    while (pge_workqueue_pending(wq) == 0 && calls == 0 && pgt_now_ms() < deadline)
        ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(calls, 0, "the attempt ended before its thread was started");
    cr_assert_gt(pge_workqueue_pending(wq), 0, "no job went to a thread");
    pge_pgconn_free(c);
    /* Scribble over the settings before freeing them, so a late read cannot pass by luck. */
    for (size_t i = 0; i < p.n; i++)
        memset(p.values[i], 'X', strlen(p.values[i]));
    pge_conninfo_free(&p);
    while (pge_workqueue_pending(wq) > 0)
        ev_run(loop, EVRUN_ONCE);
    cr_assert_eq(calls, 0, "a freed attempt called back");
}

Test(pgstart, freed_during_name_resolution)
{
    char *envp[] = {NULL};
    free_while_the_thread_works("postgres://u:secret@localhost:1/db?connect_timeout=2", envp);
}

Test(pgstart, freed_while_libpq_starts_the_connection_of_a_service)
{
    char dir[256], path[400], env_file[450];
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pg_service.conf", dir);
    pgt_write_file(path, "[svc]\nhost=localhost\nport=1\ndbname=db\nuser=u\n");
    /* libpq reads the service file from the process environment. */
    setenv("PGSERVICEFILE", path, 1);
    unsetenv("PGHOST");
    unsetenv("PGHOSTADDR");
    snprintf(env_file, sizeof env_file, "PGSERVICEFILE=%s", path);
    char *envp[] = {"PGSERVICE=svc", env_file, NULL};
    free_while_the_thread_works("application_name=pgconn-test", envp);
}
