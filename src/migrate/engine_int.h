/* The migration engine's shared state and the calls its stages make to each other (private). */
#ifndef PGENTRY_MIGRATE_ENGINE_INT_H
#define PGENTRY_MIGRATE_ENGINE_INT_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "pgentry/common/backoff.h"
#include "pgentry/common/log.h"
#include "pgentry/common/throttle.h"
#include "pgentry/db/pgquery.h"
#include "pgentry/migrate/histsql.h"
#include "pgentry/migrate/migplan.h"
#include "pgentry/migrate/migrate.h"
#include "pgentry/migrate/sqlsplit.h"

#define STOP_GRACE_MS    5000 /* cancel + rollback + unlock must fit in this after a stop */
#define LOCK_POLL_MAX_MS 1000 /* lock polling slows down to this */
#define WAIT_POLL_MAX_MS 500  /* --wait-migrations re-reads at least this often */
#define FIRST_REPEAT_LOG 1000 /* ms before the lock holder is reported again */
#define MAX_REPEAT_LOG   30000
#define NOTIFY_CHANNEL   "pgentry_migrations"
/* Behind a pooler the lock is a lease row this long, renewed every third of it. */
#define PGE_MIGRATE_LEASE_MS 30000

/* Every stage (engine, history, lock, apply, extcmd, sqlprint, waitapplied) works on this one
 * record; each query callback gets it as arg. */
struct pge_migrate {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    PGconn *conn;
    struct pge_pgquery *q;
    struct pge_migrate_opts o;
    pge_migrate_cb cb;
    void *arg;
    enum pge_migrate_op op;
    const char *target;

    char *qtable;     /* "schema"."table" */
    char *qrtable;    /* "schema"."table_repeatable": the repeatable migrations' records */
    char schema[128]; /* for messages */
    char classid[16], objid[16];
    char applied_by[128];

    PGresult *hist;
    struct pge_migplan_row *rows;
    size_t nrows;
    PGresult *rhist; /* the repeatable table's rows (version unused) */
    struct pge_migplan_row *rrows;
    size_t nrrows;
    struct pge_migplan plan;
    int rereading; /* the history is being read again under the lock */

    int locked;
    int64_t lock_started_ms;
    struct pge_backoff backoff;
    ev_timer timer;
    struct pge_throttle holder_log; /* keyed by the lock holder's "pid|who" */
    int64_t wait_deadline_ms;
    int listening;

    /* which lock: chosen once per run (a pooler in front: the lease row) */
    int lock_chosen;
    int lease;
    long first_backend_pid;
    char *qlease; /* "schema"."table_lock" */
    char lease_holder[128];
    ev_timer lease_timer;
    int64_t lease_sent_ms, lease_ok_ms;  /* the lease is ours until lease_ok_ms + LEASE_MS */
    struct pge_workqueue_job *lease_job; /* a renewal in flight */
    int lease_lost;

    /* the migration being run */
    size_t item;
    char *text;
    size_t text_len;
    char *raw; /* envsubst: the text as written (text is substituted), else NULL */
    size_t raw_len;
    const char *path;
    int no_tx;
    int in_tx;
    struct pge_sqlsplit split;
    struct pge_sqlsplit_stmt stmt;
    unsigned stmts_done; /* statements of this migration that completed */
    int64_t item_started_ms;
    int64_t lock_retry_started_ms;
    char checksum[PGE_MIGFILE_CHECKSUM_LEN + 1];
    unsigned applied_now;

    ev_io notify_io; /* --wait-migrations: a NOTIFY wakes us before the poll timer */

    /* --migrate-cmd */
    pid_t cmd_pid;
    int cmd_report_fd; /* the spawn report pipe (a failed --user switch or exec), or -1 */
    ev_child cmd_child;
    ev_io lock_watch; /* the lock's session while the command runs: it must not go away */
    int lock_lost;

    /* stopping */
    int stop_signo;
    ev_timer stop_timer;
    struct pge_outcome pending; /* reported once the lock is released */
    int finished;
    ev_timer kick;
};

static inline int64_t now_ms(void)
{
    return pge_runstate_mono_ms();
}

/* ---- engine.c: ending, and what every query callback shares ---- */

/* Report out to the caller once (timers stopped, the running migration's text freed). */
void pge_migrate_finish(struct pge_migrate *m, struct pge_outcome out);
/* Leave any open transaction, release the lock, report out. */
void pge_migrate_abort(struct pge_migrate *m, struct pge_outcome out);
/* ROLLBACK's callback: the transaction is gone; release the lock and report m->pending. */
void pge_migrate_on_rolled_back(void *arg, PGresult *res);
/* After a stop, whatever came back (res is cleared), wind down and return 1; else 0. */
int pge_migrate_stopping(struct pge_migrate *m, PGresult *res);
/* The connection broke during what: report MIGRATION_FAILED (the server drops the lock). */
void pge_migrate_lost(struct pge_migrate *m, const char *what);
/* Log msg as an error about the running migration: migration=, name=, then extra (unless
 * it is PGE_LOG_END_), then at_key=PATH:line. Only logs. */
void pge_migrate_error_at(const struct pge_migrate *m, const char *msg, unsigned line,
                          const char *at_key, struct pge_log_field extra);
