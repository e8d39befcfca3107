/* Fork and exec COMMAND as an init must: own process group, default dispositions, original mask. */
#ifndef PGENTRY_SUPERVISE_SPAWN_H
#define PGENTRY_SUPERVISE_SPAWN_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "pgentry/common/outcome.h"
#include "pgentry/supervise/privdrop.h"

/* What the child writes on its CLOEXEC report pipe when it cannot exec (EOF means exec
 * succeeded). */
enum pge_spawn_stage { PGE_SPAWN_STAGE_EXEC = 1, PGE_SPAWN_STAGE_USER = 2 };
struct pge_spawn_report {
    int stage;     /* enum pge_spawn_stage */
    int err;       /* errno of the failed call */
    char step[16]; /* the credential call that failed (STAGE_USER) */
};

/* How to start COMMAND; every pointer is borrowed for the duration of the call. */
struct pge_spawn_cmd {
    char **argv;                        /* COMMAND and arguments, NULL-terminated */
    char **envp;                        /* its environment */
    const struct pge_privdrop *account; /* switch to it before exec, or NULL */
    const sigset_t *orig_mask;          /* restored before exec (NULL: empty) */
    int tty_fd;                         /* terminal whose foreground COMMAND gets, or -1 */
};

/* Fork COMMAND with every signal blocked across the fork; the child takes its own process
 * group (and tty_fd's foreground), resets every disposition, drops privileges, restores the
 * mask, marks every descriptor above 2 close-on-exec and execs through PATH. COMMAND and
 * --migrate-cmd both start here, so they get the same identity and the same descriptors. On success
 * returns the pid and sets *report_fd to the non-blocking read end of the report pipe (the caller
 * closes it); a struct pge_spawn_report arrives there if exec fails, EOF if it succeeds. Returns -1
 * with a message in err when nothing was started. */
pid_t pge_spawn_command(const struct pge_spawn_cmd *c, int *report_fd, char *err, size_t errsize);

/* The outcome of a failed start as the child reported it (NOT_FOUND 127, CANNOT_EXEC 126, or
 * CONFIG when --user could not be applied), with a message in err. user and cmd are for the
 * message. */
struct pge_outcome pge_spawn_failure(const struct pge_spawn_report *r, const char *user,
                                     const char *cmd, char *err, size_t errsize);

/* stdin when it is our controlling terminal and we are in its foreground (COMMAND should then
 * be, as in a shell), else -1. */
int pge_spawn_foreground_tty(void);

/* Make pgrp the foreground of terminal fd, with SIGTTOU blocked around the call so that a
 * background group may do so too. Failures are only logged at debug level. */
void pge_spawn_give_terminal(int fd, pid_t pgrp);

#endif
