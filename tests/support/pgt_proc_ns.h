/* Run pgentry as PID 1 of a new PID namespace, as a container runtime does (needs root). */
#ifndef PGT_PROC_NS_H
#define PGT_PROC_NS_H

#include <stddef.h>
#include <sys/types.h>

#include "pgt.h"

/* Skip the calling test (with the reason) unless we are root and unshare(1) can create a PID
 * namespace with its own /proc here. The probe runs once per process. */
void pgt_ns_require(void);

/* Like pgt_proc_spawn, but argv (pgentry's arguments, without "pgentry") runs under
 * unshare --pid --fork --mount-proc --kill-child: p->pid is unshare's pid, whose exit code is
 * pgentry's. */
void pgt_ns_spawn(struct pgt_proc *p, const char *const *argv, const char *const *env);

/* pgentry's pid as seen from outside the namespace (unshare's only child), waiting up to
 * timeout_ms for it to appear. Fails the test when it does not. */
pid_t pgt_ns_init_pid(const struct pgt_proc *p, int timeout_ms);

/* SIGKILL pid and every process below it (found through /proc): a test that fails halfway
 * must not leave pgentry and its children running. */
void pgt_kill_tree(pid_t pid);

/* Read a /proc file (whose size reads as 0, so pgt_read_file sees nothing) into buf,
 * NUL-terminated. Returns the length, or -1 when it cannot be read (e.g. the process is gone). */
long pgt_read_proc(const char *path, char *buf, size_t size);

#endif
