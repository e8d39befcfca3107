/* Migration planning: from scanned files and history rows to upgrade, downgrade, stamp, status. */
#ifndef PGENTRY_MIGRATE_MIGPLAN_H
#define PGENTRY_MIGRATE_MIGPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "pgentry/migrate/migfile.h"
#include "pgentry/common/outcome.h"

/* One row of the history table, as read by the caller (ORDER BY version). The strings are the
 * caller's and must outlive any plan that points at the row. */
struct pge_migplan_row {
    int64_t version;
    const char *name;       /* may be NULL */
    const char *checksum;   /* hex; compared case-insensitively; NULL counts as changed */
    const char *applied_at; /* text as PostgreSQL printed it; may be NULL */
};

/* What planning ended with. pge_migplan_outcome() says which exit code. */
enum pge_migplan_result {
    PGE_MIGPLAN_OK = 0,         /* plan made (it may be empty: nothing to do) */
    PGE_MIGPLAN_BAD_TARGET,     /* target text not valid for this command (64) */
    PGE_MIGPLAN_UNKNOWN_TARGET, /* VERSION names no migration (or, downgrade: none applied) (65) */
    PGE_MIGPLAN_RANGE,          /* +N / -N: fewer than N migrations pending / applied (65) */
    PGE_MIGPLAN_DRIFT,          /* an applied migration's .up.sql changed (65) */
    PGE_MIGPLAN_OUT_OF_ORDER,   /* a pending file is older than the newest applied version (65) */
    PGE_MIGPLAN_NO_FILE,        /* downgrade: an applied version to revert has no file (65) */
    PGE_MIGPLAN_NO_DOWN,        /* downgrade: a migration to revert has no .down.sql (65) */
    PGE_MIGPLAN_BAD_INPUT,      /* files or rows not strictly ascending: a caller bug (70) */
    PGE_MIGPLAN_NOMEM,          /* (70) */
};

/* Which outcome (and so which exit code) a status stands for. Pure. */
enum pge_outcome_kind pge_migplan_outcome(enum pge_migplan_result st);

/* Where a version stands, from comparing files and rows. */
enum pge_migplan_state {
    PGE_MIGPLAN_IS_APPLIED = 0,  /* row and file, same checksum */
    PGE_MIGPLAN_IS_PENDING,      /* file, no row, newer than the newest row */
    PGE_MIGPLAN_IS_DRIFT,        /* row and file, checksums differ */
    PGE_MIGPLAN_IS_MISSING,      /* row, no file: the database is ahead of these files */
    PGE_MIGPLAN_IS_OUT_OF_ORDER, /* file, no row, older than the newest row */
};
#define PGE_MIGPLAN_NSTATES 5

/* "applied", "pending", "drift", "missing", "out_of_order". Static storage. */
const char *pge_migplan_state_name(enum pge_migplan_state state);

/* What a plan does with a version. */
enum pge_migplan_action {
    PGE_MIGPLAN_DO_NOTHING = 0, /* status: only reported */
    PGE_MIGPLAN_DO_APPLY,       /* run the .up.sql and insert the row */
    PGE_MIGPLAN_DO_REVERT,      /* run the .down.sql and delete the row */
    PGE_MIGPLAN_DO_RECORD,      /* stamp: insert the row (file's version, name, checksum), no SQL */
    PGE_MIGPLAN_DO_UNRECORD,    /* stamp: delete the row, no SQL */
};

/* One version in a plan. Pointers point into the caller's files and rows (or, for
 * version_text, into the plan): valid while those and the plan live. */
struct pge_migplan_item {
    int64_t version;
    const char *version_text;          /* the file's ("0003"), else the decimal number */
    const char *name;                  /* the file's slug, else the row's name, else "" */
    const struct pge_migfile *file;    /* NULL: no file for this version */
    const struct pge_migplan_row *row; /* NULL: not applied */
    enum pge_migplan_state state;      /* before the plan runs */
    enum pge_migplan_action action;
};

