/* What a run ended with. Modules return these; only main.c turns them into exit codes. */
#ifndef PGENTRY_COMMON_OUTCOME_H
#define PGENTRY_COMMON_OUTCOME_H

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
};

struct pge_outcome {
    enum pge_outcome_kind kind;
    int value;
};

#define PGE_OUTCOME(k, v) ((struct pge_outcome){.kind = (k), .value = (v)})

#endif
