/* Machine-readable output of `current`, `history` and `status`: one JSON document, format 1. */
#include "pgentry/migrate/report.h"

#include <stdlib.h>
#include <string.h>

#include "pgentry/common/json.h"
#include "pgentry/migrate/indexcheck.h"

/* A JSON string, or null. */
static void str_or_null(struct pge_json_buf *b, const char *s)
{
    if (s)
        pge_json_string(b, s);
    else
        pge_json_puts(b, "null");
}

/* Write b to out; -1 when it overflowed (nothing is written then: no cut document). */
static int flush(FILE *out, const struct pge_json_buf *b)
{
    if (b->overflow)
        return -1;
    return fwrite(b->p, 1, b->len, out) == b->len ? 0 : -1;
}

static int is_repeatable(const struct pge_migplan_item *it)
{
    return it->file && it->file->repeatable;
}

/* One version (or, in "repeatables", one repeatable migration: no version) as a JSON object,
 * written to out. The buffer is sized for the strings escaped at their worst (6 bytes a byte,
 * \u00XX), so it cannot overflow. */
static int print_item(FILE *out, const struct pge_migplan_item *it, int status, int first)
{
    const char *at = it->row ? it->row->applied_at : NULL;
    const char *recorded = it->row ? it->row->checksum : NULL;
    size_t n = strlen(it->version_text) + strlen(it->name) + (at ? strlen(at) : 0) +
               (recorded ? strlen(recorded) : 0);
    size_t cap = 6 * n + 512;
    char *p = malloc(cap);
    if (!p)
        return -1;
    struct pge_json_buf b = PGE_JSON_BUF(p, cap);
    pge_json_puts(&b, first ? "\n  {" : ",\n  {");
    if (!is_repeatable(it)) {
        pge_json_puts(&b, "\"version\":");
        pge_json_string(&b, it->version_text);
        pge_json_printf(&b, ",\"version_number\":%lld,", (long long)it->version);
    }
    pge_json_puts(&b, "\"name\":");
    pge_json_string(&b, it->name);
    pge_json_puts(&b, ",\"state\":");
    pge_json_string(&b, pge_migplan_state_name(it->state));
    pge_json_puts(&b, ",\"applied_at\":");
    str_or_null(&b, at);
    if (status) {
        pge_json_puts(&b, ",\"checksum_file\":");
        str_or_null(&b, it->file ? it->file->checksum : NULL);
        pge_json_puts(&b, ",\"checksum_recorded\":");
        str_or_null(&b, recorded);
    }
    pge_json_puts(&b, "}");
    int rc = flush(out, &b);
    free(p);
    return rc;
}

/* ,"invalid_indexes":[…] to out. Each name is a quoted identifier pair (at most ~260 bytes),
 * escaped at worst 6 bytes a byte: a buffer per index cannot overflow. */
static int print_invalid(FILE *out, const struct pge_report_index *bad, size_t nbad)
{
    if (fputs(",\"invalid_indexes\":[", out) == EOF)
        return -1;
    for (size_t i = 0; i < nbad; i++) {
        char p[8192], fix[600];
        struct pge_json_buf b = PGE_JSON_BUF(p, sizeof p);
        pge_json_puts(&b, i ? ",{\"index\":" : "{\"index\":");
        pge_json_string(&b, bad[i].index);
        pge_json_puts(&b, ",\"table\":");
        pge_json_string(&b, bad[i].table);
        pge_json_puts(&b, ",\"fix\":");
        pge_json_string(&b, pge_indexcheck_fix(fix, sizeof fix, bad[i].index));
        pge_json_puts(&b, "}");
        if (flush(out, &b) < 0)
            return -1;
    }
    return fputs("]", out) == EOF ? -1 : 0;
}