/* A plan: plain data the caller owns; release with pge_migplan_free(). */
struct pge_migplan {
    enum pge_migplan_result result;
    struct pge_migplan_item *items; /* see each function for the order */
    size_t count;
    struct pge_migplan_item *ahead; /* applied versions unknown to the files (state MISSING),
                                     * ascending: a warning for the caller to log, not an error */
    size_t nahead;
    int64_t error_version;              /* the version an error names, else -1 */
    int has_head;                       /* any row at all */
    int64_t head;                       /* the newest applied version (valid when has_head) */
    const char *head_text;              /* its text (the file's if any), or "none" */
    size_t states[PGE_MIGPLAN_NSTATES]; /* how many versions are in each state */
    char *numbers_;                     /* private: storage for decimal version texts */
};

/* Kinds of target, as typed on the command line. */
enum pge_migplan_target_kind {
    PGE_MIGPLAN_TO_HEAD = 0, /* "head" */
    PGE_MIGPLAN_TO_BASE,     /* "base" */
    PGE_MIGPLAN_TO_VERSION,  /* "0005", "5" */
    PGE_MIGPLAN_TO_FORWARD,  /* "+N", N >= 1 */
    PGE_MIGPLAN_TO_BACK,     /* "-N", N >= 1 */
};

struct pge_migplan_target {
    enum pge_migplan_target_kind kind;
    int64_t n; /* the version, or N; 0 for head and base */
};

/* Parse "head", "base", "+N", "-N" or a decimal VERSION (at most INT64_MAX, leading zeros
 * allowed); N >= 1. Returns 0 and fills *t, or -1 (leaving *t untouched). Pure. */
int pge_migplan_parse_target(const char *s, struct pge_migplan_target *t);

/* The commands that take a target. */
enum pge_migplan_command {
    PGE_MIGPLAN_CMD_UPGRADE = 0, /* head, +N, VERSION; NULL means head */
    PGE_MIGPLAN_CMD_DOWNGRADE,   /* -N, VERSION, base */
    PGE_MIGPLAN_CMD_STAMP,       /* VERSION, head, base */
};

/* Whether target is a kind the command accepts (above), checked with no files or history so
 * a mistake fails before any waiting. Returns OK and fills *t (when not NULL), or BAD_TARGET
 * with one line in err naming the command and the kinds it takes (the planners below give the
 * same answer). Whether VERSION exists or N is in range is for the planners. Pure. */
enum pge_migplan_result pge_migplan_check_target(enum pge_migplan_command command,
                                                 const char *target, struct pge_migplan_target *t,
                                                 char *err, size_t errsize);

/* All functions below share these rules. files is a scan result (ascending versions), rows the
 * history table ascending by version (BAD_INPUT otherwise). The plan is always initialised and
 * must be released with pge_migplan_free(), whatever the status. On error plan->result says
 * which, plan->error_version names the version (or -1), plan->count is 0, and err (if not NULL)
 * holds one line naming the file or version and the fix. plan->ahead, head and states are
 * filled whenever the inputs are valid. Pure: no I/O, no logging, no clock. */

/* `upgrade [head|+N|VERSION]` (target NULL = head). Validates first, every time: an applied
 * version whose .up.sql checksum differs (DRIFT), then a pending file older than the newest
 * applied version (OUT_OF_ORDER). Then plans, items ascending, action DO_APPLY: head = every
 * pending file; +N = the next N (RANGE when fewer are pending); VERSION = pending files up to and
 * including VERSION (UNKNOWN_TARGET when VERSION is neither a file nor an applied row; an empty
 * plan when already applied). Target already reached: OK with count 0. base and -N: BAD_TARGET. */
enum pge_migplan_result pge_migplan_upgrade(struct pge_migplan *plan,
                                            const struct pge_migset *files,
                                            const struct pge_migplan_row *rows, size_t nrows,
                                            const char *target, char *err, size_t errsize);

/* Flags of pge_migplan_upgrade_flags(). */
#define PGE_MIGPLAN_ALLOW_OUT_OF_ORDER 1u /* --allow-out-of-order */

