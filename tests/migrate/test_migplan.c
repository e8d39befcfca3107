/* Unit tests for migration planning: every target kind and every error, table-driven. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/migrate/migplan.h"

/* 64 copies of a one-character string: a checksum that is easy to read in a failure. */
#define X4(s)  s s s s
#define SUM(c) X4(X4(X4(c)))

/* A migration file as the scan would give it, with or without its .down.sql. */
#define MF(v, text, slug, sum)                                                                     \
    {                                                                                              \
        .version = (v), .version_text = text, .name = slug,                                        \
        .up_path = "m/" text "_" slug ".up.sql", .down_path = "m/" text "_" slug ".down.sql",      \
        .checksum = sum                                                                            \
    }
#define MF_NODOWN(v, text, slug, sum)                                                              \
    {                                                                                              \
        .version = (v), .version_text = text, .name = slug,                                        \
        .up_path = "m/" text "_" slug ".up.sql", .down_path = NULL, .checksum = sum                \
    }

#define S1 SUM("1")
#define S2 SUM("2")
#define S3 SUM("3")
#define S4 SUM("4")
#define S5 SUM("5")

enum cmd { UP, DOWN, STAMP, HIST, VERIFY, UP_OOO /* upgrade --allow-out-of-order */ };

struct want_item {
    int64_t version;
    enum pge_migplan_action action;
    enum pge_migplan_state state;
    const char *text;
};

struct plan_case {
    enum cmd cmd;
    const char *target;
    enum pge_migplan_result result;
    int64_t error_version;
    const char *words[6]; /* in the message, NULL-terminated */
    size_t count;
    struct want_item items[8];
};

/* What every call on a scenario reports besides its items (valid inputs). */
struct scenario {
    const struct pge_migset *files;
    const struct pge_migplan_row *rows;
    size_t nrows;
    int has_head;
    int64_t head;
    const char *head_text;
    size_t states[PGE_MIGPLAN_NSTATES];
    size_t nahead;
    int64_t ahead[4];
};

static const struct pge_migfile *file_of(const struct scenario *sc, int64_t v)
{
    for (size_t i = 0; sc->files && i < sc->files->count; i++)
        if (sc->files->items[i].version == v)
            return &sc->files->items[i];
    return NULL;
}

static const struct pge_migplan_row *row_of(const struct scenario *sc, int64_t v)
{
    for (size_t i = 0; i < sc->nrows; i++)
        if (sc->rows[i].version == v)
            return &sc->rows[i];
    return NULL;
}

static const char *cmd_name(enum cmd c)
{
    static const char *const names[] = {"upgrade", "downgrade", "stamp",
                                        "history", "verify",    "upgrade --allow-out-of-order"};
    return names[c];
}

static enum pge_migplan_result call(const struct scenario *sc, const struct plan_case *c,
                                    struct pge_migplan *plan, char *err, size_t errsize)
{
    switch (c->cmd) {
    case UP:
        return pge_migplan_upgrade(plan, sc->files, sc->rows, sc->nrows, c->target, err, errsize);
    case DOWN:
        return pge_migplan_downgrade(plan, sc->files, sc->rows, sc->nrows, c->target, err, errsize);
    case STAMP:
        return pge_migplan_stamp(plan, sc->files, sc->rows, sc->nrows, c->target, err, errsize);
    case HIST:
        return pge_migplan_history(plan, sc->files, sc->rows, sc->nrows, err, errsize);
    case UP_OOO:
        return pge_migplan_upgrade_flags(plan, sc->files, sc->rows, sc->nrows, c->target,
                                         PGE_MIGPLAN_ALLOW_OUT_OF_ORDER, err, errsize);
    case VERIFY:
        break;
    }
    return pge_migplan_verify(plan, sc->files, sc->rows, sc->nrows, err, errsize);
}

/* Check one item against what it must be, every field. */
static void check_item(const struct scenario *sc, const char *label,
                       const struct pge_migplan_item *got, const struct want_item *want)
{
    const struct pge_migfile *f = file_of(sc, want->version);
    const struct pge_migplan_row *r = row_of(sc, want->version);
    cr_assert_eq(got->version, want->version, "%s: version %lld", label, (long long)got->version);
    cr_assert_eq(got->action, want->action, "%s v%lld: action %d", label, (long long)want->version,
                 got->action);
    cr_assert_eq(got->state, want->state, "%s v%lld: state %s", label, (long long)want->version,
                 pge_migplan_state_name(got->state));
    cr_assert_str_eq(got->version_text, want->text, "%s", label);
    cr_assert_eq(got->file, f, "%s v%lld: file pointer", label, (long long)want->version);
    cr_assert_eq(got->row, r, "%s v%lld: row pointer", label, (long long)want->version);
    cr_assert_str_eq(got->name, f ? f->name : r && r->name ? r->name : "", "%s", label);
}

