/* Migration planning: files and history rows merged into versions with their state; status, verify.
 */
#include "pgentry/migrate/migplan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgentry/common/errbuf.h"
#include "migplan_int.h"

#define NUMBER_SIZE 21 /* "-9223372036854775808" and a NUL */
#define SUM_PREFIX  12 /* checksum digits shown in messages: enough to tell them apart */

enum pge_outcome_kind pge_migplan_outcome(enum pge_migplan_result st)
{
    switch (st) {
    case PGE_MIGPLAN_OK:
        return PGE_OUT_OK;
    case PGE_MIGPLAN_BAD_TARGET:
        return PGE_OUT_USAGE;
    case PGE_MIGPLAN_UNKNOWN_TARGET:
    case PGE_MIGPLAN_RANGE:
    case PGE_MIGPLAN_DRIFT:
    case PGE_MIGPLAN_OUT_OF_ORDER:
    case PGE_MIGPLAN_NO_FILE:
    case PGE_MIGPLAN_NO_DOWN:
        return PGE_OUT_MIGRATION_FAILED;
    case PGE_MIGPLAN_BAD_INPUT:
    case PGE_MIGPLAN_NOMEM:
        break;
    }
    return PGE_OUT_INTERNAL;
}

const char *pge_migplan_state_name(enum pge_migplan_state state)
{
    static const char *const names[PGE_MIGPLAN_NSTATES] = {"applied", "pending", "drift", "missing",
                                                           "out_of_order"};
    if ((unsigned)state >= PGE_MIGPLAN_NSTATES)
        return "unknown";
    return names[state];
}

void pge_migplan_free(struct pge_migplan *plan)
{
    if (!plan)
        return;
    free(plan->items);
    free(plan->ahead);
    free(plan->numbers_);
    memset(plan, 0, sizeof *plan);
    plan->error_version = -1;
    plan->head_text = "none";
}

enum pge_migplan_result pge_migplan_fail(struct pge_migplan *plan, enum pge_migplan_result r,
                                         int64_t version)
{
    plan->result = r;
    plan->error_version = version;
    plan->count = 0;
    return r;
}

static enum pge_migplan_state classify(const struct pge_migfile *f, const struct pge_migplan_row *r,
                                       const struct pge_migplan *plan)
{
    if (f && r)
        return r->checksum && strcasecmp(r->checksum, f->checksum) == 0 ? PGE_MIGPLAN_IS_APPLIED
                                                                        : PGE_MIGPLAN_IS_DRIFT;
    if (r)
        return PGE_MIGPLAN_IS_MISSING;
    return plan->has_head && f->version < plan->head ? PGE_MIGPLAN_IS_OUT_OF_ORDER
                                                     : PGE_MIGPLAN_IS_PENDING;
}

enum pge_migplan_result pge_migplan_merge(struct pge_migplan *plan, const struct pge_migset *files,
                                          const struct pge_migplan_row *rows, size_t nrows,
                                          char *err, size_t errsize)
{
    size_t nfiles = files ? files->count : 0;
    size_t i = 0, j = 0, n = 0;

    memset(plan, 0, sizeof *plan);
    plan->error_version = -1;
    plan->head_text = "none";
    if (nrows && !rows) {
        pge_errbuf_set(err, errsize, "internal error: %zu history rows but no array", nrows);
        return pge_migplan_fail(plan, PGE_MIGPLAN_BAD_INPUT, -1);
    }
    for (size_t k = 1; k < nfiles; k++)
        if (files->items[k].version <= files->items[k - 1].version) {
            pge_errbuf_set(err, errsize, "internal error: migration files not sorted at %s",
                           files->items[k].up_path);
            return pge_migplan_fail(plan, PGE_MIGPLAN_BAD_INPUT, files->items[k].version);
        }
    for (size_t k = 1; k < nrows; k++)
        if (rows[k].version <= rows[k - 1].version) {
            pge_errbuf_set(
                err, errsize,
                "internal error: history rows not in ascending version order at %" PRId64,
                rows[k].version);
            return pge_migplan_fail(plan, PGE_MIGPLAN_BAD_INPUT, rows[k].version);
        }
    /* Sized once, never moved: items point into numbers_. */
    plan->items = calloc(nfiles + nrows + 1, sizeof *plan->items);
    plan->numbers_ = malloc(nrows * NUMBER_SIZE + 1);
    if (!plan->items || !plan->numbers_) {
        pge_errbuf_set(err, errsize, "out of memory while planning migrations");
        return pge_migplan_fail(plan, PGE_MIGPLAN_NOMEM, -1);
    }
    if (nrows) {
        plan->has_head = 1;
        plan->head = rows[nrows - 1].version;
    }
    while (i < nfiles || j < nrows) {
        const struct pge_migfile *f = i < nfiles ? &files->items[i] : NULL;
        const struct pge_migplan_row *r = j < nrows ? &rows[j] : NULL;
        if (f && r && f->version != r->version) {
            if (f->version < r->version)
                r = NULL;
            else
                f = NULL;
        }
        struct pge_migplan_item *it = &plan->items[n++];
        it->version = f ? f->version : r->version;
        it->file = f;
        it->row = r;
        if (f) {
            it->version_text = f->version_text;
        } else {
            char *num = plan->numbers_ + j * NUMBER_SIZE;
            snprintf(num, NUMBER_SIZE, "%" PRId64, r->version);
            it->version_text = num;
        }
        it->name = f ? f->name : r->name ? r->name : "";
        it->state = classify(f, r, plan);
        it->action = PGE_MIGPLAN_DO_NOTHING;
        plan->states[it->state]++;
        if (r && j + 1 == nrows)
            plan->head_text = it->version_text;
        i += f != NULL;
        j += r != NULL;
    }
    plan->count = n;
    if (plan->states[PGE_MIGPLAN_IS_MISSING]) {
        plan->ahead = malloc(plan->states[PGE_MIGPLAN_IS_MISSING] * sizeof *plan->ahead);
        if (!plan->ahead) {
            pge_errbuf_set(err, errsize, "out of memory while planning migrations");
            return pge_migplan_fail(plan, PGE_MIGPLAN_NOMEM, -1);
        }
        for (size_t k = 0; k < n; k++)
            if (plan->items[k].state == PGE_MIGPLAN_IS_MISSING)
                plan->ahead[plan->nahead++] = plan->items[k];
    }
    return PGE_MIGPLAN_OK;
}

