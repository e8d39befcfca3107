/* What the supervision tests share: processes they start (killed at the end), scratch files. */
#ifndef PGT_SUPERVISE_TEST_H
#define PGT_SUPERVISE_TEST_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_proc_ns.h"
#define CHILD       PGT_CHILD_BIN
#define MAX_STARTED 4

/* What this test started, killed with everything below it when the test ends, passed or
 * failed: a failed assertion must not leave pgentry and its children behind. */
static pid_t started[MAX_STARTED];
static size_t nstarted;

__attribute__((unused)) static void kill_leftovers(void)
{
    for (size_t i = 0; i < nstarted; i++)
        pgt_kill_tree(started[i]);
    nstarted = 0;
}

__attribute__((unused)) static void spawn(struct pgt_proc *p, const char *const *argv)
{
    pgt_proc_spawn(p, argv, NULL);
    if (nstarted < MAX_STARTED)
        started[nstarted++] = p->pid;
}

__attribute__((unused)) static void ns_spawn(struct pgt_proc *p, const char *const *argv)
{
    pgt_ns_spawn(p, argv, NULL);
    if (nstarted < MAX_STARTED)
        started[nstarted++] = p->pid;
}

/* A scratch directory every user may write to (--user runs COMMAND as nobody), and a file
 * path in it. */
__attribute__((unused)) static void scratch(char *dir, size_t dsize, char *file, size_t fsize,
                                            const char *name)
{
    pgt_tempdir(dir, dsize);
    cr_assert_eq(chmod(dir, 0777), 0, "chmod: %s", strerror(errno));
    snprintf(file, fsize, "%s/%s", dir, name);
}

__attribute__((unused)) static void wait_text(const char *file, const char *needle, int ms)
{
    if (pgt_wait_for_text(file, needle, ms) < 0) {
        char *s = pgt_read_file(file);
        cr_assert_fail("\"%s\" did not appear in %s within %d ms; it holds:\n%s", needle, file, ms,
                       s);
    }
}

/* The text after "key" in the file's first line holding it, as an integer. */
__attribute__((unused)) static long field(const char *file, const char *key)
{
    char *s = pgt_read_file(file);
    char *p = strstr(s, key);
    cr_assert_not_null(p, "no %s in %s:\n%s", key, file, s);
    long v = strtol(p + strlen(key), NULL, 10);
    free(s);
    return v;
}

__attribute__((unused)) static int count_lines(const char *file, const char *line)
{
    char *s = pgt_read_file(file);
    int n = 0;
    size_t len = strlen(line);
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        n += l == len && strncmp(p, line, len) == 0;
        p += l + (nl ? 1 : 0);
    }
    free(s);
    return n;
}

#endif
