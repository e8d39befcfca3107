/* Everything a run checks before waiting: the database settings, migration files and --user. */
#ifndef PGENTRY_RUN_PREFLIGHT_H
#define PGENTRY_RUN_PREFLIGHT_H

#include "pgentry/common/outcome.h"
#include "pgentry/config/config.h"
#include "pgentry/db/conninfo.h"
#include "pgentry/migrate/migfile.h"
#include "pgentry/supervise/privdrop.h"

/* What the checks found, for the phases that follow. Plain data, zeroed by the caller before
 * pge_preflight_check() and released with pge_preflight_free(). */
struct pge_preflight {
    struct pge_conninfo db; /* the parsed database settings, when have_db */
    int have_db;
    struct pge_migset files;     /* the migration files, read once */
    int migrate;                 /* the run has a migration phase */
    int offline;                 /* upgrade --sql without a database: plan from an empty history */
    struct pge_privdrop account; /* --user, resolved (NSS lookups happen here, off the loop), for
                                  * COMMAND and --migrate-cmd */
    int have_account;
};

/* Check cfg before the loop runs, so that a mistake fails at once, not after a minute of
 * waiting: a database subcommand without a database, unparsable settings, a missing or broken
 * migrations directory, a bad --table, an unknown --user. Returns 0, or -1 with *out set and
 * the problem logged. envp is the process environment (for libpq's PG* variables). */
int pge_preflight_check(struct pge_preflight *p, const struct pge_config *cfg, char **envp,
                        struct pge_outcome *out);

/* Release what the checks allocated. The struct may be zeroed and checked again. */
void pge_preflight_free(struct pge_preflight *p);

#endif
