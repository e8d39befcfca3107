/* Migration planning: from scanned files and history rows to upgrade, downgrade, stamp, status. */
#include "pgentry/migrate/migplan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgentry/common/errbuf.h"

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

int pge_migplan_parse_target(const char *s, struct pge_migplan_target *t)
{
    struct pge_migplan_target r = {PGE_MIGPLAN_TO_VERSION, 0};
    if (!s)
        return -1;
    if (strcmp(s, "head") == 0) {
        r.kind = PGE_MIGPLAN_TO_HEAD;
    } else if (strcmp(s, "base") == 0) {
        r.kind = PGE_MIGPLAN_TO_BASE;
    } else if (s[0] == '+' || s[0] == '-') {
        r.kind = s[0] == '+' ? PGE_MIGPLAN_TO_FORWARD : PGE_MIGPLAN_TO_BACK;
        if (pge_migfile_parse_version(s + 1, strlen(s + 1), &r.n) < 0 || r.n == 0)
            return -1;
    } else if (pge_migfile_parse_version(s, strlen(s), &r.n) < 0) {
        return -1;
    }
    *t = r;
    return 0;
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

/* Set the plan's error (count 0) and return it. */
static enum pge_migplan_result fail(struct pge_migplan *plan, enum pge_migplan_result r,
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

/* The shared first step: check the inputs, then one item per version known to the files or
 * the rows, ascending, with its state; head, states and ahead filled. */
static enum pge_migplan_result merge(struct pge_migplan *plan, const struct pge_migset *files,
                                     const struct pge_migplan_row *rows, size_t nrows, char *err,
                                     size_t errsize)
{
    size_t nfiles = files ? files->count : 0;
    size_t i = 0, j = 0, n = 0;

    memset(plan, 0, sizeof *plan);
    plan->error_version = -1;
    plan->head_text = "none";
    if (nrows && !rows) {
        pge_errbuf_set(err, errsize, "internal error: %zu history rows but no array", nrows);
        return fail(plan, PGE_MIGPLAN_BAD_INPUT, -1);
    }
    for (size_t k = 1; k < nfiles; k++)
        if (files->items[k].version <= files->items[k - 1].version) {
            pge_errbuf_set(err, errsize, "internal error: migration files not sorted at %s",
                           files->items[k].up_path);
            return fail(plan, PGE_MIGPLAN_BAD_INPUT, files->items[k].version);
        }
    for (size_t k = 1; k < nrows; k++)
        if (rows[k].version <= rows[k - 1].version) {
            pge_errbuf_set(
                err, errsize,
                "internal error: history rows not in ascending version order at %" PRId64,
                rows[k].version);
            return fail(plan, PGE_MIGPLAN_BAD_INPUT, rows[k].version);
        }
    /* Sized once, never moved: items point into numbers_. */
    plan->items = calloc(nfiles + nrows + 1, sizeof *plan->items);
    plan->numbers_ = malloc(nrows * NUMBER_SIZE + 1);
    if (!plan->items || !plan->numbers_) {
        pge_errbuf_set(err, errsize, "out of memory while planning migrations");
        return fail(plan, PGE_MIGPLAN_NOMEM, -1);
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
            return fail(plan, PGE_MIGPLAN_NOMEM, -1);
        }
        for (size_t k = 0; k < n; k++)
            if (plan->items[k].state == PGE_MIGPLAN_IS_MISSING)
                plan->ahead[plan->nahead++] = plan->items[k];
    }
    return PGE_MIGPLAN_OK;
}

/* The first item in the given state (ascending), with how many others share it; NULL if none. */
static const struct pge_migplan_item *first_in(const struct pge_migplan *plan,
                                               enum pge_migplan_state state, size_t *others)
{
    *others = plan->states[state] ? plan->states[state] - 1 : 0;
    for (size_t k = 0; k < plan->count; k++)
        if (plan->items[k].state == state)
            return &plan->items[k];
    return NULL;
}

static enum pge_migplan_result drift_error(struct pge_migplan *plan,
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
    return fail(plan, PGE_MIGPLAN_DRIFT, it->version);
}

/* Drift, then order (unless allowed): what must hold before anything is applied. */
static enum pge_migplan_result validate_upgrade(struct pge_migplan *plan, unsigned flags, char *err,
                                                size_t errsize)
{
    size_t others;
    const struct pge_migplan_item *it = first_in(plan, PGE_MIGPLAN_IS_DRIFT, &others);
    if (it)
        return drift_error(plan, it, others, err, errsize);
    it = first_in(plan, PGE_MIGPLAN_IS_OUT_OF_ORDER, &others);
    if (it && !(flags & PGE_MIGPLAN_ALLOW_OUT_OF_ORDER)) {
        pge_errbuf_set(
            err, errsize,
            "%s (version %s) is not applied but is older than the newest applied version %s: "
            "renumber it above %s, or, if its changes are already in the database, record it "
            "with `pgentry stamp %s`, or apply it anyway with --allow-out-of-order%s",
            it->file->up_path, it->version_text, plan->head_text, plan->head_text, plan->head_text,
            others ? " (more such files: see pgentry status)" : "");
        return fail(plan, PGE_MIGPLAN_OUT_OF_ORDER, it->version);
    }
    return PGE_MIGPLAN_OK;
}

/* Keep only the items marked with an action, ascending or newest first. Moving them down in
 * place is safe: the write index never passes the read index. */
static void keep_marked(struct pge_migplan *plan, int newest_first)
{
    size_t n = 0;
    for (size_t k = 0; k < plan->count; k++)
        if (plan->items[k].action != PGE_MIGPLAN_DO_NOTHING)
            plan->items[n++] = plan->items[k];
    plan->count = n;
    for (size_t a = 0; newest_first && n > 1 && a < n / 2; a++) {
        struct pge_migplan_item tmp = plan->items[a];
        plan->items[a] = plan->items[n - 1 - a];
        plan->items[n - 1 - a] = tmp;
    }
}

/* The item of a version, or NULL. */
static struct pge_migplan_item *find(struct pge_migplan *plan, int64_t version)
{
    for (size_t k = 0; k < plan->count; k++)
        if (plan->items[k].version == version)
            return &plan->items[k];
    return NULL;
}

/* What upgrade, downgrade and stamp each accept, and how they say so. */
struct command {
    const char *name;
    const char *usage;
    unsigned kinds; /* 1 << enum pge_migplan_target_kind, for each accepted kind */
};

static const struct command commands[] = {
    [PGE_MIGPLAN_CMD_UPGRADE] = {"upgrade", "head, +N or a version",
                                 1u << PGE_MIGPLAN_TO_HEAD | 1u << PGE_MIGPLAN_TO_FORWARD |
                                     1u << PGE_MIGPLAN_TO_VERSION},
    [PGE_MIGPLAN_CMD_DOWNGRADE] = {"downgrade", "-N, a version or base",
                                   1u << PGE_MIGPLAN_TO_BACK | 1u << PGE_MIGPLAN_TO_VERSION |
                                       1u << PGE_MIGPLAN_TO_BASE},
    [PGE_MIGPLAN_CMD_STAMP] = {"stamp", "a version, head or base",
                               1u << PGE_MIGPLAN_TO_HEAD | 1u << PGE_MIGPLAN_TO_VERSION |
                                   1u << PGE_MIGPLAN_TO_BASE},
};

enum pge_migplan_result pge_migplan_check_target(enum pge_migplan_command command,
                                                 const char *target, struct pge_migplan_target *t,
                                                 char *err, size_t errsize)
{
    const struct command *cmd = &commands[command];
    struct pge_migplan_target parsed;
    if (!target && command == PGE_MIGPLAN_CMD_UPGRADE)
        target = "head";
    if (pge_migplan_parse_target(target, &parsed) < 0 || !(cmd->kinds & 1u << parsed.kind)) {
        pge_errbuf_set(err, errsize, "%s: bad target \"%s\": use %s", cmd->name,
                       target ? target : "", cmd->usage);
        return PGE_MIGPLAN_BAD_TARGET;
    }
    if (t)
        *t = parsed;
    return PGE_MIGPLAN_OK;
}

/* The first steps of every targeted plan: merge the inputs, then parse a target the command
 * accepts into *t. */
static enum pge_migplan_result begin(struct pge_migplan *plan, enum pge_migplan_command cmd,
                                     const struct pge_migset *files,
                                     const struct pge_migplan_row *rows, size_t nrows,
                                     const char *target, struct pge_migplan_target *t, char *err,
                                     size_t errsize)
{
    enum pge_migplan_result r = merge(plan, files, rows, nrows, err, errsize);
    if (r != PGE_MIGPLAN_OK)
        return r;
    if (pge_migplan_check_target(cmd, target, t, err, errsize) != PGE_MIGPLAN_OK)
        return fail(plan, PGE_MIGPLAN_BAD_TARGET, -1);
    return PGE_MIGPLAN_OK;
}

enum pge_migplan_result pge_migplan_upgrade(struct pge_migplan *plan,
                                            const struct pge_migset *files,
                                            const struct pge_migplan_row *rows, size_t nrows,
                                            const char *target, char *err, size_t errsize)
{
    return pge_migplan_upgrade_flags(plan, files, rows, nrows, target, 0, err, errsize);
}

enum pge_migplan_result pge_migplan_upgrade_flags(struct pge_migplan *plan,
                                                  const struct pge_migset *files,
                                                  const struct pge_migplan_row *rows, size_t nrows,
                                                  const char *target, unsigned flags, char *err,
                                                  size_t errsize)
{
    struct pge_migplan_target t;
    size_t npending;
    enum pge_migplan_result r =
        begin(plan, PGE_MIGPLAN_CMD_UPGRADE, files, rows, nrows, target, &t, err, errsize);
    int64_t upto = INT64_MAX, left = INT64_MAX;

    if (r != PGE_MIGPLAN_OK)
        return r;
    r = validate_upgrade(plan, flags, err, errsize);
    if (r != PGE_MIGPLAN_OK)
        return r;
    /* Out-of-order files reach here only when allowed: then they are pending too. */
    npending = plan->states[PGE_MIGPLAN_IS_PENDING] + plan->states[PGE_MIGPLAN_IS_OUT_OF_ORDER];
    if (t.kind == PGE_MIGPLAN_TO_FORWARD) {
        if ((uint64_t)t.n > npending) {
            pge_errbuf_set(err, errsize,
                           "upgrade +%" PRId64
                           ": only %zu migration(s) pending: use a smaller N or head",
                           t.n, npending);
            return fail(plan, PGE_MIGPLAN_RANGE, -1);
        }
        left = t.n;
    } else if (t.kind == PGE_MIGPLAN_TO_VERSION) {
        const struct pge_migplan_item *it = find(plan, t.n);
        if (!it) {
            pge_errbuf_set(err, errsize,
                           "upgrade target %" PRId64
                           " is not a known version: pick one from pgentry "
                           "history, or head",
                           t.n);
            return fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, t.n);
        }
        upto = t.n;
    }
    for (size_t k = 0; k < plan->count; k++) {
        struct pge_migplan_item *it = &plan->items[k];
        int todo = it->state == PGE_MIGPLAN_IS_PENDING || it->state == PGE_MIGPLAN_IS_OUT_OF_ORDER;
        if (todo && it->version <= upto && left > 0) {
            it->action = PGE_MIGPLAN_DO_APPLY;
            left--;
        }
    }
    keep_marked(plan, 0);
    return PGE_MIGPLAN_OK;
}