static void run(const struct scenario *sc, const struct plan_case *cases, size_t ncases)
{
    for (size_t i = 0; i < ncases; i++) {
        const struct plan_case *c = &cases[i];
        struct pge_migplan plan;
        char label[128], err[1024] = "";
        snprintf(label, sizeof label, "case %zu: %s %s", i, cmd_name(c->cmd),
                 c->target ? c->target : "(null)");

        enum pge_migplan_result r = call(sc, c, &plan, err, sizeof err);
        cr_assert_eq(r, c->result, "%s: result %d, err: %s", label, r, err);
        cr_assert_eq(plan.result, r, "%s", label);
        cr_assert_eq(plan.error_version, c->error_version, "%s: error_version %lld", label,
                     (long long)plan.error_version);
        if (r == PGE_MIGPLAN_OK) {
            cr_assert_str_eq(err, "", "%s: a message on success: %s", label, err);
        } else {
            cr_assert_neq(err[0], '\0', "%s: no message", label);
            cr_assert_null(strchr(err, '\n'), "%s: not one line: %s", label, err);
        }
        for (const char *const *w = c->words; *w; w++)
            cr_assert_not_null(strstr(err, *w), "%s: \"%s\" not in: %s", label, *w, err);

        cr_assert_eq(plan.has_head, sc->has_head, "%s", label);
        if (sc->has_head)
            cr_assert_eq(plan.head, sc->head, "%s", label);
        cr_assert_str_eq(plan.head_text, sc->head_text, "%s", label);
        for (int s = 0; s < PGE_MIGPLAN_NSTATES; s++)
            cr_assert_eq(plan.states[s], sc->states[s], "%s: %zu %s", label, plan.states[s],
                         pge_migplan_state_name((enum pge_migplan_state)s));
        cr_assert_eq(plan.nahead, sc->nahead, "%s: nahead %zu", label, plan.nahead);
        for (size_t k = 0; k < sc->nahead; k++) {
            const struct pge_migplan_row *row = row_of(sc, sc->ahead[k]);
            char text[24];
            snprintf(text, sizeof text, "%lld", (long long)sc->ahead[k]);
            struct want_item w = {sc->ahead[k], PGE_MIGPLAN_DO_NOTHING, PGE_MIGPLAN_IS_MISSING,
                                  text};
            cr_assert_not_null(row);
            check_item(sc, label, &plan.ahead[k], &w);
        }

        cr_assert_eq(plan.count, c->count, "%s: count %zu", label, plan.count);
        for (size_t k = 0; k < c->count; k++)
            check_item(sc, label, &plan.items[k], &c->items[k]);

        pge_migplan_free(&plan);
        cr_assert_null(plan.items);
        cr_assert_null(plan.ahead);
        cr_assert_eq(plan.count, 0);
    }
}

#define APPLY(v, t)                                                                                \
    {                                                                                              \
        v, PGE_MIGPLAN_DO_APPLY, PGE_MIGPLAN_IS_PENDING, t                                         \
    }
#define REVERT(v, t)                                                                               \
    {                                                                                              \
        v, PGE_MIGPLAN_DO_REVERT, PGE_MIGPLAN_IS_APPLIED, t                                        \
    }
#define RECORD(v, t)                                                                               \
    {                                                                                              \
        v, PGE_MIGPLAN_DO_RECORD, PGE_MIGPLAN_IS_PENDING, t                                        \
    }
#define UNRECORD(v, t)                                                                             \
    {                                                                                              \
        v, PGE_MIGPLAN_DO_UNRECORD, PGE_MIGPLAN_IS_APPLIED, t                                      \
    }
#define SHOW(v, s, t)                                                                              \
    {                                                                                              \
        v, PGE_MIGPLAN_DO_NOTHING, s, t                                                            \
    }
