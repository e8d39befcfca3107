/* Unit tests for the log throttle, driven by a fake clock. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "pgentry/common/throttle.h"

#define Q PGE_THROTTLE_QUIET
#define C PGE_THROTTLE_CHANGED
#define R PGE_THROTTLE_REPEAT

struct step {
    int64_t now;
    const char *key;
    enum pge_throttle_verdict want;
    int64_t every_after; /* the interval once the step is done */
};

static void run(const char *name, int64_t first, int64_t max, const struct step *s, size_t n)
{
    struct pge_throttle t;
    pge_throttle_init(&t, first, max);
    for (size_t i = 0; i < n; i++) {
        enum pge_throttle_verdict v = pge_throttle_should_log(&t, s[i].key, s[i].now);
        cr_assert_eq(v, s[i].want, "%s step %zu (t=%lld key=%s): got %d want %d", name, i,
                     (long long)s[i].now, s[i].key, (int)v, (int)s[i].want);
        cr_assert_eq(t.every_ms, s[i].every_after, "%s step %zu: interval %lld want %lld", name, i,
                     (long long)t.every_ms, (long long)s[i].every_after);
    }
}

#define RUN(name, first, max, steps) run(name, first, max, steps, sizeof steps / sizeof steps[0])

Test(throttle, schedules_by_table, .timeout = 10)
{
    static const struct step doubling[] = {
        {0, "a", C, 1000},      {10, "a", Q, 1000},     {999, "a", Q, 1000},
        {1000, "a", R, 2000},   {2999, "a", Q, 2000},   {3000, "a", R, 4000},
        {7000, "a", R, 8000},   {15000, "a", R, 16000}, {31000, "a", R, 30000},
        {60999, "a", Q, 30000}, {61000, "a", R, 30000}, {91000, "a", R, 30000},
    };
    static const struct step change_resets[] = {
        {5, "refused", C, 1000}, {1005, "refused", R, 2000}, {1006, "auth", C, 1000},
        {1007, "auth", Q, 1000}, {1008, "refused", C, 1000}, {2008, "refused", R, 2000},
        {2009, "", C, 1000},     {2010, "", Q, 1000},
    };
    static const struct step first_key_empty[] = {
        {0, "", C, 1000},
        {1, "", Q, 1000},
        {1000, "", R, 2000},
    };
    static const struct step max_below_first[] = {
        {0, "x", C, 500},
        {500, "x", R, 500},
        {1000, "x", R, 500},
    };
    static const struct step clock_starts_late[] = {
        {1000000, "k", C, 100}, {1000099, "k", Q, 100}, {1000100, "k", R, 200},
        {1000299, "k", Q, 200}, {1000300, "k", R, 250}, {1000550, "k", R, 250},
    };
    RUN("doubling", 1000, 30000, doubling);
    RUN("change_resets", 1000, 30000, change_resets);
    RUN("first_key_empty", 1000, 30000, first_key_empty);
    RUN("max_below_first", 500, 100, max_below_first);
    RUN("clock_starts_late", 100, 250, clock_starts_late);
}

Test(throttle, long_keys_compare_on_their_stored_prefix, .timeout = 10)
{
    static char a[PGE_THROTTLE_KEY_MAX + 50], b[PGE_THROTTLE_KEY_MAX + 50];
    struct pge_throttle t;
    memset(a, 'x', sizeof a - 1);
    memcpy(b, a, sizeof b);
    b[sizeof b - 2] = 'y'; /* differs only beyond what is kept */
    pge_throttle_init(&t, 1000, 30000);
    cr_assert_eq(pge_throttle_should_log(&t, a, 0), C);
    cr_assert_eq(pge_throttle_should_log(&t, b, 1), Q);
    cr_assert_eq(strlen(t.key), PGE_THROTTLE_KEY_MAX - 1);
    b[10] = 'y';
    cr_assert_eq(pge_throttle_should_log(&t, b, 2), C);
}

Test(throttle, key_is_copied_not_kept, .timeout = 10)
{
    char key[16] = "first";
    struct pge_throttle t;
    pge_throttle_init(&t, 1000, 30000);
    cr_assert_eq(pge_throttle_should_log(&t, key, 0), C);
    strcpy(key, "second");
    cr_assert_eq(pge_throttle_should_log(&t, "first", 1), Q);
    cr_assert_eq(pge_throttle_should_log(&t, key, 2), C);
}