const struct pge_migplan_item *pge_migplan_first_in(const struct pge_migplan *plan,
                                                    enum pge_migplan_state state, size_t *others)
{
    *others = plan->states[state] ? plan->states[state] - 1 : 0;
    for (size_t k = 0; k < plan->count; k++)
        if (plan->items[k].state == state)
            return &plan->items[k];
    return NULL;
}

enum pge_migplan_result pge_migplan_drift_error(struct pge_migplan *plan,
                                                const struct pge_migplan_item *it, size_t others,
                                                char *err, size_t errsize)
{
    const char *db = it->row->checksum ? it->row->checksum : "(none)";
    pge_errbuf_set(
        err, errsize,
        "%s (version %s) changed after it was applied: checksum %.*s... in the database, "
        "%.*s... on disk: restore the applied file and put the change in a new migration%s",
        it->file->up_path, it->version_text, SUM_PREFIX, db, SUM_PREFIX, it->file->checksum,
        others ? " (more files changed too: see pgentry status)" : "");
    return pge_migplan_fail(plan, PGE_MIGPLAN_DRIFT, it->version);
}

struct pge_migplan_item *pge_migplan_find(struct pge_migplan *plan, int64_t version)
{
    for (size_t k = 0; k < plan->count; k++)
        if (plan->items[k].version == version)
            return &plan->items[k];
    return NULL;
}

enum pge_migplan_result pge_migplan_history(struct pge_migplan *plan,
                                            const struct pge_migset *files,
                                            const struct pge_migplan_row *rows, size_t nrows,
                                            char *err, size_t errsize)
{
    return pge_migplan_merge(plan, files, rows, nrows, err, errsize);
}

enum pge_migplan_result pge_migplan_verify(struct pge_migplan *plan, const struct pge_migset *files,
                                           const struct pge_migplan_row *rows, size_t nrows,
                                           char *err, size_t errsize)
{
    size_t others;
    enum pge_migplan_result r = pge_migplan_merge(plan, files, rows, nrows, err, errsize);
    const struct pge_migplan_item *it;

    if (r != PGE_MIGPLAN_OK)
        return r;
    it = pge_migplan_first_in(plan, PGE_MIGPLAN_IS_DRIFT, &others);
    if (it)
        return pge_migplan_drift_error(plan, it, others, err, errsize);
    plan->count = 0;
    return PGE_MIGPLAN_OK;
}

static const struct pge_migplan_row *rrow_of(const struct pge_migplan_row *rrows, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (rrows[i].name && strcmp(rrows[i].name, name) == 0)
            return &rrows[i];
    return NULL;
}

enum pge_migplan_result pge_migplan_add_repeatables(struct pge_migplan *plan,
                                                    const struct pge_migset *files,
                                                    const struct pge_migplan_row *rrows,
                                                    size_t nrrows, int apply)
{
    size_t n = files->nrepeatables;
    if (n == 0)
        return PGE_MIGPLAN_OK;
    struct pge_migplan_item *items = realloc(plan->items, (plan->count + n) * sizeof *items);
    if (!items) {
        plan->result = PGE_MIGPLAN_NOMEM;
        return PGE_MIGPLAN_NOMEM;
    }
    plan->items = items;
    for (size_t i = 0; i < n; i++) {
        const struct pge_migfile *f = &files->repeatables[i];
        const struct pge_migplan_row *r = rrow_of(rrows, nrrows, f->name);
        int same = r && r->checksum && strcasecmp(r->checksum, f->checksum) == 0;
        if (apply && same)
            continue;
        struct pge_migplan_item *it = &plan->items[plan->count++];
        *it = (struct pge_migplan_item){
            .version = f->version,
            .version_text = f->version_text,
            .name = f->name,
            .file = f,
            .row = r,
            .state = same ? PGE_MIGPLAN_IS_APPLIED : PGE_MIGPLAN_IS_PENDING,
            .action = apply ? PGE_MIGPLAN_DO_APPLY : PGE_MIGPLAN_DO_NOTHING,
        };
        plan->states[it->state]++;
    }
    return PGE_MIGPLAN_OK;
}
