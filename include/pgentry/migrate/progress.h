/* Index-build progress of the running migration statement, read over a second connection. */
#ifndef PGENTRY_MIGRATE_PROGRESS_H
#define PGENTRY_MIGRATE_PROGRESS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "pgentry/common/runstate.h"
#include "pgentry/common/workqueue.h"
#include "pgentry/db/conninfo.h"

/* A statement is watched once it has run this long: short ones never open a connection. */
#define PGE_PROGRESS_DELAY_MS 1000
/* pg_stat_progress_create_index is read at most this often. */
#define PGE_PROGRESS_INTERVAL_MS 1000

struct pge_progress;

/* A watcher that writes state->running.index_build while a watched statement builds an index.
 * loop, off, params and state are borrowed and must outlive it. The side connection is opened
 * with params (as the migration's: pge_pgconn_start(), bounded by connect_timeout_ms) only once
 * a watched statement has run PGE_PROGRESS_DELAY_MS, and closed when it ends. It never touches
 * the migration's own connection; any failure of its own is logged at debug and ends the
 * watching of that statement, nothing else. NULL when out of memory. */
struct pge_progress *pge_progress_new(struct ev_loop *loop, struct pge_workqueue *off,
                                      const struct pge_conninfo *params, int64_t connect_timeout_ms,
                                      struct pge_runstate *state);

/* A statement that may build an index starts on the backend backend_pid (PQbackendPID() of the
 * migration's connection): watch it. Replaces any statement watched before. NULL-safe. */
void pge_progress_watch(struct pge_progress *p, int backend_pid);

/* The watched statement ended (or the migration did): stop reading, close the side connection
 * (a read in flight is dropped) and clear state->running.index_build. NULL-safe; idempotent. */
void pge_progress_stop(struct pge_progress *p);

/* Stop and release. NULL-safe. */
void pge_progress_free(struct pge_progress *p);

/* Whether stmt[0..len) (one statement of a migration, as the splitter returns it) may build an
 * index and so report to pg_stat_progress_create_index: it has the word INDEX (CREATE INDEX,
 * REINDEX, …), or PRIMARY, UNIQUE or EXCLUDE (constraints that build one), in any case. A
 * cheap over-approximation: words in comments and strings count too. Pure; reads no byte at
 * or past len. */
int pge_progress_may_build_index(const char *stmt, size_t len);

#endif
