/* Migration planning toward a target: upgrade, downgrade and stamp (the targets themselves too). */
#include "pgentry/migrate/migplan.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/errbuf.h"
#include "migplan_int.h"

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

/* Drift, then order (unless allowed): what must hold before anything is applied. */
static enum pge_migplan_result validate_upgrade(struct pge_migplan *plan, unsigned flags, char *err,
                                                size_t errsize)
{
    size_t others;
    const struct pge_migplan_item *it = pge_migplan_first_in(plan, PGE_MIGPLAN_IS_DRIFT, &others);
    if (it)
        return pge_migplan_drift_error(plan, it, others, err, errsize);
    it = pge_migplan_first_in(plan, PGE_MIGPLAN_IS_OUT_OF_ORDER, &others);
    if (it && !(flags & PGE_MIGPLAN_ALLOW_OUT_OF_ORDER)) {
        pge_errbuf_set(
            err, errsize,
            "%s (version %s) is not applied but is older than the newest applied version %s: "
            "renumber it above %s, or, if its changes are already in the database, record it "
            "with `pgentry stamp %s`, or apply it anyway with --allow-out-of-order%s",
            it->file->up_path, it->version_text, plan->head_text, plan->head_text, plan->head_text,
            others ? " (more such files: see pgentry status)" : "");
        return pge_migplan_fail(plan, PGE_MIGPLAN_OUT_OF_ORDER, it->version);
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
    enum pge_migplan_result r = pge_migplan_merge(plan, files, rows, nrows, err, errsize);
    if (r != PGE_MIGPLAN_OK)
        return r;
    if (pge_migplan_check_target(cmd, target, t, err, errsize) != PGE_MIGPLAN_OK)
        return pge_migplan_fail(plan, PGE_MIGPLAN_BAD_TARGET, -1);
    return PGE_MIGPLAN_OK;
}

/* Upgrade and downgrade are one walk in opposite directions: what differs is which versions
 * move, which way, and the words of their messages. */
struct direction {
    enum pge_migplan_command cmd;
    enum pge_migplan_action action;
    int newest_first;
    const char *moving; /* the versions that can move: "pending" or "applied" */
    char sign;          /* of +N / -N */
    const char *end;    /* the far target: "head" or "base" */
    const char *known;  /* what a VERSION target must be */
    const char *pick;   /* the fix for an unknown VERSION */
};

static const struct direction up = {PGE_MIGPLAN_CMD_UPGRADE,
                                    PGE_MIGPLAN_DO_APPLY,
                                    0,
                                    "pending",
                                    '+',
                                    "head",
                                    "a known version",
                                    "one from pgentry history, or head"};
static const struct direction down = {PGE_MIGPLAN_CMD_DOWNGRADE,
                                      PGE_MIGPLAN_DO_REVERT,
                                      1,
                                      "applied",
                                      '-',
                                      "base",
                                      "applied",
                                      "an applied version (pgentry history), -N or base"};

/* Whether an item is one the walk moves: a pending file up (out-of-order files reach the walk
 * only when allowed, and then they are pending too), an applied version down. */
static int movable(const struct direction *dir, const struct pge_migplan_item *it)
{
    if (dir == &down)
        return it->row != NULL;
    return it->state == PGE_MIGPLAN_IS_PENDING || it->state == PGE_MIGPLAN_IS_OUT_OF_ORDER;
}

/* What a revert needs: the file, an unchanged checksum and a .down.sql. */
static enum pge_migplan_result
check_revert(struct pge_migplan *plan, const struct pge_migplan_item *it, char *err, size_t errsize)
{
    if (!it->file) {
        pge_errbuf_set(
            err, errsize,
            "cannot revert version %s (%s): it is applied but has no file here (the "
            "database is ahead of these files): downgrade with the release that applied it",
            it->version_text, it->name[0] ? it->name : "no name");
        return pge_migplan_fail(plan, PGE_MIGPLAN_NO_FILE, it->version);
    }
    if (it->state == PGE_MIGPLAN_IS_DRIFT)
        return pge_migplan_drift_error(plan, it, 0, err, errsize);
    if (!it->file->down_path) {
        pge_errbuf_set(err, errsize,
                       "cannot revert %s (version %s): missing .down.sql: write %.*s.down.sql, or "
                       "record the downgrade with pgentry stamp",
                       it->file->up_path, it->version_text,
                       (int)(strlen(it->file->up_path) - strlen(".up.sql")), it->file->up_path);
        return pge_migplan_fail(plan, PGE_MIGPLAN_NO_DOWN, it->version);
    }
    return PGE_MIGPLAN_OK;
}

/* Where a walk stops: after left versions, and (when bounded) at the target version, which
 * upgrade includes and downgrade keeps. */
struct extent {
    int64_t left;
    int bounded;
    int64_t version;
};

/* The target as an extent, or an error when it is out of range or names no usable version. */
static enum pge_migplan_result resolve(struct pge_migplan *plan, const struct direction *dir,
                                       const struct pge_migplan_target *t, struct extent *x,
                                       char *err, size_t errsize)
{
    x->left = INT64_MAX;
    x->bounded = 0;
    if (t->kind == PGE_MIGPLAN_TO_FORWARD || t->kind == PGE_MIGPLAN_TO_BACK) {
        size_t movable_n = 0;
        for (size_t k = 0; k < plan->count; k++)
            movable_n += movable(dir, &plan->items[k]) != 0;
        if ((uint64_t)t->n > movable_n) {
            pge_errbuf_set(
                err, errsize, "%s %c%" PRId64 ": only %zu migration(s) %s: use a smaller N or %s",
                commands[dir->cmd].name, dir->sign, t->n, movable_n, dir->moving, dir->end);
            return pge_migplan_fail(plan, PGE_MIGPLAN_RANGE, -1);
        }
        x->left = t->n;
    } else if (t->kind == PGE_MIGPLAN_TO_VERSION) {
        const struct pge_migplan_item *it = pge_migplan_find(plan, t->n);
        /* Downgrade to 0 is base unless a migration 0 was applied. */
        if (dir == &down && t->n == 0 && !(it && it->row))
            return PGE_MIGPLAN_OK;
        if (!it || (dir == &down && !it->row)) {
            pge_errbuf_set(err, errsize, "%s target %" PRId64 " is not %s: pick %s",
                           commands[dir->cmd].name, t->n, dir->known, dir->pick);
            return pge_migplan_fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, t->n);
        }
        x->bounded = 1;
        x->version = t->n;
    }
    return PGE_MIGPLAN_OK;
}

