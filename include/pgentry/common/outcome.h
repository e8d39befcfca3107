/* What a run ended with, and how one attempt on the way went: the outcome vocabulary. */
#ifndef PGENTRY_COMMON_OUTCOME_H
#define PGENTRY_COMMON_OUTCOME_H

/* What a run ended with. Modules return these; only main.c turns them into exit codes. */
enum pge_outcome_kind {
    PGE_OUT_OK = 0,
    PGE_OUT_USAGE,            /* bad option or argument */
    PGE_OUT_MIGRATION_FAILED, /* SQL error, drift, gap, duplicate, missing .down.sql */
    PGE_OUT_NOT_READY,        /* a dependency was not ready within --wait-timeout */
    PGE_OUT_INTERNAL,         /* a bug or a resource failure (out of memory, fork failed) */
    PGE_OUT_LOCK_TIMEOUT,     /* migration lock not obtained within --lock-wait */
    PGE_OUT_REFUSED,          /* PostgreSQL refused us for good (password, pg_hba, no database) */
    PGE_OUT_CONFIG,           /* configuration error */
    PGE_OUT_CANNOT_EXEC,      /* COMMAND is not executable */
    PGE_OUT_NOT_FOUND,        /* COMMAND not found */
    PGE_OUT_CHILD_EXIT,       /* the supervised COMMAND exited; value = its status */
    PGE_OUT_CHILD_SIGNAL,     /* the supervised COMMAND died of signal value */
    PGE_OUT_STOPPED,          /* pgentry was stopped by signal value before COMMAND ran */
    PGE_OUT_UNHEALTHY,        /* healthcheck: not healthy */
    PGE_OUT_PENDING,          /* status --exit-code: migrations are pending */
};

struct pge_outcome {
    enum pge_outcome_kind kind;
    int value;
};

#define PGE_OUTCOME(k, v) ((struct pge_outcome){.kind = (k), .value = (v)})

/* How one attempt to reach a dependency went. The probes classify their own failures
 * (db/sqlstate for PostgreSQL, net/tcpprobe, net/httpprobe); the waiter paces its retries by it
 * and counts it in the run state (the metrics label "outcome", pge_runstate_outcome_name()). */
enum pge_attempt_outcome {
    PGE_ATTEMPT_OK = 0,
    PGE_ATTEMPT_REFUSED,     /* nothing listening, network unreachable, reset */
    PGE_ATTEMPT_DNS,         /* name did not resolve */
    PGE_ATTEMPT_TIMEOUT,     /* --connect-timeout elapsed */
    PGE_ATTEMPT_STARTING,    /* 57P03: starting up, shutting down, in recovery */
    PGE_ATTEMPT_TOO_MANY,    /* 53300 */
    PGE_ATTEMPT_STANDBY,     /* read-only standby */
    PGE_ATTEMPT_FATAL,       /* refused for good (28P01, 28000, 3D000, no password) */
    PGE_ATTEMPT_HTTP_STATUS, /* HTTP dependency answered, but not 2xx */
    PGE_ATTEMPT_OTHER,
    PGE_ATTEMPT_COUNT_,
};

#endif