/* pge_migplan_upgrade() with flags. With PGE_MIGPLAN_ALLOW_OUT_OF_ORDER an out-of-order file
 * is no error: it is planned like a pending one, in ascending version order among them (it
 * counts for +N and VERSION), and keeps its state IS_OUT_OF_ORDER so the caller can warn. */
enum pge_migplan_result pge_migplan_upgrade_flags(struct pge_migplan *plan,
                                                  const struct pge_migset *files,
                                                  const struct pge_migplan_row *rows, size_t nrows,
                                                  const char *target, unsigned flags, char *err,
                                                  size_t errsize);

/* `downgrade -N|VERSION|base`. Items newest first, action DO_REVERT: -N = the N newest applied
 * versions (RANGE when fewer are applied); VERSION = every applied version newer than VERSION,
 * which stays applied and must be applied itself, except that 0 with no version 0 applied means
 * base (UNKNOWN_TARGET otherwise); base = every applied version. Each version to revert needs
 * its file (NO_FILE), an unchanged checksum (DRIFT) and a .down.sql (NO_DOWN); the newest
 * offender is reported. Nothing applied and base: OK with count 0. head and +N: BAD_TARGET. */
enum pge_migplan_result pge_migplan_downgrade(struct pge_migplan *plan,
                                              const struct pge_migset *files,
                                              const struct pge_migplan_row *rows, size_t nrows,
                                              const char *target, char *err, size_t errsize);

/* `stamp VERSION|head|base`: make the history record exactly the files up to the target,
 * without running SQL. Items: first DO_UNRECORD for every row newer than the target (newest first,
 * files or not), then DO_RECORD for every file at or below the target without a row (ascending).
 * Rows at or below the target stay as they are, drifted or unknown to the files (restamp below
 * and back to re-record a changed file). head = the newest file (or, with no files, base);
 * base = nothing; VERSION must be a file's or a row's version, or 0 (= base when no such
 * version), else UNKNOWN_TARGET. No drift or order checks: stamp is how those are resolved.
 * +N and -N: BAD_TARGET. */
enum pge_migplan_result pge_migplan_stamp(struct pge_migplan *plan, const struct pge_migset *files,
                                          const struct pge_migplan_row *rows, size_t nrows,
                                          const char *target, char *err, size_t errsize);

/* `status` / `history`: every version known to the files or the rows, ascending, action DO_NOTHING,
 * with its state. Never fails on drift or order (those are states); only BAD_INPUT or NOMEM. */
enum pge_migplan_result pge_migplan_history(struct pge_migplan *plan,
                                            const struct pge_migset *files,
                                            const struct pge_migplan_row *rows, size_t nrows,
                                            char *err, size_t errsize);

/* `verify`: DRIFT (naming the first changed file) when any applied migration's .up.sql changed,
 * else OK with count 0. Out-of-order files and a database ahead are not verify failures. */
enum pge_migplan_result pge_migplan_verify(struct pge_migplan *plan, const struct pge_migset *files,
                                           const struct pge_migplan_row *rows, size_t nrows,
                                           char *err, size_t errsize);

/* Append files->repeatables to a plan just made with OK: for an upgrade (apply 1) each one that
 * is new or changed (no row of its name, or another checksum), action DO_APPLY, state PENDING;
 * for status and history (apply 0) every one, DO_NOTHING, state APPLIED or PENDING. In name
 * order, after the versioned items; plan->states counts them. rrows are the repeatable table's
 * rows (name and checksum; version ignored), in any order; items point into files and rrows.
 * Returns OK, or NOMEM (plan->result set, items kept). Pure. */
enum pge_migplan_result pge_migplan_add_repeatables(struct pge_migplan *plan,
                                                    const struct pge_migset *files,
                                                    const struct pge_migplan_row *rrows,
                                                    size_t nrrows, int apply);

/* Free what the plan owns and zero it. NULL-safe. */
void pge_migplan_free(struct pge_migplan *plan);

#endif