/* Plan an upgrade or a downgrade: mark the movable versions from the near end until the
 * extent is reached, then keep only those, in the order they run. Downgrade checks each
 * version as it goes, newest first, so the reported offender is the one it would reach first. */
static enum pge_migplan_result walk(const struct direction *dir, struct pge_migplan *plan,
                                    const struct pge_migset *files,
                                    const struct pge_migplan_row *rows, size_t nrows,
                                    const char *target, unsigned flags, char *err, size_t errsize)
{
    struct pge_migplan_target t;
    struct extent x;
    enum pge_migplan_result r = begin(plan, dir->cmd, files, rows, nrows, target, &t, err, errsize);

    if (r == PGE_MIGPLAN_OK && dir == &up)
        r = validate_upgrade(plan, flags, err, errsize);
    if (r == PGE_MIGPLAN_OK)
        r = resolve(plan, dir, &t, &x, err, errsize);
    for (size_t i = 0; r == PGE_MIGPLAN_OK && i < plan->count && x.left > 0; i++) {
        struct pge_migplan_item *it = &plan->items[dir->newest_first ? plan->count - 1 - i : i];
        if (!movable(dir, it))
            continue;
        if (x.bounded && (dir->newest_first ? it->version <= x.version : it->version > x.version))
            break;
        if (dir == &down && (r = check_revert(plan, it, err, errsize)) != PGE_MIGPLAN_OK)
            break;
        it->action = dir->action;
        x.left--;
    }
    if (r == PGE_MIGPLAN_OK)
        keep_marked(plan, dir->newest_first);
    return r;
}

enum pge_migplan_result pge_migplan_upgrade(struct pge_migplan *plan,
                                            const struct pge_migset *files,
                                            const struct pge_migplan_row *rows, size_t nrows,
                                            const char *target, char *err, size_t errsize)
{
    return walk(&up, plan, files, rows, nrows, target, 0, err, errsize);
}

enum pge_migplan_result pge_migplan_upgrade_flags(struct pge_migplan *plan,
                                                  const struct pge_migset *files,
                                                  const struct pge_migplan_row *rows, size_t nrows,
                                                  const char *target, unsigned flags, char *err,
                                                  size_t errsize)
{
    return walk(&up, plan, files, rows, nrows, target, flags, err, errsize);
}

enum pge_migplan_result pge_migplan_downgrade(struct pge_migplan *plan,
                                              const struct pge_migset *files,
                                              const struct pge_migplan_row *rows, size_t nrows,
                                              const char *target, char *err, size_t errsize)
{
    return walk(&down, plan, files, rows, nrows, target, 0, err, errsize);
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
            return pge_migplan_fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, -1);
        }
        keep = files->items[files->count - 1].version;
    } else if (t.kind == PGE_MIGPLAN_TO_BASE) {
        all = 1;
    } else if (!pge_migplan_find(plan, t.n)) {
        if (t.n != 0) {
            pge_errbuf_set(err, errsize,
                           "stamp target %" PRId64 " is not a known version: pick one from pgentry "
                           "history, head or base",
                           t.n);
            return pge_migplan_fail(plan, PGE_MIGPLAN_UNKNOWN_TARGET, t.n);
        }
        all = 1;
    } else {
        keep = t.n;
    }
    out = malloc((plan->count + 1) * sizeof *out);
    if (!out) {
        pge_errbuf_set(err, errsize, "out of memory while planning migrations");
        return pge_migplan_fail(plan, PGE_MIGPLAN_NOMEM, -1);
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
