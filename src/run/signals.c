/* Watching every signal pgentry forwards or stops on, for the whole run. */
#include "pgentry/run/signals.h"

#include <pthread.h>
#include <signal.h>

#include "pgentry/common/log.h"

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct pge_signals *s = w->data;
    (void)loop;
    (void)revents;
    s->cb(s->arg, w->signum);
}

static int skipped(int signo)
{
    static const int skip[] = {SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS,  SIGFPE, SIGILL,
                               SIGTRAP, SIGABRT, SIGSYS,  SIGPIPE, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (skip[i] == signo)
            return 1;
    /* 32 and 33 belong to the C library's threads. */
    return signo > 31 && signo < SIGRTMIN;
}

void pge_signals_watch(struct pge_signals *s, struct ev_loop *loop, pge_signals_cb cb, void *arg)
{
    sigset_t watched;
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    sigemptyset(&watched);
    /* libev reaps on SIGCHLD: a CHLD blocked by whoever started us would leave zombies. */
    sigaddset(&watched, SIGCHLD);
    signal(SIGPIPE, SIG_IGN);
    /* As tini does: a background pgentry touching the terminal (tcsetpgrp, a log line with
     * TOSTOP) must neither stop nor pass the stop on to COMMAND, which gets defaults. */
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    for (int signo = 1; signo < NSIG && s->n < PGE_SIGNALS_MAX; signo++) {
        if (skipped(signo))
            continue;
        ev_signal *w = &s->sigs[s->n++];
        ev_signal_init(w, on_signal, signo);
        w->data = s;
        ev_signal_start(loop, w);
        /* Signal watchers must not keep the loop alive on their own. */
        ev_unref(loop);
        sigaddset(&watched, signo);
    }
    if (pthread_sigmask(SIG_UNBLOCK, &watched, NULL) != 0)
        pge_warn("could not unblock the forwarded signals");
}

void pge_signals_unwatch(struct pge_signals *s)
{
    sigset_t late;
    sigemptyset(&late);
    for (size_t i = 0; i < s->n; i++)
        sigaddset(&late, s->sigs[i].signum);
    /* Stopping a watcher restores the default disposition: a TERM arriving between here and
     * exit would kill us and replace the app's exit code. Blocked, it stays pending (children
     * and --exec get the original mask back explicitly). */
    if (s->n > 0 && pthread_sigmask(SIG_BLOCK, &late, NULL) != 0)
        pge_warn("could not block signals for the teardown");
    for (size_t i = 0; i < s->n; i++) {
        ev_ref(s->loop);
        ev_signal_stop(s->loop, &s->sigs[i]);
    }
    s->n = 0;
}
