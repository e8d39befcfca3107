/* Wait for every dependency at once (PostgreSQL, TCP, HTTP) with backoff and one deadline. */
#ifndef PGENTRY_WAIT_WAIT_H
#define PGENTRY_WAIT_WAIT_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "pgentry/net/curlloop.h"
#include "pgentry/db/conninfo.h"
#include "pgentry/common/outcome.h"
#include "pgentry/common/runstate.h"
#include "pgentry/common/workqueue.h"

struct pge_wait;

struct pge_wait_opts {
    int64_t wait_timeout_ms; /* 0: never give up */
    int64_t connect_timeout_ms;
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    uint64_t seed;       /* jitter */
    int create_database; /* on 3D000, CREATE DATABASE (pge_createdb) and go on waiting */
};

/* Called once with what the wait ended with: PGE_OUT_OK (every dependency answered),
 * PGE_OUT_NOT_READY (the deadline passed first), PGE_OUT_REFUSED (PostgreSQL refused us for
 * good), PGE_OUT_CONFIG (a dependency cannot work as configured) or PGE_OUT_INTERNAL (out of
 * memory, no threads). On PGE_OUT_OK, conn is the PostgreSQL connection that proved the server
 * ready (the callee owns it), or NULL when no database was waited for. May free the waiter. */
typedef void (*pge_wait_cb)(void *arg, enum pge_outcome_kind outcome, PGconn *conn);

/* A waiter on loop. state (optional) receives attempts and errors for the health endpoint.
 * off, curl, state and the conninfo given later must outlive it; curl may be NULL when no HTTP
 * dependency will be added. NULL when out of memory. */
struct pge_wait *pge_wait_new(struct ev_loop *loop, struct pge_workqueue *off,
                              struct pge_curlloop *curl, struct pge_runstate *state,
                              const struct pge_wait_opts *opts, pge_wait_cb cb, void *arg);

/* Add dependencies before pge_wait_start(). Return 0, or -1 (bad HOST:PORT, out of memory). */
int pge_wait_add_postgres(struct pge_wait *w, const struct pge_conninfo *params);
int pge_wait_add_tcp(struct pge_wait *w, const char *hostport);
int pge_wait_add_http(struct pge_wait *w, const char *url);

/* Begin: every dependency gets its first attempt at once. With none, reports READY from the
 * loop. */
void pge_wait_start(struct pge_wait *w);

/* How to pace the retry after an attempt ended with outcome, as a clamp on the jittered delay:
 * a server that says it is starting up (57P03) is retried within 5 ms for the first 2 s of such
 * answers (it will accept work any moment; later it may be a long crash recovery); a standby
 * is asked again every 250 ms (a promotion is noticed within that, at four backend forks a
 * second); too many connections (53300) waits at least as long as the streak has lasted,
 * between 100 ms and 5 s (so the wait doubles with each such answer: the server is up, and
 * asking it again soon only takes a slot someone else needs); other answers that cost the server or
 * the network a real effort (DNS failure, an HTTP error status, anything unclassified) wait at
 * least 100 ms. streak_ms is how long the same outcome has been seen in a row. The deadline
 * still wins: pge_backoff_next_clamped() applies the floor before the deadline rule. Pure. */
void pge_wait_pacing(enum pge_attempt_outcome outcome, int64_t streak_ms, int64_t *floor_ms,
                     int64_t *ceil_ms);

/* Abandon (a stop signal) or release. No callback afterwards. NULL-safe. */
void pge_wait_free(struct pge_wait *w);

#endif
