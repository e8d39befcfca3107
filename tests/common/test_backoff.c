/* Unit tests for the backoff schedule, driven by a fake clock and fixed seeds. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "pgentry/common/backoff.h"

/* The ceiling of attempt n: min(max, initial * 2^n). */
static int64_t ceiling(int64_t initial, int64_t max, unsigned n)
{
    int64_t c = initial;
    for (unsigned i = 0; i < n && c < max; i++)
        c *= 2;
    return c < max ? c : max;
}

Test(backoff, every_delay_within_its_ceiling, .timeout = 10)
{
    static const struct {
        int64_t initial, max;
    } schedules[] = {{10, 50}, {1, 1}, {1, 1000}, {100, 30000}, {250, 250}, {7, 100}};
    for (size_t s = 0; s < sizeof schedules / sizeof schedules[0]; s++) {
        for (uint64_t seed = 0; seed < 50; seed++) {
            struct pge_backoff b;
            pge_backoff_init(&b, schedules[s].initial, schedules[s].max, seed);
            for (unsigned n = 0; n < 40; n++) {
                int64_t d = -1;
                cr_assert_eq(pge_backoff_next(&b, 1000 + n, 0, &d), PGE_BACKOFF_RETRY);
                int64_t c = ceiling(schedules[s].initial, schedules[s].max, n);
                cr_assert(d >= 1 && d <= c,
                          "schedule %zu seed %llu attempt %u: %lld not in [1,%lld]", s,
                          (unsigned long long)seed, n, (long long)d, (long long)c);
            }
        }
    }
}

Test(backoff, cap_is_reached_and_never_exceeded, .timeout = 10)
{
    struct pge_backoff b;
    int64_t seen_max = 0;
    pge_backoff_init(&b, 10, 50, 42);
    for (int n = 0; n < 5000; n++) {
        int64_t d;
        pge_backoff_next(&b, 0, 0, &d);
        cr_assert_leq(d, 50);
        if (d > seen_max)
            seen_max = d;
    }
    cr_assert_eq(seen_max, 50, "the cap was never handed out (max %lld)", (long long)seen_max);
    /* Thousands of attempts later the ceiling has not overflowed: still capped, still >= 1. */
    pge_backoff_init(&b, 1, 3600000, 7);
    for (int n = 0; n < 200; n++) {
        int64_t d;
        pge_backoff_next(&b, 0, 0, &d);
        cr_assert(d >= 1 && d <= 3600000, "attempt %d: %lld", n, (long long)d);
    }
}

Test(backoff, ceiling_doubles_from_initial, .timeout = 10)
{
    /* Over many seeds the largest delay of attempt n is its ceiling: 10, 20, 40, 80, 80. */
    static const int64_t want[] = {10, 20, 40, 80, 80, 80};
    int64_t seen[6] = {0};
    for (uint64_t seed = 0; seed < 2000; seed++) {
        struct pge_backoff b;
        pge_backoff_init(&b, 10, 80, seed);
        for (int n = 0; n < 6; n++) {
            int64_t d;
            pge_backoff_next(&b, 0, 0, &d);
            if (d > seen[n])
                seen[n] = d;
        }
    }
    for (int n = 0; n < 6; n++)
        cr_assert_eq(seen[n], want[n], "attempt %d: largest %lld, ceiling %lld", n,
                     (long long)seen[n], (long long)want[n]);
}

Test(backoff, jitter_spreads_over_the_range, .timeout = 10)
{
    /* Full jitter at the cap: uniform on [1, 100]. 10000 samples: every tenth of the range
     * gets 1000 +- a few sigma (sigma ~ 30), and the mean is 50.5 +- 1. */
    struct pge_backoff b;
    unsigned buckets[10] = {0};
    double sum = 0;
    int64_t first = -1;
    int all_equal = 1;
    pge_backoff_init(&b, 100, 100, 2024);
    for (int n = 0; n < 10000; n++) {
        int64_t d;
        pge_backoff_next(&b, 0, 0, &d);
        if (first < 0)
            first = d;
        all_equal = all_equal && d == first;
        buckets[(d - 1) / 10]++;
        sum += (double)d;
    }
    cr_assert_not(all_equal, "no jitter at all");
    for (int i = 0; i < 10; i++)
        cr_assert(buckets[i] > 850 && buckets[i] < 1150, "bucket %d has %u of 10000", i,
                  buckets[i]);
    double mean = sum / 10000;
    cr_assert(mean > 49.5 && mean < 51.5, "mean %.2f", mean);
}

