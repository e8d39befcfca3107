/* Inside one run: the state run.c and phases.c share (not an interface outside src/run). */
#ifndef PGENTRY_RUN_RUN_INT_H
#define PGENTRY_RUN_RUN_INT_H

#include <signal.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgentry/common/outcome.h"
#include "pgentry/common/runstate.h"
#include "pgentry/config/config.h"
#include "pgentry/run/preflight.h"
#include "pgentry/run/signals.h"

struct pge_workqueue;
struct pge_curlloop;
struct pge_wait;
struct pge_migrate;
struct pge_supervisor;
struct pge_health;
struct pge_apphealth;
struct pge_worker;

struct run {
    struct ev_loop *loop;
    const struct pge_config *cfg;
    char **envp;
    const sigset_t *orig_mask;
    struct pge_runstate state;
    struct pge_workqueue *off;
    struct pge_curlloop *curl;
    struct pge_preflight pre; /* what was checked and read before waiting */
    struct pge_wait *wait;
    struct pge_migrate *mig;
    uint64_t seed;
    struct pge_supervisor *super;
    struct pge_health *health;
    struct pge_apphealth *apphealth;
    struct pge_worker *worker; /* the database phases' process (either side of it) */
    int is_worker;             /* this process is that worker */
    int curl_ready;            /* curl_global_init() was called */
    PGconn *conn;
    struct pge_signals sigs;
    struct pge_outcome outcome;
    int finished;
    int stop_signo; /* a stop signal passed on to the worker */
    int exec_after; /* --exec: replace the process once the loop has ended */
};

/* The run has its outcome: stop the loop (once; later calls are ignored). */
void pge_run_finish(struct run *r, struct pge_outcome out);

/* The database work is done: supervise COMMAND, or end the run (the worker's part, --exec,
 * subcommands). run.c. */
void pge_run_start_command(struct run *r);

/* The database phases: wait, then migrate (or straight to migrations for upgrade --sql
 * offline), ending in pge_run_start_command() or pge_run_finish(). Returns 0, or -1 when the
 * waiter could not be set up. phases.c. */
int pge_run_start_phases(struct run *r);

#endif
