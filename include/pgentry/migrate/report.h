/* Human output of `history` and `status`: a table of migrations and, for status, notes. */
#ifndef PGENTRY_MIGRATE_REPORT_H
#define PGENTRY_MIGRATE_REPORT_H

#include <stdio.h>

#include "pgentry/migrate/migplan.h"

/* Print plan (from pge_migplan_history) as a table: VERSION NAME STATE APPLIED_AT, one line per
 * version, ascending. With status, add a summary line and one note per drifted, missing (the
 * database is ahead) and out-of-order version, each saying what to do. Writes only to out. */
void pge_report_print(FILE *out, const struct pge_migplan *plan, int status, const char *table);

#endif
