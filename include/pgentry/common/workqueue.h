/* Run a blocking call (getaddrinfo, PQcancel) on a worker thread, finish it on the loop. */
#ifndef PGENTRY_COMMON_WORKQUEUE_H
#define PGENTRY_COMMON_WORKQUEUE_H

#include <ev.h>

struct pge_workqueue;

/* A job is embedded in the caller's own struct (container-of style) and owned by the caller.
 * work() runs on a worker thread with every signal blocked; it must not touch the loop.
 * done() runs afterwards on the loop thread unless the job was cancelled.
 * release() always runs exactly once after work() has finished, on the loop thread
 * (or on the last worker thread when the service was freed first): it frees the job. */
struct pge_workqueue_job {
    void (*work)(struct pge_workqueue_job *job);
    void (*done)(struct pge_workqueue_job *job);
    void (*release)(struct pge_workqueue_job *job);
    /* private */
    int cancelled_;
    struct pge_workqueue_job *next_;
};

/* Create the service on a loop. Worker threads are started on demand (at most 8 at once,
 * further jobs queue) and exit when idle, so an idle pgentry has no threads. NULL on error. */
struct pge_workqueue *pge_workqueue_new(struct ev_loop *loop);

/* Queue a job. Returns 0, or -1 (errno set) when no thread could be started and none runs. */
int pge_workqueue_submit(struct pge_workqueue *off, struct pge_workqueue_job *job);

/* From the loop thread: done() will not be called; release() still will, once work() ends. */
void pge_workqueue_cancel(struct pge_workqueue_job *job);

/* Stop the service. Jobs still running finish in the background and are released by their
 * thread; nothing is called on the loop any more. NULL-safe. */
void pge_workqueue_free(struct pge_workqueue *off);

/* Number of jobs submitted and not yet released (tests, shutdown decisions). */
unsigned pge_workqueue_pending(const struct pge_workqueue *off);

#endif