/* The items of one array: the versioned ones, or the repeatable ones. */
static int print_items(FILE *out, const struct pge_migplan *plan, int status, int repeatable)
{
    int first = 1;
    for (size_t i = 0; i < plan->count; i++) {
        if (is_repeatable(&plan->items[i]) != repeatable)
            continue;
        if (print_item(out, &plan->items[i], status, first) < 0)
            return -1;
        first = 0;
    }
    return fputs(first ? "]" : "\n]", out) == EOF ? -1 : 0;
}

int pge_report_print_json(FILE *out, const struct pge_migplan *plan, enum pge_report_kind kind,
                          const char *table, const struct pge_report_index *bad, size_t nbad)
{
    /* The table name is the user's (bounded by PostgreSQL's identifier length, twice). */
    char head[2048];
    struct pge_json_buf b = PGE_JSON_BUF(head, sizeof head);
    pge_json_puts(&b, "{\"format\":1,\"command\":");
    pge_json_string(&b, kind == PGE_REPORT_CURRENT  ? "current"
                        : kind == PGE_REPORT_STATUS ? "status"
                                                    : "history");
    pge_json_puts(&b, ",\"current\":");
    str_or_null(&b, plan->has_head ? plan->head_text : NULL);
    if (kind == PGE_REPORT_CURRENT) {
        pge_json_puts(&b, "}\n");
        return flush(out, &b);
    }
    pge_json_puts(&b, ",\"table\":");
    str_or_null(&b, table);
    if (kind == PGE_REPORT_STATUS) {
        /* plan->states counts the repeatables too: the versioned counts leave them out. */
        size_t s[PGE_MIGPLAN_NSTATES], r[PGE_MIGPLAN_NSTATES] = {0};
        for (size_t i = 0; i < plan->count; i++)
            if (is_repeatable(&plan->items[i]))
                r[plan->items[i].state]++;
        for (size_t i = 0; i < PGE_MIGPLAN_NSTATES; i++)
            s[i] = plan->states[i] - r[i];
        size_t pending = s[PGE_MIGPLAN_IS_PENDING] + s[PGE_MIGPLAN_IS_OUT_OF_ORDER];
        size_t rpending = r[PGE_MIGPLAN_IS_PENDING];
        pge_json_printf(
            &b,
            ",\"applied\":%zu,\"pending\":%zu,\"drift\":%zu,\"out_of_order\":%zu,"
            "\"ahead\":%zu,\"repeatables_pending\":%zu,\"up_to_date\":%s",
            s[PGE_MIGPLAN_IS_APPLIED] + s[PGE_MIGPLAN_IS_DRIFT] + s[PGE_MIGPLAN_IS_MISSING],
            pending, s[PGE_MIGPLAN_IS_DRIFT], s[PGE_MIGPLAN_IS_OUT_OF_ORDER],
            s[PGE_MIGPLAN_IS_MISSING], rpending,
            pending + rpending + s[PGE_MIGPLAN_IS_DRIFT] + nbad == 0 ? "true" : "false");
    }
    if (flush(out, &b) < 0)
        return -1;
    if (kind == PGE_REPORT_STATUS && print_invalid(out, bad, nbad) < 0)
        return -1;
    int status = kind == PGE_REPORT_STATUS;
    if (fputs(",\"migrations\":[", out) == EOF || print_items(out, plan, status, 0) < 0 ||
        fputs(",\"repeatables\":[", out) == EOF || print_items(out, plan, status, 1) < 0 ||
        fputs("}\n", out) == EOF)
        return -1;
    return 0;
}

struct pge_outcome pge_report_exit_code(const struct pge_migplan *plan, int allow_out_of_order,
                                        size_t nbad)
{
    const size_t *s = plan->states;
    if (s[PGE_MIGPLAN_IS_DRIFT] || (s[PGE_MIGPLAN_IS_OUT_OF_ORDER] && !allow_out_of_order) || nbad)
        return PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0);
    if (s[PGE_MIGPLAN_IS_PENDING] || s[PGE_MIGPLAN_IS_OUT_OF_ORDER])
        return PGE_OUTCOME(PGE_OUT_PENDING, 0);
    return PGE_OUTCOME(PGE_OUT_OK, 0);
}
