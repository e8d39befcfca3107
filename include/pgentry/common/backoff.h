/* Capped exponential backoff with full jitter and a deadline: a pure function of its state. */
#ifndef PGENTRY_COMMON_BACKOFF_H
#define PGENTRY_COMMON_BACKOFF_H

#include <stdint.h>

/* Defaults, chosen so that a server that comes up is noticed within tens of milliseconds
 * (mean gap 20 ms once capped) while a down server costs well under 1% of a core. */
#define PGE_BACKOFF_INITIAL_MS 10
#define PGE_BACKOFF_MAX_MS     40

/* Plain data, owned by the caller. */
struct pge_backoff {
    int64_t initial_ms;
    int64_t max_ms;
    unsigned attempt; /* delays handed out so far */
    int final_given;  /* the attempt at the deadline was scheduled */
    uint64_t rng;     /* splitmix64 state */
};

/* Result of pge_backoff_next(). */
enum pge_backoff_verdict {
    PGE_BACKOFF_RETRY = 0, /* try again after *delay_ms */
    PGE_BACKOFF_FINAL,     /* try once more after *delay_ms, exactly at the deadline */
    PGE_BACKOFF_EXPIRED,   /* the deadline has passed: give up */
};

/* Start a schedule. max_ms < initial_ms is raised to initial_ms. seed fixes the jitter. */
void pge_backoff_init(struct pge_backoff *b, int64_t initial_ms, int64_t max_ms, uint64_t seed);

/* Forget past attempts (the same dependency failed in a new way worth retrying fast). */
void pge_backoff_reset(struct pge_backoff *b);

/* The delay before the next attempt, after a failed one that ended at now_ms.
 * Full jitter: uniform in [1, min(max, initial * 2^attempt)] ms. deadline_ms == 0 means no
 * deadline; otherwise an attempt that would start after the deadline is moved to the
 * deadline itself (FINAL), and once that has been handed out, or now is past the deadline,
 * the verdict is EXPIRED. Pure: same state, now and deadline give the same answer. */
enum pge_backoff_verdict pge_backoff_next(struct pge_backoff *b, int64_t now_ms,
                                          int64_t deadline_ms, int64_t *delay_ms);

/* pge_backoff_next() with the jittered delay clamped to [floor_ms, ceil_ms] before the deadline
 * rule is applied: how a caller paces outcomes that are cheap to retry (ceil) or costly for
 * the server (floor). floor_ms 0 and ceil_ms INT64_MAX change nothing. Pure. */
enum pge_backoff_verdict pge_backoff_next_clamped(struct pge_backoff *b, int64_t now_ms,
                                                  int64_t deadline_ms, int64_t floor_ms,
                                                  int64_t ceil_ms, int64_t *delay_ms);

/* The next pseudo-random 64-bit number of the state (exposed for other jittered waits). */
uint64_t pge_backoff_random(struct pge_backoff *b);

#endif
