/* Log throttling: a changed failure is logged at once, an unchanged one at doubling intervals. */
#ifndef PGENTRY_COMMON_THROTTLE_H
#define PGENTRY_COMMON_THROTTLE_H

#include <stdint.h>

#define PGE_THROTTLE_KEY_MAX 600 /* longer keys are compared on their first 599 bytes */

/* Result of pge_throttle_should_log(). Non-zero means: log this one. */
enum pge_throttle_verdict {
    PGE_THROTTLE_QUIET = 0, /* same key as last logged, its interval not over yet */
    PGE_THROTTLE_CHANGED,   /* the first key, or a new one: the interval is back to first_ms */
    PGE_THROTTLE_REPEAT,    /* same key, its interval is over: the interval doubles (to max_ms) */
};

/* Plain data, owned by the caller. */
struct pge_throttle {
    char key[PGE_THROTTLE_KEY_MAX]; /* the key last logged (truncated copy) */
    int seen;                       /* a key was logged at least once */
    int64_t last_ms;                /* when it was logged */
    int64_t every_ms;               /* the interval before an unchanged key is logged again */
    int64_t first_ms, max_ms;
};

/* Start with nothing logged: the first key is CHANGED. An unchanged key is logged again after
 * first_ms, then after twice that, and so on up to max_ms. */
void pge_throttle_init(struct pge_throttle *t, int64_t first_ms, int64_t max_ms);

/* Whether the event named key (a NUL-terminated string that identifies the failure, e.g.
 * "outcome|sqlstate|message"; not kept) at now_ms should be logged. A non-QUIET verdict is
 * taken to mean the caller logs it: the state advances. Pure: time is passed in. */
enum pge_throttle_verdict pge_throttle_should_log(struct pge_throttle *t, const char *key,
                                                  int64_t now_ms);

#endif
