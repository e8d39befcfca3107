/* Credentials that rotate: --password-file read and --password-command run before each attempt. */
#ifndef PGENTRY_DB_PASSWORD_H
#define PGENTRY_DB_PASSWORD_H

#include <ev.h>
#include <stddef.h>

/* The longest password either source may give, in bytes (an RDS IAM token is ~1.5 KiB). */
#define PGE_PASSWORD_MAX 4096

/* Read the password in the regular file path into out (size > PGE_PASSWORD_MAX), one
 * trailing newline ("\n" or "\r\n") dropped. Synchronous, but bounded: the file is opened
 * non-blocking, must be a regular file, and at most PGE_PASSWORD_MAX + 1 bytes are read.
 * Returns 0, or -1 with a one-line message in err that never shows the content (missing,
 * unreadable, not a regular file, empty, too long): the caller retries the attempt. */
int pge_password_read_file(const char *path, char *out, size_t size, char *err, size_t errsize);

struct pge_password;

/* Called exactly once, unless the run is freed first: password (NUL-terminated, trailing
 * newline dropped, valid during the call only) or NULL and a one-line error free of it. The
 * callback may free the run. */
typedef void (*pge_password_cb)(void *arg, const char *password, const char *error);

/* Run /bin/sh -c command as pgentry's own user in its own process group, with stdin
 * /dev/null, stdout a pipe read on loop (the default loop: its ev_child watcher receives the
 * exit status even when pgentry, as PID 1, reaps every process), stderr pgentry's, and no
 * other descriptor. Its output is the password: a non-zero exit, nothing printed or more than
 * PGE_PASSWORD_MAX bytes is an error. No timeout of its own: the caller bounds it by freeing
 * the run. command must outlive the run. NULL with a message in err when nothing started. */
struct pge_password *pge_password_run(struct ev_loop *loop, const char *command, pge_password_cb cb,
                                      void *arg, char *err, size_t errsize);

/* Stop watching, SIGKILL the command's process group if it still runs (libev reaps it),
 * close the pipe and wipe what was read. NULL-safe. */
void pge_password_free(struct pge_password *p);

#endif