enum pge_migplan_result pge_migplan_downgrade(struct pge_migplan *plan,
                                              const struct pge_migset *files,
                                              const struct pge_migplan_row *rows, size_t nrows,
                                              const char *target, char *err, size_t errsize)
{
    struct pge_migplan_target t;
    enum pge_migplan_result r =
        begin(plan, PGE_MIGPLAN_CMD_DOWNGRADE, files, rows, nrows, target, &t, err, errsize);
    int64_t left = INT64_MAX, keep = 0;
    int all = 0;

    if (r != PGE_MIGPLAN_OK)
        return r;
    if (t.kind == PGE_MIGPLAN_TO_BACK) {
        if ((uint64_t)t.n > nrows) {
            pge_errbuf_set(err, errsize,
                           "downgrade -%" PRId64
                           ": only %zu migration(s) applied: use a smaller N or base",
                           t.n, nrows);
            return fail(plan, PGE_MIGPLAN_RANGE, -1);
        }
        left = t.n;
        all = 1;
    } else if (t.kind == PGE_MIGPLAN_TO_BASE) {
        all = 1;
    } else {
        const struct pge_migplan_item *it = find(plan, t.n);
        if (t.n == 0 && !(it && it->row)) {
            all = 1; /* version 0 is base unless a migration 0 was applied */
        } else if (!it || !it->row) {
            pge_errbuf_set(err, errsize,
                           "downgrade target %" PRId64 " is not applied: pick an applied version "
                           "(pgentry history), -N or base",
                           t.n);
            return fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, t.n);
        }
        keep = t.n;
    }
    /* Newest first, so the reported offender is the one the downgrade would reach first. */
    for (size_t k = plan->count; k-- > 0 && left > 0;) {
        struct pge_migplan_item *it = &plan->items[k];
        if (!it->row)
            continue;
        if (!all && it->version <= keep)
            break;
        if (!it->file) {
            pge_errbuf_set(
                err, errsize,
                "cannot revert version %s (%s): it is applied but has no file here (the "
                "database is ahead of these files): downgrade with the release that applied it",
                it->version_text, it->name[0] ? it->name : "no name");
            return fail(plan, PGE_MIGPLAN_NO_FILE, it->version);
        }
        if (it->state == PGE_MIGPLAN_IS_DRIFT)
            return drift_error(plan, it, 0, err, errsize);
        if (!it->file->down_path) {
            pge_errbuf_set(
                err, errsize,
                "cannot revert %s (version %s): missing .down.sql: write %.*s.down.sql, or "
                "record the downgrade with pgentry stamp",
                it->file->up_path, it->version_text,
                (int)(strlen(it->file->up_path) - strlen(".up.sql")), it->file->up_path);
            return fail(plan, PGE_MIGPLAN_NO_DOWN, it->version);
        }
        it->action = PGE_MIGPLAN_DO_REVERT;
        left--;
    }
    keep_marked(plan, 1);
    return PGE_MIGPLAN_OK;
}

