/* Capped exponential backoff with full jitter and a deadline: a pure function of its state. */
#include "pgentry/common/backoff.h"

void pge_backoff_init(struct pge_backoff *b, int64_t initial_ms, int64_t max_ms, uint64_t seed)
{
    if (initial_ms < 1)
        initial_ms = 1;
    if (max_ms < initial_ms)
        max_ms = initial_ms;
    b->initial_ms = initial_ms;
    b->max_ms = max_ms;
    b->attempt = 0;
    b->final_given = 0;
    b->rng = seed;
}

void pge_backoff_reset(struct pge_backoff *b)
{
    b->attempt = 0;
}

uint64_t pge_backoff_random(struct pge_backoff *b)
{
    /* splitmix64: tiny, well-distributed, and reproducible from a seed. */
    uint64_t z = (b->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

enum pge_backoff_verdict pge_backoff_next_clamped(struct pge_backoff *b, int64_t now_ms,
                                                  int64_t deadline_ms, int64_t floor_ms,
                                                  int64_t ceil_ms, int64_t *delay_ms)
{
    int64_t ceiling = b->initial_ms;
    for (unsigned i = 0; i < b->attempt && ceiling < b->max_ms; i++)
        ceiling *= 2;
    if (ceiling > b->max_ms)
        ceiling = b->max_ms;
    int64_t delay = 1 + (int64_t)(pge_backoff_random(b) % (uint64_t)ceiling);
    if (b->attempt < 64)
        b->attempt++;
    if (delay > ceil_ms)
        delay = ceil_ms < 1 ? 1 : ceil_ms;
    if (delay < floor_ms)
        delay = floor_ms;

    *delay_ms = delay;
    if (deadline_ms <= 0)
        return PGE_BACKOFF_RETRY;
    if (b->final_given || now_ms >= deadline_ms) {
        *delay_ms = 0;
        return PGE_BACKOFF_EXPIRED;
    }
    if (now_ms + delay >= deadline_ms) {
        *delay_ms = deadline_ms - now_ms;
        b->final_given = 1;
        return PGE_BACKOFF_FINAL;
    }
    return PGE_BACKOFF_RETRY;
}

enum pge_backoff_verdict pge_backoff_next(struct pge_backoff *b, int64_t now_ms,
                                          int64_t deadline_ms, int64_t *delay_ms)
{
    return pge_backoff_next_clamped(b, now_ms, deadline_ms, 0, INT64_MAX, delay_ms);
}
