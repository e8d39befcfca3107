/* Watching every signal pgentry forwards or stops on, for the whole run. */
#ifndef PGENTRY_RUN_SIGNALS_H
#define PGENTRY_RUN_SIGNALS_H

#include <ev.h>
#include <stddef.h>

#define PGE_SIGNALS_MAX 64

/* Called on the loop for each signal received. */
typedef void (*pge_signals_cb)(void *arg, int signo);

/* Caller-owned watchers; zero it before pge_signals_watch(). */
struct pge_signals {
    struct ev_loop *loop;
    pge_signals_cb cb;
    void *arg;
    ev_signal sigs[PGE_SIGNALS_MAX];
    size_t n;
};

/* Watch every signal a supervisor forwards and unblock them (a signal blocked when we were
 * started would reach neither a watcher nor the child). Synchronous faults stay fatal, KILL and
 * STOP cannot be caught, CHLD belongs to libev's reaper, PIPE is ignored (our own writes), and
 * TTIN and TTOU are ignored, not forwarded (as tini does). Call it first, before any work that
 * can take time: as PID 1 a signal with no watcher is lost. The watchers do not keep the loop
 * alive. */
void pge_signals_watch(struct pge_signals *s, struct ev_loop *loop, pge_signals_cb cb, void *arg);

/* Block the watched signals, then stop every watcher: a late signal stays pending instead of
 * killing the process with its default action. Safe on a zeroed struct and to call twice. */
void pge_signals_unwatch(struct pge_signals *s);

#endif