enum pge_migplan_result pge_migplan_stamp(struct pge_migplan *plan, const struct pge_migset *files,
                                          const struct pge_migplan_row *rows, size_t nrows,
                                          const char *target, char *err, size_t errsize)
{
    struct pge_migplan_target t;
    enum pge_migplan_result r =
        begin(plan, PGE_MIGPLAN_CMD_STAMP, files, rows, nrows, target, &t, err, errsize);
    struct pge_migplan_item *out = NULL;
    int64_t keep = 0;
    int all = 0;
    size_t n = 0;

    if (r != PGE_MIGPLAN_OK)
        return r;
    if (t.kind == PGE_MIGPLAN_TO_HEAD) {
        /* With no files, head would erase the whole history: too easy by accident. */
        if (!files || files->count == 0) {
            pge_errbuf_set(
                err, errsize,
                "stamp head: there are no migration files, so no head: check --migrations, "
                "or use stamp base to clear the history");
            return fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, -1);
        }
        keep = files->items[files->count - 1].version;
    } else if (t.kind == PGE_MIGPLAN_TO_BASE) {
        all = 1;
    } else if (!find(plan, t.n)) {
        if (t.n != 0) {
            pge_errbuf_set(err, errsize,
                           "stamp target %" PRId64 " is not a known version: pick one from pgentry "
                           "history, head or base",
                           t.n);
            return fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, t.n);
        }
        all = 1;
    } else {
        keep = t.n;
    }
    out = malloc((plan->count + 1) * sizeof *out);
    if (!out) {
        pge_errbuf_set(err, errsize, "out of memory while planning migrations");
        return fail(plan, PGE_MIGPLAN_NOMEM, -1);
    }
    for (size_t k = plan->count; k-- > 0;) {
        if (plan->items[k].row && (all || plan->items[k].version > keep)) {
            out[n] = plan->items[k];
            out[n++].action = PGE_MIGPLAN_DO_UNRECORD;
        }
    }
    for (size_t k = 0; k < plan->count; k++) {
        if (!plan->items[k].row && !all && plan->items[k].version <= keep) {
            out[n] = plan->items[k];
            out[n++].action = PGE_MIGPLAN_DO_RECORD;
        }
    }
    free(plan->items);
    plan->items = out;
    plan->count = n;
    return PGE_MIGPLAN_OK;
}

enum pge_migplan_result pge_migplan_history(struct pge_migplan *plan,
                                            const struct pge_migset *files,
                                            const struct pge_migplan_row *rows, size_t nrows,
                                            char *err, size_t errsize)
{
    return merge(plan, files, rows, nrows, err, errsize);
}

enum pge_migplan_result pge_migplan_verify(struct pge_migplan *plan, const struct pge_migset *files,
                                           const struct pge_migplan_row *rows, size_t nrows,
                                           char *err, size_t errsize)
{
    size_t others;
    enum pge_migplan_result r = merge(plan, files, rows, nrows, err, errsize);
    const struct pge_migplan_item *it;

    if (r != PGE_MIGPLAN_OK)
        return r;
    it = first_in(plan, PGE_MIGPLAN_IS_DRIFT, &others);
    if (it)
        return drift_error(plan, it, others, err, errsize);
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
