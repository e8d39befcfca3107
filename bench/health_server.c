/* Benchmark driver: the health endpoint alone on a libev loop, until SIGINT or SIGTERM. */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/health/health.h"
#include "pgentry/common/log.h"
#include "pgentry/common/runstate.h"

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct ev_loop *loop = ev_default_loop(0);
    struct pge_runstate st;
    struct pge_health *h;
    ev_signal sigint, sigterm;
    char err[256];

    if (argc < 2 || (argc == 3 && strcmp(argv[2], "ready") != 0) || argc > 3) {
        fprintf(stderr, "usage: %s HOST:PORT [ready]\n", argv[0]);
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    pge_runstate_init(&st);
    if (argc == 3) {
        st.phase = PGE_PHASE_RUNNING;
        st.app.running = 1;
        st.app.pid = 1;
    }
    h = pge_health_new(loop, argv[1], &st, err, sizeof err);
    if (!h) {
        fprintf(stderr, "%s\n", err);
        return 78;
    }
    ev_signal_init(&sigint, on_stop, SIGINT);
    ev_signal_init(&sigterm, on_stop, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    ev_run(loop, 0);
    ev_signal_stop(loop, &sigint);
    ev_signal_stop(loop, &sigterm);
    pge_health_free(h);
    return 0;
}
