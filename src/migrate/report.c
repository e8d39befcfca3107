/* Human output of `history` and `status`: a table of migrations and, for status, notes. */
#include "pgentry/migrate/report.h"

#include <string.h>

#include "pgentry/migrate/indexcheck.h"

static int width(const char *s, int min)
{
    int n = (int)strlen(s ? s : "");
    return n > min ? n : min;
}

void pge_report_print(FILE *out, const struct pge_migplan *plan, int status, const char *table,
                      const struct pge_report_index *bad, size_t nbad)
{
    int wv = 7, wn = 4, ws = 5;
    for (size_t i = 0; i < plan->count; i++) {
        const struct pge_migplan_item *it = &plan->items[i];
        wv = width(it->version_text, wv);
        wn = width(it->name, wn);
        ws = width(pge_migplan_state_name(it->state), ws);
    }
    fprintf(out, "%-*s  %-*s  %-*s  %s\n", wv, "VERSION", wn, "NAME", ws, "STATE", "APPLIED_AT");
    for (size_t i = 0; i < plan->count; i++) {
        const struct pge_migplan_item *it = &plan->items[i];
        const char *at = it->row && it->row->applied_at ? it->row->applied_at : "";
        fprintf(out, "%-*s  %-*s  %-*s  %s\n", wv, it->version_text, wn, it->name, ws,
                pge_migplan_state_name(it->state), at);
    }
    if (!status)
        return;

    size_t applied = plan->states[PGE_MIGPLAN_IS_APPLIED] + plan->states[PGE_MIGPLAN_IS_DRIFT] +
                     plan->states[PGE_MIGPLAN_IS_MISSING];
    size_t pending =
        plan->states[PGE_MIGPLAN_IS_PENDING] + plan->states[PGE_MIGPLAN_IS_OUT_OF_ORDER];
    fprintf(out, "\nhead: %s (%zu applied, %zu pending) in table %s\n", plan->head_text, applied,
            pending, table);
    for (size_t i = 0; i < plan->count; i++) {
        const struct pge_migplan_item *it = &plan->items[i];
        switch (it->state) {
        case PGE_MIGPLAN_IS_DRIFT: {
            /* Re-recording = forgetting from the version before it, then recording up to the
             * current head again, without running SQL (stamp to "head" would also mark pending
             * files as applied). */
            const char *before = "base";
            for (size_t k = i; k-- > 0;)
                if (plan->items[k].row) {
                    before = plan->items[k].version_text;
                    break;
                }
            fprintf(out,
                    "drift: %s %s: the file changed after it was applied (recorded %.12s, file "
                    "%.12s): restore the file; if the edit is intended and already in the "
                    "database, re-record it: pgentry stamp %s && pgentry stamp %s\n",
                    it->version_text, it->name,
                    it->row && it->row->checksum ? it->row->checksum : "?",
                    it->file ? it->file->checksum : "?", before, plan->head_text);
            break;
        }
        case PGE_MIGPLAN_IS_MISSING:
            fprintf(out,
                    "ahead: %s %s is applied but has no file here: a newer release migrated "
                    "this database (fine during a rolling update)\n",
                    it->version_text, it->name);
            break;
        case PGE_MIGPLAN_IS_OUT_OF_ORDER:
            fprintf(out,
                    "out of order: %s %s is older than the head %s but not applied: renumber it "
                    "above the head, or stamp it if its change is already in the database\n",
                    it->version_text, it->name, plan->head_text);
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < nbad; i++) {
        char fix[600];
        fprintf(out,
                "warning: index %s on %s is INVALID (an interrupted CREATE INDEX CONCURRENTLY): "
                "%s then run pgentry again\n",
                bad[i].index, bad[i].table, pge_indexcheck_fix(fix, sizeof fix, bad[i].index));
    }
}