/* A query outside a migration's own statements failed (res is cleared): abort. */
void pge_migrate_query_failed(struct pge_migrate *m, PGresult *res, const char *what);
/* Send sql with cb(m, ...); on failure the connection is reported lost and -1 returned. */
int pge_migrate_send(struct pge_migrate *m, const char *sql, int nparams, const char *const *params,
                     pge_pgquery_cb cb);
/* Send the SQL built in b (freed here) like pge_migrate_send(); when building it ran out of
 * memory, abort with INTERNAL instead. */
void pge_migrate_send_buf(struct pge_migrate *m, struct pge_histsql_buf *b, pge_pgquery_cb cb);
/* pge_migrate_send_buf() with nparams text parameters (NULL for SQL NULL; -1: none). */
void pge_migrate_send_buf_params(struct pge_migrate *m, struct pge_histsql_buf *b, int nparams,
                                 const char *const *params, pge_pgquery_cb cb);
/* The common start of a query callback: 1 when res has status want (res is the caller's);
 * otherwise a stop, a lost connection or the failure of what was handled (res cleared), 0. */
int pge_migrate_result_ok(struct pge_migrate *m, PGresult *res, ExecStatusType want,
                          const char *what);
/* A query callback's first step: 0 after a stop or a lost connection was handled (res
 * cleared), 1 when res is there to look at (the caller's). */
int pge_migrate_result_back(struct pge_migrate *m, PGresult *res, const char *what);
/* Stop m->timer and set it to call cb(m) after delay_ms; the caller starts it. */
void pge_migrate_set_timer(struct pge_migrate *m, void (*cb)(struct ev_loop *, ev_timer *, int),
                           int64_t delay_ms);
/* The lock was lost while working: kill the migrate command, or cancel the running statement
 * (pge_migrate_stopping() then winds down with MIGRATION_FAILED), or abort now when idle. */
void pge_migrate_interrupt(struct pge_migrate *m);
/* Forget the running migration's text. */
void pge_migrate_drop_item(struct pge_migrate *m);

/* ---- history.c: read the history, plan, and go on to the operation's stage ---- */
void pge_migrate_read_history(struct pge_migrate *m);

/* ---- lock.c: the advisory lock ---- */
void pge_migrate_lock_init(struct pge_migrate *m);
/* Poll for the lock; once held, prepare the session and go on (history re-read, or the
 * migrate command). */
void pge_migrate_start_lock(struct pge_migrate *m);
/* Release the lock (if held; NOTIFY waiters when something was applied) and report out. */
void pge_migrate_release(struct pge_migrate *m, struct pge_outcome out);
/* The lock (either kind) is busy: try again with retry after the backoff's delay, or give up
 * (LOCK_TIMEOUT) once --lock-wait is over. */
void pge_migrate_lock_retry(struct pge_migrate *m,
                            void (*retry)(struct ev_loop *, ev_timer *, int));
/* The lock (either kind) is held: prepare the session and go on. */
void pge_migrate_locked(struct pge_migrate *m);

/* ---- lease.c: the lock behind a connection pooler ---- */
void pge_migrate_lease_init(struct pge_migrate *m);
/* Create the lease table if needed, then poll for the lease like for the advisory lock. */
void pge_migrate_lease_start(struct pge_migrate *m);
void pge_migrate_lease_try(struct pge_migrate *m);
/* Stop renewing (the timer, a renewal in flight). */
void pge_migrate_lease_stop(struct pge_migrate *m);
/* Append the SELECT that deletes our lease row and says whether it was still ours. */
int pge_migrate_lease_release_sql(struct pge_migrate *m, struct pge_histsql_buf *b);

/* ---- apply.c: apply or revert the plan, stamp ---- */
void pge_migrate_apply_plan(struct pge_migrate *m);
/* Stamp the plan's rows in one transaction, or print that SQL to print_to (--sql). */
void pge_migrate_stamp(struct pge_migrate *m, FILE *print_to);

/* ---- extcmd.c: --migrate-cmd under the lock ---- */
void pge_migrate_extcmd_init(struct pge_migrate *m);
void pge_migrate_run_command(struct pge_migrate *m);

/* ---- placeholders.c: ${NAME} in envsubst files ---- */
/* Check every placeholder of every file the plan will run, before the first runs. Returns 0,
 * or -1 after reporting the first unset or malformed one (the caller aborts with 65). */
int pge_migrate_check_placeholders(struct pge_migrate *m);
/* When m->text asks for envsubst, replace it by its substituted form (m->raw keeps the text as
 * written). Returns 0, or -1 after reporting. */
int pge_migrate_substitute(struct pge_migrate *m);
/* msg (PostgreSQL's) with the running file's placeholder values masked, in buf; msg itself when
 * the file has none. Never NULL. */
const char *pge_migrate_mask_values(const struct pge_migrate *m, const char *msg, char *buf,
                                    size_t size);

/* ---- sqlprint.c: --sql ---- */
void pge_migrate_print_sql(struct pge_migrate *m);

/* ---- waitapplied.c: --wait-migrations ---- */
void pge_migrate_wait_init(struct pge_migrate *m);
/* The history was read: done, or LISTEN and wait for the next NOTIFY or poll. */
void pge_migrate_wait_step(struct pge_migrate *m);

#endif
