/* Log throttling: a changed failure is logged at once, an unchanged one at doubling intervals. */
#include "pgentry/common/throttle.h"

#include <stdio.h>
#include <string.h>

void pge_throttle_init(struct pge_throttle *t, int64_t first_ms, int64_t max_ms)
{
    memset(t, 0, sizeof *t);
    t->first_ms = first_ms;
    t->max_ms = max_ms < first_ms ? first_ms : max_ms;
    t->every_ms = first_ms;
}

enum pge_throttle_verdict pge_throttle_should_log(struct pge_throttle *t, const char *key,
                                                  int64_t now_ms)
{
    int changed = !t->seen || strncmp(key, t->key, sizeof t->key - 1) != 0;
    if (!changed && now_ms - t->last_ms < t->every_ms)
        return PGE_THROTTLE_QUIET;
    if (changed) {
        snprintf(t->key, sizeof t->key, "%s", key);
        t->seen = 1;
        t->every_ms = t->first_ms;
    } else if (t->every_ms < t->max_ms) {
        t->every_ms *= 2;
        if (t->every_ms > t->max_ms)
            t->every_ms = t->max_ms;
    }
    t->last_ms = now_ms;
    return changed ? PGE_THROTTLE_CHANGED : PGE_THROTTLE_REPEAT;
}
