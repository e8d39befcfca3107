/* Supervise COMMAND as init: spawn, forward signals, reap, stop with a grace period. */
#ifndef PGENTRY_SUPERVISE_SUPERVISOR_H
#define PGENTRY_SUPERVISE_SUPERVISOR_H

#include <ev.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pgentry/config/config.h"
#include "pgentry/supervise/privdrop.h"
#include "pgentry/common/outcome.h"
#include "pgentry/common/runstate.h"

struct pge_supervisor;

/* COMMAND always starts with default dispositions and an EMPTY signal mask, whatever mask
 * pgentry inherited: a signal left blocked in the child would turn every forwarded TERM into a
 * SIGKILL after --stop-timeout, which is exactly what a supervisor is there to prevent. */
struct pge_supervisor_opts {
    char **argv;                        /* COMMAND and arguments, NULL-terminated; borrowed */
    const char *user;                   /* --user USER[:GROUP] as typed, for messages; borrowed */
    const struct pge_privdrop *account; /* --user resolved by pge_privdrop_resolve() before the loop
                                         * runs (no NSS lookup on it), or NULL; borrowed */
    int signal_group;                   /* forward to the child's process group */
    const struct pge_rewrite *rewrite;
    size_t nrewrite;
    int64_t stop_timeout_ms;
    int64_t stop_delay_ms;         /* TERM/INT reach COMMAND only after this (0: at once) */
    struct pge_runstate *state;    /* app.* fields are kept up to date; may be NULL */
    const sigset_t *orig_mask;     /* the mask pgentry started with: COMMAND gets it back (NULL:
                                    * empty) */
    void (*on_running)(void *arg); /* COMMAND's exec succeeded (arg: the callback's); may be NULL */
};

/* Called once, when the main child has exited and every remaining descendant has been dealt
 * with: CHILD_EXIT (value = code), CHILD_SIGNAL (value = signal), NOT_FOUND (127),
 * CANNOT_EXEC (126), CONFIG (--user could not be applied; COMMAND never ran). */
typedef void (*pge_supervisor_cb)(void *arg, struct pge_outcome outcome);

/* Prepare process-wide init duties once at start-up (subreaper when not PID 1). Only for a
 * supervisor: the subreaper flag survives execve, so a process about to exec COMMAND (--exec)
 * must not call this. Returns 0 or -1 with errno. */
int pge_supervisor_init_process(void);

/* A supervisor on the default loop (child watchers need it). opts is copied; the strings and
 * the account it points to must outlive the supervisor. NULL when out of memory. */
struct pge_supervisor *pge_supervisor_new(struct ev_loop *loop,
                                          const struct pge_supervisor_opts *opts,
                                          pge_supervisor_cb cb, void *arg);

/* Fork and exec COMMAND (as opts->account when given) in its own process group; when
 * stdin is our controlling terminal and we are in its foreground, COMMAND gets the
 * foreground. Returns 0 (the outcome arrives through cb), or -1 with *out and a one-line
 * message in err when nothing could be started (the callback is not called). */
int pge_supervisor_start(struct pge_supervisor *s, struct pge_outcome *out, char *err,
                         size_t errsize);

/* A signal pgentry received while supervising: apply --rewrite, forward it (to the group with
 * --signal-group). A stop signal (TERM, INT, QUIT as received, unless rewritten to 0) also
 * starts --stop-timeout, after which the child's group is SIGKILLed. With stop_delay_ms, the
 * first TERM or INT is held that long before it is forwarded (and the stop timeout starts then);
 * another stop signal meanwhile is forwarded at once, instead of the held one. Once the main child
 * has exited, signals are no longer forwarded (the remaining processes are being stopped). */
void pge_supervisor_signal(struct pge_supervisor *s, int signo);

/* Whether signo asks pgentry to stop (TERM, INT or QUIT), in every phase. Pure. */
int pge_supervisor_is_stop_signal(int signo);

/* Whether supervision is in progress: from pge_supervisor_start until the callback has run
 * (signals belong to the supervisor during that time). */
int pge_supervisor_active(const struct pge_supervisor *s);

/* pge_supervisor_exec lives in spawn.c, with COMMAND's own fork. */

/* --exec: replace the process with COMMAND (after switching to opts->account, default
 * dispositions, empty mask). Returns only on failure, with the outcome (NOT_FOUND, CANNOT_EXEC,
 * CONFIG) and a message in err. */
struct pge_outcome pge_supervisor_exec(const struct pge_supervisor_opts *opts, char *err,
                                       size_t errsize);

/* Fork a helper process (such as --password-command) as COMMAND is started: signals blocked
 * across fork, its own process group, default dispositions, mask restored to mask (NULL:
 * empty), stdin and stdout replaced by in_fd and out_fd (-1: inherited; the caller still owns
 * and closes both), descriptors from 3 closed, then execve(path, argv, envp). Returns the pid,
 * or -1 with errno; a failed exec exits 127. The caller watches the pid with an ev_child. */
pid_t pge_supervisor_spawn_stdio(const char *path, char *const argv[], char *const envp[],
                                 const sigset_t *mask, int in_fd, int out_fd);

/* Stop watching (children are left alone). NULL-safe. */
void pge_supervisor_free(struct pge_supervisor *s);

#endif