Test(backoff, same_seed_same_schedule, .timeout = 10)
{
    struct pge_backoff a, b, c;
    int differs = 0;
    pge_backoff_init(&a, 10, 5000, 99);
    pge_backoff_init(&b, 10, 5000, 99);
    pge_backoff_init(&c, 10, 5000, 100);
    for (int n = 0; n < 100; n++) {
        int64_t da, db, dc;
        cr_assert_eq(pge_backoff_next(&a, n * 10, 100000, &da),
                     pge_backoff_next(&b, n * 10, 100000, &db));
        cr_assert_eq(da, db, "attempt %d: %lld vs %lld", n, (long long)da, (long long)db);
        pge_backoff_next(&c, n * 10, 100000, &dc);
        differs += dc != da;
    }
    cr_assert_gt(differs, 50, "another seed gave nearly the same schedule");
    cr_assert_eq(pge_backoff_random(&a), pge_backoff_random(&b));
}

Test(backoff, last_attempt_lands_exactly_at_the_deadline, .timeout = 10)
{
    /* Fake clock: each failed attempt returns at once (refused), then the delay is slept.
     * Whatever the seed and schedule, exactly one attempt is scheduled at the deadline itself,
     * none after it, and the next answer is EXPIRED. */
    static const struct {
        int64_t initial, max, start, deadline;
    } cases[] = {
        {10, 50, 0, 1000}, {10, 50, 5000, 5017}, {100, 30000, 0, 60000},
        {1, 1, 0, 40},     {1000, 1000, 0, 999}, {10, 50, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (uint64_t seed = 1; seed <= 20; seed++) {
            struct pge_backoff b;
            int64_t now = cases[i].start, d = -1;
            int finals = 0;
            unsigned steps = 0;
            enum pge_backoff_verdict v;
            pge_backoff_init(&b, cases[i].initial, cases[i].max, seed);
            while ((v = pge_backoff_next(&b, now, cases[i].deadline, &d)) != PGE_BACKOFF_EXPIRED) {
                cr_assert_geq(d, 1);
                now += d;
                cr_assert_leq(now, cases[i].deadline, "case %zu: attempt after the deadline", i);
                if (v == PGE_BACKOFF_FINAL) {
                    finals++;
                    cr_assert_eq(now, cases[i].deadline, "case %zu seed %llu: final at %lld", i,
                                 (unsigned long long)seed, (long long)now);
                }
                cr_assert_lt(++steps, 100000, "never expires");
            }
            cr_assert_eq(finals, 1, "case %zu seed %llu: %d final attempts", i,
                         (unsigned long long)seed, finals);
            cr_assert_eq(d, 0);
            cr_assert_eq(pge_backoff_next(&b, now, cases[i].deadline, &d), PGE_BACKOFF_EXPIRED,
                         "expired is not for good");
        }
    }
}

Test(backoff, attempt_running_past_the_deadline_expires, .timeout = 10)
{
    /* A slow attempt that started before the deadline and ended after it: no final one. */
    struct pge_backoff b;
    int64_t d;
    pge_backoff_init(&b, 10, 10, 1);
    cr_assert_eq(pge_backoff_next(&b, 0, 1000, &d), PGE_BACKOFF_RETRY);
    cr_assert_eq(pge_backoff_next(&b, 1005, 1000, &d), PGE_BACKOFF_EXPIRED);
    cr_assert_eq(d, 0);
}

Test(backoff, deadline_already_past_expires_at_once, .timeout = 10)
{
    struct pge_backoff b;
    int64_t d = -1;
    pge_backoff_init(&b, 10, 50, 1);
    cr_assert_eq(pge_backoff_next(&b, 2000, 2000, &d), PGE_BACKOFF_EXPIRED);
    cr_assert_eq(d, 0);
    pge_backoff_init(&b, 10, 50, 1);
    cr_assert_eq(pge_backoff_next(&b, 2500, 2000, &d), PGE_BACKOFF_EXPIRED);
}

Test(backoff, final_given_once_even_if_called_early_again, .timeout = 10)
{
    /* 10 ms before the deadline with delays of up to 1 s: a seed that lands past it. */
    struct pge_backoff b;
    int64_t d = -1;
    uint64_t seed = 0;
    do
        pge_backoff_init(&b, 1000, 1000, ++seed);
    while (pge_backoff_next(&b, 990, 1000, &d) != PGE_BACKOFF_FINAL);
    cr_assert_eq(d, 10);
    /* The final attempt failed fast, well before the deadline: still no second final. */
    cr_assert_eq(pge_backoff_next(&b, 995, 1000, &d), PGE_BACKOFF_EXPIRED);
}

Test(backoff, no_deadline_never_expires, .timeout = 10)
{
    struct pge_backoff b;
    int64_t now = 0;
    pge_backoff_init(&b, 10, 50, 5);
    for (int n = 0; n < 100000; n++) {
        int64_t d;
        cr_assert_eq(pge_backoff_next(&b, now, 0, &d), PGE_BACKOFF_RETRY, "attempt %d", n);
        now += d + 5;
    }
    cr_assert_gt(now, 100000);
}

Test(backoff, reset_starts_from_initial_again, .timeout = 10)
{
    struct pge_backoff b;
    int64_t d;
    pge_backoff_init(&b, 10, 10000, 11);
    for (int n = 0; n < 20; n++)
        pge_backoff_next(&b, 0, 0, &d);
    pge_backoff_reset(&b);
    cr_assert_eq(b.attempt, 0);
    for (int n = 0; n < 3; n++) {
        pge_backoff_next(&b, 0, 0, &d);
        cr_assert_leq(d, ceiling(10, 10000, (unsigned)n), "attempt %d after reset: %lld", n,
                      (long long)d);
    }
}

Test(backoff, init_clamps_nonsense, .timeout = 10)
{
    struct pge_backoff b;
    pge_backoff_init(&b, 0, -5, 1);
    cr_assert_eq(b.initial_ms, 1);
    cr_assert_eq(b.max_ms, 1);
    pge_backoff_init(&b, 200, 100, 1);
    cr_assert_eq(b.initial_ms, 200);
    cr_assert_eq(b.max_ms, 200);
    for (int n = 0; n < 10; n++) {
        int64_t d;
        pge_backoff_next(&b, 0, 0, &d);
        cr_assert(d >= 1 && d <= 200);
    }
}

Test(backoff, clamped_delays_respect_floor_ceiling_and_deadline, .timeout = 10)
{
    struct pge_backoff b;
    int64_t d;
    pge_backoff_init(&b, 10, 40, 7);
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(pge_backoff_next_clamped(&b, 0, 0, 0, 5, &d), PGE_BACKOFF_RETRY);
        cr_assert(d >= 1 && d <= 5, "ceiling 5 broken: %lld", (long long)d);
    }
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(pge_backoff_next_clamped(&b, 0, 0, 100, INT64_MAX, &d), PGE_BACKOFF_RETRY);
        cr_assert_eq(d, 100, "floor 100 broken: %lld", (long long)d);
    }
    /* A floor never pushes an attempt past the deadline: the last one lands on it. */
    pge_backoff_init(&b, 10, 40, 7);
    cr_assert_eq(pge_backoff_next_clamped(&b, 950, 1000, 100, INT64_MAX, &d), PGE_BACKOFF_FINAL);
    cr_assert_eq(d, 50);
    cr_assert_eq(pge_backoff_next_clamped(&b, 1001, 1000, 100, INT64_MAX, &d), PGE_BACKOFF_EXPIRED);
}