#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* The count and items of a plan that does nothing. */
#define NO_ITEMS                                                                                   \
    0,                                                                                             \
    {                                                                                              \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* The count and items of "all three applied migrations go", as downgrade and stamp say it. */
#define REVERT_3_2_1                                                                               \
    3,                                                                                             \
    {                                                                                              \
        REVERT(3, "0003"), REVERT(2, "0002"), REVERT(1, "0001")                                    \
    }
#define UNRECORD_3_2_1                                                                             \
    3,                                                                                             \
    {                                                                                              \
        UNRECORD(3, "0003"), UNRECORD(2, "0002"), UNRECORD(1, "0001")                              \
    }

/* Files 1..5, each with a .down.sql; 1..3 applied, unchanged. */
Test(migplan, clean_history_every_target, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "0001", "one", S1), MF(2, "0002", "two", S2),
                              MF(3, "0003", "three", S3), MF(4, "0004", "four", S4),
                              MF(5, "0005", "five", S5)};
    struct pge_migset files = {f, 5, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {{1, "one", S1, "2024-01-01 00:00:00+00"},
                                     {2, "two", S2, "2024-01-02 00:00:00+00"},
                                     {3, "three", S3, NULL}};
    struct scenario sc = {&files, rows, 3, 1, 3, "0003", {3, 2, 0, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {UP, NULL, PGE_MIGPLAN_OK, -1, {NULL}, 2, {APPLY(4, "0004"), APPLY(5, "0005")}},
        {UP, "head", PGE_MIGPLAN_OK, -1, {NULL}, 2, {APPLY(4, "0004"), APPLY(5, "0005")}},
        {UP, "+1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {APPLY(4, "0004")}},
        {UP, "+2", PGE_MIGPLAN_OK, -1, {NULL}, 2, {APPLY(4, "0004"), APPLY(5, "0005")}},
        {UP, "+3", PGE_MIGPLAN_RANGE, -1, {"+3", "only 2", "head", NULL}, NO_ITEMS},
        {UP, "4", PGE_MIGPLAN_OK, -1, {NULL}, 1, {APPLY(4, "0004")}},
        {UP, "0004", PGE_MIGPLAN_OK, -1, {NULL}, 1, {APPLY(4, "0004")}},
        {UP, "5", PGE_MIGPLAN_OK, -1, {NULL}, 2, {APPLY(4, "0004"), APPLY(5, "0005")}},
        {UP, "2", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {UP, "3", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {UP, "9", PGE_MIGPLAN_UNKNOWN_TARGET, 9, {"9", "not a known version", NULL}, NO_ITEMS},
        {UP,
         "base",
         PGE_MIGPLAN_BAD_TARGET,
         -1,
         {"upgrade", "\"base\"", "head, +N", NULL},
         NO_ITEMS},
        {UP, "-1", PGE_MIGPLAN_BAD_TARGET, -1, {"\"-1\"", NULL}, NO_ITEMS},
        {UP, "+0", PGE_MIGPLAN_BAD_TARGET, -1, {"\"+0\"", NULL}, NO_ITEMS},
        {UP, "", PGE_MIGPLAN_BAD_TARGET, -1, {"\"\"", NULL}, NO_ITEMS},
        {UP, "four", PGE_MIGPLAN_BAD_TARGET, -1, {"\"four\"", NULL}, NO_ITEMS},
        {DOWN, "-1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {REVERT(3, "0003")}},
        {DOWN, "-3", PGE_MIGPLAN_OK, -1, {NULL}, REVERT_3_2_1},
        {DOWN, "-4", PGE_MIGPLAN_RANGE, -1, {"-4", "only 3", "base", NULL}, NO_ITEMS},
        {DOWN, "2", PGE_MIGPLAN_OK, -1, {NULL}, 1, {REVERT(3, "0003")}},
        {DOWN, "0001", PGE_MIGPLAN_OK, -1, {NULL}, 2, {REVERT(3, "0003"), REVERT(2, "0002")}},
        {DOWN, "3", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {DOWN, "0", PGE_MIGPLAN_OK, -1, {NULL}, REVERT_3_2_1},
        {DOWN, "base", PGE_MIGPLAN_OK, -1, {NULL}, REVERT_3_2_1},
        {DOWN,
         "4",
         PGE_MIGPLAN_UNKNOWN_TARGET,
         4,
         {"4", "not applied", "-N or base", NULL},
         NO_ITEMS},
        {DOWN, "7", PGE_MIGPLAN_UNKNOWN_TARGET, 7, {"7", NULL}, NO_ITEMS},
        {DOWN,
         "head",
         PGE_MIGPLAN_BAD_TARGET,
         -1,
         {"downgrade", "-N, a version or base", NULL},
         NO_ITEMS},
        {DOWN, "+1", PGE_MIGPLAN_BAD_TARGET, -1, {"\"+1\"", NULL}, NO_ITEMS},
        {DOWN, NULL, PGE_MIGPLAN_BAD_TARGET, -1, {"downgrade", NULL}, NO_ITEMS},
        {STAMP, "head", PGE_MIGPLAN_OK, -1, {NULL}, 2, {RECORD(4, "0004"), RECORD(5, "0005")}},
        {STAMP, "4", PGE_MIGPLAN_OK, -1, {NULL}, 1, {RECORD(4, "0004")}},
        {STAMP, "2", PGE_MIGPLAN_OK, -1, {NULL}, 1, {UNRECORD(3, "0003")}},
        {STAMP, "base", PGE_MIGPLAN_OK, -1, {NULL}, UNRECORD_3_2_1},
        {STAMP, "0", PGE_MIGPLAN_OK, -1, {NULL}, UNRECORD_3_2_1},
        {STAMP, "3", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {STAMP, "9", PGE_MIGPLAN_UNKNOWN_TARGET, 9, {"stamp target 9", NULL}, NO_ITEMS},
        {STAMP,
         "+1",
         PGE_MIGPLAN_BAD_TARGET,
         -1,
         {"stamp", "a version, head or base", NULL},
         NO_ITEMS},
        {STAMP, "-1", PGE_MIGPLAN_BAD_TARGET, -1, {"\"-1\"", NULL}, NO_ITEMS},
        {STAMP, NULL, PGE_MIGPLAN_BAD_TARGET, -1, {"stamp", NULL}, NO_ITEMS},
        {HIST,
         NULL,
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         5,
         {SHOW(1, PGE_MIGPLAN_IS_APPLIED, "0001"), SHOW(2, PGE_MIGPLAN_IS_APPLIED, "0002"),
          SHOW(3, PGE_MIGPLAN_IS_APPLIED, "0003"), SHOW(4, PGE_MIGPLAN_IS_PENDING, "0004"),
          SHOW(5, PGE_MIGPLAN_IS_PENDING, "0005")}},
        {VERIFY, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
    };
    run(&sc, cases, NCASES(cases));
}

/* Files 1..4; rows 1 (unchanged), 2 and 3 (changed since). */
Test(migplan, drift_blocks_upgrade_verify_and_downgrade, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "0001", "one", S1), MF(2, "0002", "two", S2),
                              MF(3, "0003", "three", S3), MF(4, "0004", "four", S4)};
    struct pge_migset files = {f, 4, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {
        {1, "one", S1, NULL}, {2, "two", SUM("b"), NULL}, {3, "three", SUM("c"), NULL}};
    struct scenario sc = {&files, rows, 3, 1, 3, "0003", {1, 1, 2, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {UP,
         NULL,
         PGE_MIGPLAN_DRIFT,
         2,
         {"m/0002_two.up.sql", "version 0002", "bbbbbbbbbbbb...", "222222222222...",
          "new migration", "more files changed"},
         NO_ITEMS},
        {UP, "+1", PGE_MIGPLAN_DRIFT, 2, {"m/0002_two.up.sql", NULL}, NO_ITEMS},
        {UP, "1", PGE_MIGPLAN_DRIFT, 2, {NULL}, NO_ITEMS},
        {UP, "head", PGE_MIGPLAN_DRIFT, 2, {NULL}, NO_ITEMS},
        {VERIFY, NULL, PGE_MIGPLAN_DRIFT, 2, {"m/0002_two.up.sql", "version 0002", NULL}, NO_ITEMS},
        {DOWN,
         "-1",
         PGE_MIGPLAN_DRIFT,
         3,
         {"m/0003_three.up.sql", "cccccccccccc...", "333333333333...", NULL},
         NO_ITEMS},
        {DOWN, "1", PGE_MIGPLAN_DRIFT, 3, {NULL}, NO_ITEMS},
        {STAMP,
         "1",
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         2,
         {{3, PGE_MIGPLAN_DO_UNRECORD, PGE_MIGPLAN_IS_DRIFT, "0003"},
          {2, PGE_MIGPLAN_DO_UNRECORD, PGE_MIGPLAN_IS_DRIFT, "0002"}}},
        {STAMP, "head", PGE_MIGPLAN_OK, -1, {NULL}, 1, {RECORD(4, "0004")}},
        {HIST,
         NULL,
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         4,
         {SHOW(1, PGE_MIGPLAN_IS_APPLIED, "0001"), SHOW(2, PGE_MIGPLAN_IS_DRIFT, "0002"),
          SHOW(3, PGE_MIGPLAN_IS_DRIFT, "0003"), SHOW(4, PGE_MIGPLAN_IS_PENDING, "0004")}},
    };
    run(&sc, cases, NCASES(cases));
}

/* Checksums compare case-insensitively; a NULL checksum is a change; drift below the
 * downgrade's reach does not stop it. */
Test(migplan, drift_only_where_it_matters, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "1", "one", SUM("a")), MF(2, "2", "two", SUM("b")),
                              MF(3, "3", "three", SUM("c"))};
    struct pge_migset files = {f, 3, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {
        {1, "one", NULL, NULL}, {2, "two", SUM("B"), NULL}, {3, "three", SUM("c"), NULL}};
    struct scenario sc = {&files, rows, 3, 1, 3, "3", {2, 0, 1, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {DOWN, "-2", PGE_MIGPLAN_OK, -1, {NULL}, 2, {REVERT(3, "3"), REVERT(2, "2")}},
        {DOWN, "1", PGE_MIGPLAN_OK, -1, {NULL}, 2, {REVERT(3, "3"), REVERT(2, "2")}},
        {DOWN,
         "-3",
         PGE_MIGPLAN_DRIFT,
         1,
         {"m/1_one.up.sql", "(none)", "aaaaaaaaaaaa", NULL},
         NO_ITEMS},
        {VERIFY, NULL, PGE_MIGPLAN_DRIFT, 1, {"m/1_one.up.sql", NULL}, NO_ITEMS},
        {UP, NULL, PGE_MIGPLAN_DRIFT, 1, {NULL}, NO_ITEMS},
    };
    run(&sc, cases, NCASES(cases));
    /* Only one drifted file: no hint about more. */
    struct pge_migplan plan;
    char err[1024];
    cr_assert_eq(pge_migplan_verify(&plan, &files, rows, 3, err, sizeof err), PGE_MIGPLAN_DRIFT);
    cr_assert_null(strstr(err, "more"), "%s", err);
    pge_migplan_free(&plan);
}

#define OOO(v, t)                                                                                  \
    {                                                                                              \
        v, PGE_MIGPLAN_DO_APPLY, PGE_MIGPLAN_IS_OUT_OF_ORDER, t                                    \
    }

/* Files 1..4; rows 1 and 3: file 2 is out of order, 4 pending. */
Test(migplan, out_of_order_file, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "0001", "one", S1), MF(2, "0002", "two", S2),
                              MF(3, "0003", "three", S3), MF(4, "0004", "four", S4)};
    struct pge_migset files = {f, 4, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {{1, "one", S1, NULL}, {3, "three", S3, NULL}};
    struct scenario sc = {&files, rows, 2, 1, 3, "0003", {2, 1, 0, 0, 1}, 0, {0}};
    static const struct plan_case cases[] = {
        {UP,
         NULL,
         PGE_MIGPLAN_OUT_OF_ORDER,
         2,
         {"m/0002_two.up.sql", "version 0002", "older than the newest applied version 0003",
          "renumber it above 0003", "pgentry stamp 0003", NULL},
         NO_ITEMS},
        {UP, "4", PGE_MIGPLAN_OUT_OF_ORDER, 2, {NULL}, NO_ITEMS},
        {UP, "+1", PGE_MIGPLAN_OUT_OF_ORDER, 2, {NULL}, NO_ITEMS},
        {UP, NULL, PGE_MIGPLAN_OUT_OF_ORDER, 2, {"--allow-out-of-order", NULL}, NO_ITEMS},
        /* Allowed: applied in version order with the pending ones, state kept for a warning. */
        {UP_OOO, NULL, PGE_MIGPLAN_OK, -1, {NULL}, 2, {OOO(2, "0002"), APPLY(4, "0004")}},
        {UP_OOO, "head", PGE_MIGPLAN_OK, -1, {NULL}, 2, {OOO(2, "0002"), APPLY(4, "0004")}},
        {UP_OOO, "+1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {OOO(2, "0002")}},
        {UP_OOO, "+2", PGE_MIGPLAN_OK, -1, {NULL}, 2, {OOO(2, "0002"), APPLY(4, "0004")}},
        {UP_OOO, "+3", PGE_MIGPLAN_RANGE, -1, {"only 2 migration(s) pending", NULL}, NO_ITEMS},
        {UP_OOO, "2", PGE_MIGPLAN_OK, -1, {NULL}, 1, {OOO(2, "0002")}},
        {UP_OOO, "3", PGE_MIGPLAN_OK, -1, {NULL}, 1, {OOO(2, "0002")}},
        {UP_OOO, "4", PGE_MIGPLAN_OK, -1, {NULL}, 2, {OOO(2, "0002"), APPLY(4, "0004")}},
        {VERIFY, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {DOWN, "-1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {REVERT(3, "0003")}},
        {DOWN, "2", PGE_MIGPLAN_UNKNOWN_TARGET, 2, {"not applied", NULL}, NO_ITEMS},
        {STAMP,
         "3",
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         1,
         {{2, PGE_MIGPLAN_DO_RECORD, PGE_MIGPLAN_IS_OUT_OF_ORDER, "0002"}}},
        {STAMP,
         "head",
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         2,
         {{2, PGE_MIGPLAN_DO_RECORD, PGE_MIGPLAN_IS_OUT_OF_ORDER, "0002"}, RECORD(4, "0004")}},
        {HIST,
         NULL,
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         4,
         {SHOW(1, PGE_MIGPLAN_IS_APPLIED, "0001"), SHOW(2, PGE_MIGPLAN_IS_OUT_OF_ORDER, "0002"),
          SHOW(3, PGE_MIGPLAN_IS_APPLIED, "0003"), SHOW(4, PGE_MIGPLAN_IS_PENDING, "0004")}},
    };
    run(&sc, cases, NCASES(cases));
}

#define MISSING(v, a, t)                                                                           \
    {                                                                                              \
        v, a, PGE_MIGPLAN_IS_MISSING, t                                                            \
    }

/* Files 1 and 2; rows 1, 2, 3 and 5: a newer release already migrated the database. */
Test(migplan, database_ahead_is_a_warning, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "0001", "one", S1), MF(2, "0002", "two", S2)};
    struct pge_migset files = {f, 2, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {{1, "one", S1, NULL},
                                     {2, "two", S2, NULL},
                                     {3, "future", S3, "2030-01-01"},
                                     {5, NULL, S5, NULL}};
    struct scenario sc = {&files, rows, 4, 1, 5, "5", {2, 0, 0, 2, 0}, 2, {3, 5}};
    static const struct plan_case cases[] = {
        {UP, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {UP, "3", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {UP, "+1", PGE_MIGPLAN_RANGE, -1, {"only 0", NULL}, NO_ITEMS},
        {VERIFY, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {DOWN,
         "-1",
         PGE_MIGPLAN_NO_FILE,
         5,
         {"version 5", "no name", "no file", "release that applied it", NULL},
         NO_ITEMS},
        {DOWN, "2", PGE_MIGPLAN_NO_FILE, 5, {NULL}, NO_ITEMS},
        {DOWN, "3", PGE_MIGPLAN_NO_FILE, 5, {NULL}, NO_ITEMS},
        {DOWN, "0002", PGE_MIGPLAN_NO_FILE, 5, {NULL}, NO_ITEMS},
        {STAMP,
         "head",
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         2,
         {MISSING(5, PGE_MIGPLAN_DO_UNRECORD, "5"), MISSING(3, PGE_MIGPLAN_DO_UNRECORD, "3")}},
        {STAMP, "3", PGE_MIGPLAN_OK, -1, {NULL}, 1, {MISSING(5, PGE_MIGPLAN_DO_UNRECORD, "5")}},
        {STAMP, "5", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {STAMP, "4", PGE_MIGPLAN_UNKNOWN_TARGET, 4, {NULL}, NO_ITEMS},
        {HIST,
         NULL,
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         4,
         {SHOW(1, PGE_MIGPLAN_IS_APPLIED, "0001"), SHOW(2, PGE_MIGPLAN_IS_APPLIED, "0002"),
          SHOW(3, PGE_MIGPLAN_IS_MISSING, "3"), SHOW(5, PGE_MIGPLAN_IS_MISSING, "5")}},
    };
    run(&sc, cases, NCASES(cases));

    /* The version the downgrade would reach first names the missing row, with its name. */
    struct pge_migplan plan;
    char err[1024];
    cr_assert_eq(pge_migplan_downgrade(&plan, &files, rows, 3, "-1", err, sizeof err),
                 PGE_MIGPLAN_NO_FILE);
    cr_assert_not_null(strstr(err, "version 3 (future)"), "%s", err);
    pge_migplan_free(&plan);
}

/* Files 1, 2 (no .down.sql), 3; all applied. */
Test(migplan, missing_down_file, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "0001", "one", S1), MF_NODOWN(2, "0002", "two", S2),
                              MF(3, "0003", "three", S3)};
    struct pge_migset files = {f, 3, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {
        {1, "one", S1, NULL}, {2, "two", S2, NULL}, {3, "three", S3, NULL}};
    struct scenario sc = {&files, rows, 3, 1, 3, "0003", {3, 0, 0, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {DOWN, "-1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {REVERT(3, "0003")}},
        {DOWN,
         "-2",
         PGE_MIGPLAN_NO_DOWN,
         2,
         {"m/0002_two.up.sql", "version 0002", "missing .down.sql", "m/0002_two.down.sql", NULL},
         NO_ITEMS},
        {DOWN, "1", PGE_MIGPLAN_NO_DOWN, 2, {NULL}, NO_ITEMS},
        {DOWN, "base", PGE_MIGPLAN_NO_DOWN, 2, {NULL}, NO_ITEMS},
        {UP, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {STAMP, "1", PGE_MIGPLAN_OK, -1, {NULL}, 2, {UNRECORD(3, "0003"), UNRECORD(2, "0002")}},
    };
    run(&sc, cases, NCASES(cases));
}

/* No files, no rows. */
Test(migplan, empty_everything, .timeout = 10)
{
    struct pge_migset files = {NULL, 0, NULL, 0, NULL, 0};
    struct scenario sc = {&files, NULL, 0, 0, 0, "none", {0, 0, 0, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {UP, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {UP, "+1", PGE_MIGPLAN_RANGE, -1, {"only 0", NULL}, NO_ITEMS},
        {UP, "1", PGE_MIGPLAN_UNKNOWN_TARGET, 1, {NULL}, NO_ITEMS},
        {DOWN, "base", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {DOWN, "0", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {DOWN, "-1", PGE_MIGPLAN_RANGE, -1, {"only 0", NULL}, NO_ITEMS},
        {DOWN, "1", PGE_MIGPLAN_UNKNOWN_TARGET, 1, {NULL}, NO_ITEMS},
        {STAMP, "base", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {STAMP, "0", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {STAMP,
         "head",
         PGE_MIGPLAN_UNKNOWN_TARGET,
         -1,
         {"no migration files", "stamp base", NULL},
         NO_ITEMS},
        {HIST, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
        {VERIFY, NULL, PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
    };
    run(&sc, cases, NCASES(cases));
    /* No scan at all (no migrations directory) is the same as an empty one. */
    struct scenario none = sc;
    none.files = NULL;
    run(&none, cases, NCASES(cases));
}

/* Files 1 and 2, nothing applied: a fresh database. */
Test(migplan, fresh_database, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "01", "one", S1), MF(2, "02", "two", S2)};
    struct pge_migset files = {f, 2, NULL, 0, NULL, 0};
    struct scenario sc = {&files, NULL, 0, 0, 0, "none", {0, 2, 0, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {UP, NULL, PGE_MIGPLAN_OK, -1, {NULL}, 2, {APPLY(1, "01"), APPLY(2, "02")}},
        {UP, "+1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {APPLY(1, "01")}},
        {UP, "1", PGE_MIGPLAN_OK, -1, {NULL}, 1, {APPLY(1, "01")}},
        {DOWN, "-1", PGE_MIGPLAN_RANGE, -1, {NULL}, NO_ITEMS},
        {DOWN, "1", PGE_MIGPLAN_UNKNOWN_TARGET, 1, {NULL}, NO_ITEMS},
        {STAMP, "head", PGE_MIGPLAN_OK, -1, {NULL}, 2, {RECORD(1, "01"), RECORD(2, "02")}},
        {STAMP, "01", PGE_MIGPLAN_OK, -1, {NULL}, 1, {RECORD(1, "01")}},
        {HIST,
         NULL,
         PGE_MIGPLAN_OK,
         -1,
         {NULL},
         2,
         {SHOW(1, PGE_MIGPLAN_IS_PENDING, "01"), SHOW(2, PGE_MIGPLAN_IS_PENDING, "02")}},
    };
    run(&sc, cases, NCASES(cases));
}

/* A migration numbered 0: "0" is then that version, and base still means before it. */
Test(migplan, version_zero, .timeout = 10)
{
    struct pge_migfile f[] = {MF(0, "0000", "zero", S1), MF(1, "0001", "one", S2)};
    struct pge_migset files = {f, 2, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {{0, "zero", S1, NULL}, {1, "one", S2, NULL}};
    struct scenario sc = {&files, rows, 2, 1, 1, "0001", {2, 0, 0, 0, 0}, 0, {0}};
    static const struct plan_case cases[] = {
        {DOWN, "0", PGE_MIGPLAN_OK, -1, {NULL}, 1, {REVERT(1, "0001")}},
        {DOWN, "base", PGE_MIGPLAN_OK, -1, {NULL}, 2, {REVERT(1, "0001"), REVERT(0, "0000")}},
        {STAMP, "0", PGE_MIGPLAN_OK, -1, {NULL}, 1, {UNRECORD(1, "0001")}},
        {STAMP, "base", PGE_MIGPLAN_OK, -1, {NULL}, 2, {UNRECORD(1, "0001"), UNRECORD(0, "0000")}},
        {UP, "0", PGE_MIGPLAN_OK, -1, {NULL}, NO_ITEMS},
    };
    run(&sc, cases, NCASES(cases));
}

Test(migplan, unsorted_or_broken_input_is_a_caller_bug, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "1", "a", S1), MF(2, "2", "b", S2)};
    struct pge_migfile fbad[] = {MF(2, "2", "b", S2), MF(1, "1", "a", S1)};
    struct pge_migset files = {f, 2, NULL, 0, NULL, 0}, bad_files = {fbad, 2, NULL, 0, NULL, 0};
    struct pge_migplan_row down[] = {{2, "b", S2, NULL}, {1, "a", S1, NULL}};
    struct pge_migplan_row dup[] = {{1, "a", S1, NULL}, {1, "a", S1, NULL}};
    struct pge_migplan_row ok[] = {{1, "a", S1, NULL}};
    static const struct {
        int which;
        int64_t version;
        const char *word;
    } inputs[] = {
        {0, 1, "ascending"}, {1, 1, "ascending"}, {2, 1, "not sorted"}, {3, -1, "no array"}};
    for (size_t i = 0; i < NCASES(inputs); i++) {
        const struct pge_migset *fs = inputs[i].which == 2 ? &bad_files : &files;
        const struct pge_migplan_row *rs = inputs[i].which == 0   ? down
                                           : inputs[i].which == 1 ? dup
                                           : inputs[i].which == 2 ? ok
                                                                  : NULL;
        size_t nr = inputs[i].which == 2 ? 1 : 2;
        for (int c = UP; c <= VERIFY; c++) {
            struct pge_migplan plan;
            char err[512] = "";
            enum pge_migplan_result r;
            switch (c) {
            case UP:
                r = pge_migplan_upgrade(&plan, fs, rs, nr, NULL, err, sizeof err);
                break;
            case DOWN:
                r = pge_migplan_downgrade(&plan, fs, rs, nr, "base", err, sizeof err);
                break;
            case STAMP:
                r = pge_migplan_stamp(&plan, fs, rs, nr, "head", err, sizeof err);
                break;
            case HIST:
                r = pge_migplan_history(&plan, fs, rs, nr, err, sizeof err);
                break;
            default:
                r = pge_migplan_verify(&plan, fs, rs, nr, err, sizeof err);
                break;
            }
            cr_assert_eq(r, PGE_MIGPLAN_BAD_INPUT, "input %zu, %s: %d", i, cmd_name(c), r);
            cr_assert_eq(plan.result, r);
            cr_assert_eq(plan.count, 0);
            cr_assert_eq(plan.error_version, inputs[i].version, "input %zu", i);
            cr_assert_not_null(strstr(err, inputs[i].word), "input %zu: %s", i, err);
            pge_migplan_free(&plan);
        }
    }
    cr_assert_eq(pge_migplan_outcome(PGE_MIGPLAN_BAD_INPUT), PGE_OUT_INTERNAL);
}

Test(migplan, messages_are_optional, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "1", "a", S1)};
    struct pge_migset files = {f, 1, NULL, 0, NULL, 0};
    struct pge_migplan_row rows[] = {{1, "a", S2, NULL}};
    struct pge_migplan plan;
    cr_assert_eq(pge_migplan_upgrade(&plan, &files, rows, 1, NULL, NULL, 0), PGE_MIGPLAN_DRIFT);
    pge_migplan_free(&plan);
    char tiny[8];
    cr_assert_eq(pge_migplan_upgrade(&plan, &files, rows, 1, NULL, tiny, sizeof tiny),
                 PGE_MIGPLAN_DRIFT);
    cr_assert_eq(strlen(tiny), sizeof tiny - 1, "truncated, still terminated");
    pge_migplan_free(&plan);
    pge_migplan_free(NULL);
}

Test(migplan, parse_target_table, .timeout = 10)
{
    static const struct {
        const char *in;
        enum pge_migplan_target_kind kind;
        int64_t n;
    } good[] = {
        {"head", PGE_MIGPLAN_TO_HEAD, 0},
        {"base", PGE_MIGPLAN_TO_BASE, 0},
        {"+1", PGE_MIGPLAN_TO_FORWARD, 1},
        {"+0010", PGE_MIGPLAN_TO_FORWARD, 10},
        {"-3", PGE_MIGPLAN_TO_BACK, 3},
        {"0", PGE_MIGPLAN_TO_VERSION, 0},
        {"0005", PGE_MIGPLAN_TO_VERSION, 5},
        {"9223372036854775807", PGE_MIGPLAN_TO_VERSION, INT64_MAX},
        {"-9223372036854775807", PGE_MIGPLAN_TO_BACK, INT64_MAX},
    };
    for (size_t i = 0; i < NCASES(good); i++) {
        struct pge_migplan_target t = {PGE_MIGPLAN_TO_BACK, -7};
        cr_assert_eq(pge_migplan_parse_target(good[i].in, &t), 0, "%s", good[i].in);
        cr_assert_eq(t.kind, good[i].kind, "%s", good[i].in);
        cr_assert_eq(t.n, good[i].n, "%s", good[i].in);
    }
    static const char *const bad[] = {"",
                                      "+",
                                      "-",
                                      "+0",
                                      "-0",
                                      "-00",
                                      "Head",
                                      "HEAD",
                                      " head",
                                      "head ",
                                      "heads",
                                      "bas",
                                      "1a",
                                      "+-1",
                                      "--1",
                                      "++1",
                                      "1.5",
                                      "9223372036854775808",
                                      "+9223372036854775808",
                                      "-9223372036854775808"};
    for (size_t i = 0; i < NCASES(bad); i++) {
        struct pge_migplan_target t = {PGE_MIGPLAN_TO_BACK, -7};
        cr_assert_eq(pge_migplan_parse_target(bad[i], &t), -1, "\"%s\" accepted", bad[i]);
        cr_assert_eq(t.kind, PGE_MIGPLAN_TO_BACK, "\"%s\" wrote", bad[i]);
        cr_assert_eq(t.n, -7, "\"%s\" wrote", bad[i]);
    }
    struct pge_migplan_target t;
    cr_assert_eq(pge_migplan_parse_target(NULL, &t), -1);
}

Test(migplan, parse_target_every_truncated_prefix, .timeout = 10)
{
    /* For each input, the result of each prefix length 0..len: kind, n, or -1 (kind < 0). */
    static const struct {
        const char *in;
        int kind[6];
        int64_t n[6];
    } cases[] = {
        {"head", {-1, -1, -1, -1, PGE_MIGPLAN_TO_HEAD}, {0}},
        {"base", {-1, -1, -1, -1, PGE_MIGPLAN_TO_BASE}, {0}},
        {"+12", {-1, -1, PGE_MIGPLAN_TO_FORWARD, PGE_MIGPLAN_TO_FORWARD}, {0, 0, 1, 12}},
        {"-12", {-1, -1, PGE_MIGPLAN_TO_BACK, PGE_MIGPLAN_TO_BACK}, {0, 0, 1, 12}},
        {"-05", {-1, -1, -1, PGE_MIGPLAN_TO_BACK}, {0, 0, 0, 5}},
        {"120",
         {-1, PGE_MIGPLAN_TO_VERSION, PGE_MIGPLAN_TO_VERSION, PGE_MIGPLAN_TO_VERSION},
         {0, 1, 12, 120}},
    };
    for (size_t i = 0; i < NCASES(cases); i++) {
        size_t len = strlen(cases[i].in);
        for (size_t k = 0; k <= len; k++) {
            char buf[16];
            struct pge_migplan_target t = {PGE_MIGPLAN_TO_HEAD, -7};
            memcpy(buf, cases[i].in, k);
            buf[k] = '\0';
            int r = pge_migplan_parse_target(buf, &t);
            if (cases[i].kind[k] < 0) {
                cr_assert_eq(r, -1, "\"%s\"", buf);
                cr_assert_eq(t.n, -7, "\"%s\" wrote", buf);
            } else {
                cr_assert_eq(r, 0, "\"%s\"", buf);
                cr_assert_eq((int)t.kind, cases[i].kind[k], "\"%s\"", buf);
                cr_assert_eq(t.n, cases[i].n[k], "\"%s\"", buf);
            }
        }
    }
}

Test(migplan, check_target_accepts_only_the_kinds_of_each_command, .timeout = 10)
{
    /* One target of each kind, and what each command says of it (1 = accepted). */
    static const char *const targets[] = {"head", "base", "0005", "+2", "-2", "bogus", NULL};
    static const struct {
        enum pge_migplan_command cmd;
        const char *name;
        int ok[7]; /* per target above; the last: NULL */
    } cases[] = {
        {PGE_MIGPLAN_CMD_UPGRADE, "upgrade", {1, 0, 1, 1, 0, 0, 1}},
        {PGE_MIGPLAN_CMD_DOWNGRADE, "downgrade", {0, 1, 1, 0, 1, 0, 0}},
        {PGE_MIGPLAN_CMD_STAMP, "stamp", {1, 1, 1, 0, 0, 0, 0}},
    };
    for (size_t c = 0; c < NCASES(cases); c++) {
        for (size_t i = 0; i < 7; i++) {
            char err[128] = "";
            struct pge_migplan_target t = {PGE_MIGPLAN_TO_BASE, -7};
            enum pge_migplan_result r =
                pge_migplan_check_target(cases[c].cmd, targets[i], &t, err, sizeof err);
            if (cases[c].ok[i]) {
                cr_assert_eq(r, PGE_MIGPLAN_OK, "%s %s: %s", cases[c].name, targets[i], err);
                cr_assert_neq(t.n, -7, "%s %s: target not filled", cases[c].name, targets[i]);
            } else {
                cr_assert_eq(r, PGE_MIGPLAN_BAD_TARGET, "%s %s accepted", cases[c].name,
                             targets[i]);
                cr_assert_eq(strncmp(err, cases[c].name, strlen(cases[c].name)), 0, "%s", err);
                cr_assert(strstr(err, "bad target"), "%s", err);
                cr_assert_eq(t.n, -7, "%s %s: target written", cases[c].name, targets[i]);
            }
        }
    }
    /* Upgrade's default is head; t may be left out. */
    struct pge_migplan_target t;
    cr_assert_eq(pge_migplan_check_target(PGE_MIGPLAN_CMD_UPGRADE, NULL, &t, NULL, 0),
                 PGE_MIGPLAN_OK);
    cr_assert_eq(t.kind, PGE_MIGPLAN_TO_HEAD);
    cr_assert_eq(pge_migplan_check_target(PGE_MIGPLAN_CMD_STAMP, "head", NULL, NULL, 0),
                 PGE_MIGPLAN_OK);
}

Test(migplan, names_and_outcomes, .timeout = 10)
{
    cr_assert_str_eq(pge_migplan_state_name(PGE_MIGPLAN_IS_APPLIED), "applied");
    cr_assert_str_eq(pge_migplan_state_name(PGE_MIGPLAN_IS_PENDING), "pending");
    cr_assert_str_eq(pge_migplan_state_name(PGE_MIGPLAN_IS_DRIFT), "drift");
    cr_assert_str_eq(pge_migplan_state_name(PGE_MIGPLAN_IS_MISSING), "missing");
    cr_assert_str_eq(pge_migplan_state_name(PGE_MIGPLAN_IS_OUT_OF_ORDER), "out_of_order");
    cr_assert_str_eq(pge_migplan_state_name((enum pge_migplan_state)99), "unknown");

    static const struct {
        enum pge_migplan_result r;
        enum pge_outcome_kind k;
    } map[] = {
        {PGE_MIGPLAN_OK, PGE_OUT_OK},
        {PGE_MIGPLAN_BAD_TARGET, PGE_OUT_USAGE},
        {PGE_MIGPLAN_UNKNOWN_TARGET, PGE_OUT_MIGRATION_FAILED},
        {PGE_MIGPLAN_RANGE, PGE_OUT_MIGRATION_FAILED},
        {PGE_MIGPLAN_DRIFT, PGE_OUT_MIGRATION_FAILED},
        {PGE_MIGPLAN_OUT_OF_ORDER, PGE_OUT_MIGRATION_FAILED},
        {PGE_MIGPLAN_NO_FILE, PGE_OUT_MIGRATION_FAILED},
        {PGE_MIGPLAN_NO_DOWN, PGE_OUT_MIGRATION_FAILED},
        {PGE_MIGPLAN_BAD_INPUT, PGE_OUT_INTERNAL},
        {PGE_MIGPLAN_NOMEM, PGE_OUT_INTERNAL},
    };
    for (size_t i = 0; i < NCASES(map); i++)
        cr_assert_eq(pge_migplan_outcome(map[i].r), map[i].k, "result %d", map[i].r);
}

#define RF(slug, sum)                                                                              \
    {                                                                                              \
        .version = -1, .version_text = "R", .name = slug, .up_path = "m/R__" slug ".sql",          \
        .checksum = sum, .repeatable = 1                                                           \
    }

/* Repeatables: new, unchanged and changed, after the versioned items, in name order. */
Test(migplan, repeatables_new_or_changed_are_applied, .timeout = 10)
{
    struct pge_migfile f[] = {MF(1, "0001", "one", S1), MF(2, "0002", "two", S2)};
    struct pge_migfile r[] = {RF("a_new", S3), RF("b_same", S4), RF("c_changed", S5)};
    struct pge_migset files = {f, 2, NULL, 0, r, 3};
    struct pge_migplan_row rows[] = {{1, "one", S1, NULL}};
    struct pge_migplan_row rrows[] = {
        {-1, "c_changed", S1, "t1"}, {-1, "b_same", S4, "t2"}, {-1, "gone", S2, "t3"}};
    struct pge_migplan plan;
    char err[256] = "";

    cr_assert_eq(pge_migplan_upgrade(&plan, &files, rows, 1, NULL, err, sizeof err),
                 PGE_MIGPLAN_OK);
    cr_assert_eq(pge_migplan_add_repeatables(&plan, &files, rrows, 3, 1), PGE_MIGPLAN_OK);
    cr_assert_eq(plan.count, 3);
    cr_assert_eq(plan.items[0].version, 2);
    cr_assert_eq(plan.items[1].file, &r[0]);
    cr_assert_null(plan.items[1].row);
    cr_assert_eq(plan.items[2].file, &r[2]);
    cr_assert_eq(plan.items[2].row, &rrows[0]);
    for (size_t i = 1; i < 3; i++) {
        cr_assert_eq(plan.items[i].action, PGE_MIGPLAN_DO_APPLY);
        cr_assert_eq(plan.items[i].state, PGE_MIGPLAN_IS_PENDING);
        cr_assert_str_eq(plan.items[i].version_text, "R");
    }
    cr_assert_str_eq(plan.head_text, "0001");
    pge_migplan_free(&plan);

    /* status: every one with its state (c_changed now recorded with its checksum). */
    rrows[0].checksum = SUM("5");
    cr_assert_eq(pge_migplan_history(&plan, &files, rows, 1, err, sizeof err), PGE_MIGPLAN_OK);
    cr_assert_eq(pge_migplan_add_repeatables(&plan, &files, rrows, 3, 0), PGE_MIGPLAN_OK);
    cr_assert_eq(plan.count, 5);
    cr_assert_eq(plan.items[2].state, PGE_MIGPLAN_IS_PENDING);
    cr_assert_eq(plan.items[3].state, PGE_MIGPLAN_IS_APPLIED);
    cr_assert_eq(plan.items[4].state, PGE_MIGPLAN_IS_APPLIED);
    cr_assert_eq(plan.items[4].action, PGE_MIGPLAN_DO_NOTHING);
    cr_assert_eq(plan.states[PGE_MIGPLAN_IS_APPLIED], 3);
    cr_assert_eq(plan.states[PGE_MIGPLAN_IS_PENDING], 2);
    pge_migplan_free(&plan);

    /* Nothing to do when every one is recorded with its checksum. */
    struct pge_migset only = {NULL, 0, NULL, 0, &r[1], 1};
    cr_assert_eq(pge_migplan_upgrade(&plan, &only, NULL, 0, NULL, err, sizeof err), PGE_MIGPLAN_OK);
    cr_assert_eq(pge_migplan_add_repeatables(&plan, &only, rrows, 3, 1), PGE_MIGPLAN_OK);
    cr_assert_eq(plan.count, 0);
    pge_migplan_free(&plan);
}
