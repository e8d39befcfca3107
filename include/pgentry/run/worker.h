/* The database phases in a forked worker process, so the idle supervisor never holds their
 * memory: the worker waits and migrates, the supervisor serves health and runs COMMAND. */
#ifndef PGENTRY_RUN_WORKER_H
#define PGENTRY_RUN_WORKER_H

#include <ev.h>
#include <sys/types.h>

#include "pgentry/common/outcome.h"
#include "pgentry/common/runstate.h"

/* Supervisor side: the worker's run state changed (st is its latest, whole), and once, how its
 * phases ended. An outcome arrives either from the worker's report or, when the worker died
 * without one, as PGE_OUT_INTERNAL (the death is logged). After done the worker may still be
 * tearing down: it is reaped on the loop. */
typedef void (*pge_worker_state_cb)(void *arg, const struct pge_runstate *st);
typedef void (*pge_worker_done_cb)(void *arg, struct pge_outcome out);

struct pge_worker;

/* Fork the worker. In the supervisor: returns the worker's pid and *w watches its reports on
 * loop (the default loop: its death is watched too). In the worker: returns 0 and *w publishes
 * st, the worker's run state, each time the loop is about to sleep; the loop has been
 * re-initialised for the new process, the worker has its own process group (a terminal's ^C
 * reaches only the supervisor, which forwards it) and gets SIGTERM when the supervisor dies.
 * Returns -1 with errno (and nothing forked) on failure. Call with no other thread running. */
pid_t pge_worker_fork(struct pge_worker **w, struct ev_loop *loop, const struct pge_runstate *st,
                      pge_worker_state_cb on_state, pge_worker_done_cb on_done, void *arg);

/* Worker side: report how the phases ended (and the final state) at once, then wait until the
 * supervisor has released the report (pge_worker_release()), both within timeout_ms. Later
 * calls do nothing. Returns 0, or -1 (supervisor gone, or no room in time). */
int pge_worker_report(struct pge_worker *w, struct pge_outcome out, int timeout_ms);

/* Supervisor side, after done: acted on the outcome (COMMAND started, or the run ends); the
 * worker may tear down now. */
void pge_worker_release(struct pge_worker *w);

/* Supervisor side: pass signo on to the worker while it runs. */
void pge_worker_signal(struct pge_worker *w, int signo);

/* Stop watching, close the pipe. The supervisor side leaves a worker that already reported to
 * finish on its own; one that did not is killed (its phases never ended). NULL-safe. */
void pge_worker_free(struct pge_worker *w);

/* Pure: copy what the worker owns from src into dst, the supervisor's run state. The
 * supervisor keeps its own stop flag and everything about the application. */
void pge_worker_merge(struct pge_runstate *dst, const struct pge_runstate *src);

#endif
