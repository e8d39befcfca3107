/* --app-health-url: poll the application's own health endpoint on the loop, cache the answer. */
#ifndef PGENTRY_HEALTH_APPHEALTH_H
#define PGENTRY_HEALTH_APPHEALTH_H

#include <stdint.h>

#include "pgentry/net/curlloop.h"
#include "pgentry/common/runstate.h"

#define PGE_APPHEALTH_INTERVAL_MS 1000 /* how stale the cached answer may get */
#define PGE_APPHEALTH_TIMEOUT_MS  900  /* one probe; below the interval so probes never pile up */

struct pge_apphealth;

/* Poll url every interval_ms while state->app.running, writing state->app.healthy (0 until the
 * first 2xx, then the latest answer). Logs only when the answer changes. url, curl and state
 * must outlive the poller. NULL when out of memory. */
struct pge_apphealth *pge_apphealth_new(struct pge_curlloop *curl, struct ev_loop *loop,
                                        const char *url, struct pge_runstate *state,
                                        int64_t interval_ms);

/* Stop polling; a probe in flight is abandoned. NULL-safe. */
void pge_apphealth_free(struct pge_apphealth *a);

#endif
