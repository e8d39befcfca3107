/* Supervise COMMAND as init: spawn, forward signals, reap, stop with a grace period. */
#ifndef PGENTRY_SUPER_H
#define PGENTRY_SUPER_H

#include <ev.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pgentry/config.h"
#include "pgentry/outcome.h"
#include "pgentry/state.h"

struct pge_super;

struct pge_super_opts {
    char **argv;      /* COMMAND and arguments, NULL-terminated; borrowed */
    const char *user; /* --user USER[:GROUP], or NULL */
    int signal_group; /* forward to the child's process group */
    const struct pge_rewrite *rewrite;
    size_t nrewrite;
    int64_t stop_timeout_ms;
    struct pge_state *state;   /* app.* fields are kept up to date; may be NULL */
    const sigset_t *orig_mask; /* the signal mask pgentry started with, restored in the child */
};

/* Called once, when the main child has exited and every remaining descendant has been dealt
 * with: CHILD_EXIT (value = code), CHILD_SIGNAL (value = signal), NOT_FOUND (127),
 * CANNOT_EXEC (126), CONFIG (--user could not be applied; COMMAND never ran). */
typedef void (*pge_super_cb)(void *arg, struct pge_outcome outcome);

/* Prepare process-wide init duties once at start-up (subreaper when not PID 1). Returns 0 or
 * -1 with errno. */
int pge_super_init_process(void);

/* A supervisor on the default loop (child watchers need it). opts is copied; the strings it
 * points to must outlive the supervisor. NULL when out of memory. */
struct pge_super *pge_super_new(struct ev_loop *loop, const struct pge_super_opts *opts,
                                pge_super_cb cb, void *arg);

/* Fork and exec COMMAND. Returns 0 (the outcome arrives through cb), or -1 with *out and a
 * one-line message in err when nothing could be started (the callback is not called). */
int pge_super_start(struct pge_super *s, struct pge_outcome *out, char *err, size_t errsize);

/* A signal pgentry received while COMMAND runs: apply --rewrite, forward it; a stop signal
 * (TERM, INT, QUIT — as received) also starts the --stop-timeout after which the child's group
 * is killed. */
void pge_super_signal(struct pge_super *s, int signo);

/* The main child's pid, or 0. */
pid_t pge_super_pid(const struct pge_super *s);

/* --exec: replace the process with COMMAND (after --user). Returns only on failure, with the
 * outcome (NOT_FOUND, CANNOT_EXEC, CONFIG) and a message in err. */
struct pge_outcome pge_super_exec(const struct pge_super_opts *opts, char *err, size_t errsize);

/* Stop watching (children are left alone). NULL-safe. */
void pge_super_free(struct pge_super *s);

#endif
