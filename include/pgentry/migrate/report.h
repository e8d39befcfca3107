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

/* An INVALID index that status found (pge_indexcheck_sql): "schema.name" of the index and of
 * its table. The strings are the caller's (a PGresult's, say). */
struct pge_report_index {
    const char *index;
    const char *table;
};

/* Print plan (from pge_migplan_history) as a table: VERSION NAME STATE APPLIED_AT, one line per
 * version, ascending. With status, add a summary line, one note per drifted, missing (the
 * database is ahead) and out-of-order version, and one warning per INVALID index of bad[nbad]
 * (NULL, 0: none), each saying what to do. Writes only to out. */
void pge_report_print(FILE *out, const struct pge_migplan *plan, int status, const char *table,
                      const struct pge_report_index *bad, size_t nbad);

/* --format json: one JSON document (format 1, documented in docs/migrations.md) to out, a line
 * per version: {"format":1,"command":…,"current":…} for current; history adds "table",
 * "migrations" (the versioned ones) and "repeatables" (R__ files, by name, no version); status
 * adds the counts, "invalid_indexes" (bad[nbad], each with its fix), "up_to_date" and each
 * item's checksums. Returns 0, or -1 when out of memory or out failed to take it (the document
 * is then incomplete). */
int pge_report_print_json(FILE *out, const struct pge_migplan *plan, enum pge_report_kind kind,
                          const char *table, const struct pge_report_index *bad, size_t nbad);

/* status --exit-code: MIGRATION_FAILED on drift, an out-of-order file (unless
 * allow_out_of_order: then it is pending) or an INVALID index (nbad > 0: the schema is not what
 * the history says), else PENDING when migrations (repeatable ones included) are pending, else
 * OK. An ahead database (applied versions without files) is OK. */
struct pge_outcome pge_report_exit_code(const struct pge_migplan *plan, int allow_out_of_order,
                                        size_t nbad);

#endif
