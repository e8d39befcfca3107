/* What pgentry is doing now: plain data written by the phases, read by the health endpoint. */
#ifndef PGENTRY_COMMON_RUNSTATE_H
#define PGENTRY_COMMON_RUNSTATE_H

#include <stdint.h>
#include <sys/types.h>

#include "pgentry/common/outcome.h"

/* The migration lock as this instance sees it. */
enum pge_lock_state { PGE_LOCK_FREE = 0, PGE_LOCK_WAITING, PGE_LOCK_HELD, PGE_LOCK_COUNT_ };

enum pge_phase {
    PGE_PHASE_WAITING = 0,
    PGE_PHASE_MIGRATING,
    PGE_PHASE_STARTING,
    PGE_PHASE_RUNNING,
    PGE_PHASE_STOPPING,
    PGE_PHASE_FAILED,
    PGE_PHASE_COUNT_,
};

#define PGE_RUNSTATE_ERROR_MAX   256
#define PGE_RUNSTATE_HOLDER_MAX  128
#define PGE_RUNSTATE_NAME_MAX    128
#define PGE_RUNSTATE_VERSION_MAX 24
#define PGE_RUNSTATE_PHASE_MAX   64

/* pg_stat_progress_create_index's row for the backend of the running migration statement. */
struct pge_runstate_index_build {
    int active; /* the statement builds an index now (and its progress was read) */
    char phase[PGE_RUNSTATE_PHASE_MAX]; /* as PostgreSQL names it: "building index: …" */
    long long blocks_total, blocks_done, tuples_total, tuples_done, lockers_total, lockers_done;
};

/* Plain data, one instance owned by the run. Writers: the phases on the loop thread; readers:
 * the health endpoint on the same thread. No string here may hold a secret. */
struct pge_runstate {
    enum pge_phase phase;
    int stopping;          /* a stop signal arrived: readiness is 503 from now on */
    int64_t start_unix_ms; /* process start, wall clock */
    int64_t start_mono_ms; /* process start, monotonic */

    struct {
        int configured; /* a database is configured at all */
        int ready;
        unsigned attempts;
        char last_error[PGE_RUNSTATE_ERROR_MAX]; /* redacted, "" when none */
        int64_t ready_after_ms;                  /* from start to ready; -1 until ready */
        unsigned long long attempts_by_outcome[PGE_ATTEMPT_COUNT_];
    } db;

    struct {
        int known;                              /* the history has been read */
        char current[PGE_RUNSTATE_VERSION_MAX]; /* applied head ("none" when empty) */
        unsigned applied;                       /* rows in the history table */
        unsigned pending;                       /* files not yet applied */
        unsigned applied_this_run;
        double applied_seconds_sum; /* durations of the migrations applied by this run */
        int64_t lock_wait_ms;       /* time spent waiting for the advisory lock */
    } mig;

    struct {
        enum pge_lock_state state;
        char holder[PGE_RUNSTATE_HOLDER_MAX]; /* "pgentry@host:pid", "" when unknown */
        int64_t since_unix_ms;                /* when we took it; 0 when not ours */
        int64_t wait_started_mono_ms;         /* when this wait began (state waiting) */
    } lock;

    struct {
        int active; /* a migration statement runs now */
        char version[PGE_RUNSTATE_VERSION_MAX];
        char name[PGE_RUNSTATE_NAME_MAX];
        unsigned line; /* first line of the statement in its file */
        struct pge_runstate_index_build index_build;
    } running;

    struct {
        pid_t pid; /* 0: not started */
        int running;
        int exited;    /* the main child has exited */
        int exit_code; /* its code (128+N for signal N) once exited */
        int healthy;   /* --app-health-url answered 2xx recently (1 when unused) */
        int64_t started_mono_ms;
    } app;

    unsigned long long worker_log_dropped; /* log lines the database worker had to drop */
};

/* Fill defaults: phase waiting, times from the clocks, ready_after_ms -1, app.healthy 1. */
void pge_runstate_init(struct pge_runstate *st);

/* "waiting", "migrating", … as in the contract. */
const char *pge_runstate_phase_name(enum pge_phase phase);

/* "ok", "refused", … the metrics label of an attempt outcome. */
const char *pge_runstate_outcome_name(enum pge_attempt_outcome outcome);

/* The lock's state changes; times are passed in (monotonic for waiting, wall for held).
 * holder may be NULL (unknown) and is copied. */
void pge_runstate_lock_waiting(struct pge_runstate *st, const char *holder, int64_t now_mono_ms);
void pge_runstate_lock_held(struct pge_runstate *st, const char *holder, int64_t now_unix_ms);
void pge_runstate_lock_free(struct pge_runstate *st);

/* "free", "waiting", "held". */
const char *pge_runstate_lock_name(enum pge_lock_state state);

/* The statement running now (version and name copied), or none (active 0). */
void pge_runstate_running(struct pge_runstate *st, const char *version, const char *name,
                          unsigned line);
void pge_runstate_not_running(struct pge_runstate *st);

/* Milliseconds on the wall clock. */
int64_t pge_runstate_unix_ms(void);

/* Milliseconds on the monotonic clock (the one clock the loop-side code reads). */
int64_t pge_runstate_mono_ms(void);

#endif
