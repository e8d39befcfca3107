/* One non-blocking connection attempt: async DNS, PQconnectPoll, then a proof-of-work query. */
#ifndef PGENTRY_DB_PGCONN_H
#define PGENTRY_DB_PGCONN_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "pgentry/common/outcome.h"
#include "pgentry/common/workqueue.h"
#include "pgentry/db/conninfo.h"
#include "pgentry/db/sqlstate.h"

struct pge_pgconn;

/* Why an attempt failed. message is one line, free of secrets. */
struct pge_pgconn_error {
    enum pge_outcome_kind verdict;    /* PGE_OUT_NOT_READY (retry), _REFUSED or _CONFIG (final) */
    enum pge_attempt_outcome outcome; /* how the attempt went (pacing, metrics) */
    char sqlstate[6];                 /* "" when the failure had none */
    int needs_password;
    char message[512];
};

/* Called exactly once per attempt, unless the attempt is freed first. On success conn is a
 * ready, non-blocking connection to a writable primary and err is NULL; the callee owns conn.
 * On failure conn is NULL. The callback may free the attempt. */
typedef void (*pge_pgconn_cb)(void *arg, PGconn *conn, const struct pge_pgconn_error *err);

/* Start an attempt bounded by timeout_ms (resolution, connection and the check query
 * together). params and off must outlive the attempt. NULL when out of memory. */
struct pge_pgconn *pge_pgconn_start(struct ev_loop *loop, struct pge_workqueue *off,
                                    const struct pge_conninfo *params, int64_t timeout_ms,
                                    pge_pgconn_cb cb, void *arg);

/* Abandon or release an attempt; no callback afterwards. NULL-safe. */
void pge_pgconn_free(struct pge_pgconn *c);

#endif
