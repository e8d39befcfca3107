/* --app-health-url: poll the application's own health endpoint on the loop, cache the answer. */
#include "pgentry/health/apphealth.h"

#include <stdlib.h>

#include "pgentry/net/httpprobe.h"
#include "pgentry/common/log.h"

struct pge_apphealth {
    struct ev_loop *loop;
    struct pge_curlloop *curl;
    const char *url;
    struct pge_runstate *state;
    ev_timer timer;
    struct pge_httpprobe *probe;
    int last; /* -1 unknown, 0 failing, 1 healthy: what was last logged */
};

static void on_probe(void *arg, int ok, long status, enum pge_attempt_outcome outcome,
                     const char *message)
{
    struct pge_apphealth *a = arg;
    (void)status;
    (void)outcome;
    pge_httpprobe_free(a->probe);
    a->probe = NULL;
    a->state->app.healthy = ok;
    if (ok != a->last) {
        if (ok)
            pge_info("application health check passes", PGE_STR("detail", message));
        else
            pge_warn("application health check fails: not ready", PGE_STR("detail", message));
        a->last = ok;
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_apphealth *a = w->data;
    (void)loop;
    (void)revents;
    if (!a->state->app.running || a->probe)
        return;
    a->probe = pge_httpprobe_start(a->curl, a->url, PGE_APPHEALTH_TIMEOUT_MS, on_probe, a);
}

struct pge_apphealth *pge_apphealth_new(struct pge_curlloop *curl, struct ev_loop *loop,
                                        const char *url, struct pge_runstate *state,
                                        int64_t interval_ms)
{
    struct pge_apphealth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->loop = loop;
    a->curl = curl;
    a->url = url;
    a->state = state;
    a->last = -1;
    state->app.healthy = 0;
    ev_timer_init(&a->timer, on_timer, 0.0, (double)interval_ms / 1000.0);
    a->timer.data = a;
    ev_timer_start(loop, &a->timer);
    /* Polling alone must not keep the loop running. */
    ev_unref(loop);
    return a;
}

void pge_apphealth_free(struct pge_apphealth *a)
{
    if (!a)
        return;
    ev_ref(a->loop);
    ev_timer_stop(a->loop, &a->timer);
    pge_httpprobe_free(a->probe);
    free(a);
}
