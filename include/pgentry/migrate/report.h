/* Human output of `history` and `status`: a table of migrations and, for status, notes. */
#ifndef PGENTRY_MIGRATE_REPORT_H
#define PGENTRY_MIGRATE_REPORT_H

#include <stdio.h>

#include "pgentry/common/outcome.h"
#include "pgentry/migrate/migplan.h"

/* Which report. */
enum pge_report_kind {
    PGE_REPORT_CURRENT = 0,
    PGE_REPORT_HISTORY,
    PGE_REPORT_STATUS,
};

/* Print plan (from pge_migplan_history) as a table: VERSION NAME STATE APPLIED_AT, one line per
 * version, ascending. With status, add a summary line and one note per drifted, missing (the
 * database is ahead) and out-of-order version, each saying what to do. Writes only to out. */
void pge_report_print(FILE *out, const struct pge_migplan *plan, int status, const char *table);

/* --format json: one JSON document (format 1, documented in docs/migrations.md) to out, a line
 * per version: {"format":1,"command":…,"current":…} for current; history adds "table",
 * "migrations" (the versioned ones) and "repeatables" (R__ files, by name, no version); status
 * adds the counts, "up_to_date" and each item's checksums. Returns 0,
 * or -1 when out of memory or out failed to take it (the document is then incomplete). */
int pge_report_print_json(FILE *out, const struct pge_migplan *plan, enum pge_report_kind kind,
                          const char *table);

/* status --exit-code: MIGRATION_FAILED on drift or an out-of-order file (unless
 * allow_out_of_order: then it is pending), else PENDING when migrations (repeatable ones
 * included) are pending, else OK. An ahead database (applied versions without files) is OK. */
struct pge_outcome pge_report_exit_code(const struct pge_migplan *plan, int allow_out_of_order);

#endif
