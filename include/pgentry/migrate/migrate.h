/* The migration engine: plan against the history table and apply it under the advisory lock,
 * one query at a time on the loop, cancellable at any point. */
#ifndef PGENTRY_MIGRATE_MIGRATE_H
#define PGENTRY_MIGRATE_MIGRATE_H

#include <ev.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>

#include "pgentry/migrate/migfile.h"
#include "pgentry/common/workqueue.h"
#include "pgentry/common/outcome.h"
#include "pgentry/supervise/privdrop.h"
#include "pgentry/common/runstate.h"

enum pge_migrate_op {
    PGE_MIGRATE_UPGRADE = 0, /* target: head|+N|VERSION (NULL = head) */
    PGE_MIGRATE_DOWNGRADE,   /* target: -N|VERSION|base */
    PGE_MIGRATE_STAMP,       /* target: VERSION|head|base */
    PGE_MIGRATE_CURRENT,     /* print the applied head */
    PGE_MIGRATE_HISTORY,     /* print every migration and its state */
    PGE_MIGRATE_STATUS,      /* history plus drift / ahead / out-of-order notes */
    PGE_MIGRATE_VERIFY,      /* MIGRATION_FAILED when an applied file changed */
    PGE_MIGRATE_WAIT,        /* --wait-migrations: apply nothing, wait until all are applied */
    PGE_MIGRATE_COMMAND,     /* --migrate-cmd: run a command under the lock */
};

struct pge_migrate_opts {
    const struct pge_migset *files; /* scanned migrations (borrowed) */
    const char *table;              /* history table, maybe "schema.table" */
    int sql_only;                   /* --sql: print what would run, change nothing */
    int allow_out_of_order;         /* apply older unapplied files (warned) instead of 65 */
    int format_json;                /* current/history/status: --format json */
    int exit_code;                  /* status --exit-code: the outcome says pending or drift */
    int64_t lock_wait_ms;           /* 0: forever */
    int64_t lock_timeout_ms;        /* 0: off */
    int64_t statement_timeout_ms;   /* set for each migration; 0: no limit (not "unset") */
    int64_t wait_timeout_ms;        /* PGE_MIGRATE_WAIT deadline; 0: forever */
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    uint64_t seed;
    const char *migrate_cmd;            /* PGE_MIGRATE_COMMAND */
    int64_t stop_timeout_ms;            /* the command's grace after a stop signal (0: 5 s) */
    const char *database_url;           /* exported as DATABASE_URL to the command, or NULL */
    char **envp;                        /* the command's environment base */
    const sigset_t *orig_mask;          /* restored in the command */
    const struct pge_privdrop *account; /* --user: the command runs as it (borrowed), or NULL */
    const char *user;                   /* --user as typed, for messages */
    struct pge_runstate *state;         /* mig.* and phase kept up to date; may be NULL */
};

struct pge_migrate;

/* Called once with how the operation ended: OK, PENDING (status --exit-code; MIGRATION_FAILED
 * there means drift or out-of-order), MIGRATION_FAILED, LOCK_TIMEOUT, NOT_READY
 * (--wait-migrations deadline), USAGE (bad target), CONFIG (e.g. the history table's schema is
 * missing), INTERNAL, STOPPED (value = the stop signal; everything was rolled back and the lock
 * released). May free the engine. */
typedef void (*pge_migrate_cb)(void *arg, struct pge_outcome outcome);

/* An engine on conn (borrowed: the caller PQfinish()es it after pge_migrate_free()); conn may
 * be NULL only for an --sql plan without a database (an empty history is assumed). opts is
 * copied; what it points to must outlive the engine. off runs PQcancel. NULL when out of
 * memory. */
struct pge_migrate *pge_migrate_new(struct ev_loop *loop, struct pge_workqueue *off, PGconn *conn,
                                    const struct pge_migrate_opts *opts, pge_migrate_cb cb,
                                    void *arg);

/* Begin op. The callback reports the end (never from inside this call). */
void pge_migrate_start(struct pge_migrate *m, enum pge_migrate_op op, const char *target);

/* A stop signal: cancel the running statement, roll back, release the lock, then report
 * STOPPED with signo. Safe to call more than once. */
void pge_migrate_stop(struct pge_migrate *m, int signo);

/* Release. A running operation is abandoned (closing the connection rolls it back on the
 * server). NULL-safe. */
void pge_migrate_free(struct pge_migrate *m);

#endif
