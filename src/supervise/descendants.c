/* The processes COMMAND leaves behind: whether any remain, and signalling them all. */
#include "pgentry/supervise/descendants.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/common/parse.h"

struct proc_entry {
    pid_t pid;
    pid_t ppid;
    int mark;
};

static int cmp_entry(const void *a, const void *b)
{
    pid_t x = ((const struct proc_entry *)a)->pid;
    pid_t y = ((const struct proc_entry *)b)->pid;
    return (x > y) - (x < y);
}

static int read_ppid(pid_t pid, pid_t *ppid)
{
    char path[64];
    char buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses, so go from the last ')'. */
    char *p = strrchr(buf, ')');
    int v;
    if (!p || sscanf(p + 1, " %*c %d", &v) != 1)
        return -1;
    *ppid = v;
    return 0;
}

/* Every process below us in /proc, children first. Returns the count, or -1 without /proc. */
static long list_descendants(struct proc_entry **out)
{
    DIR *d = opendir("/proc");
    struct proc_entry *e = NULL;
    size_t n = 0, cap = 0;
    long rc = -1;
    pid_t self = getpid();
    struct dirent *de;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        pid_t ppid;
        if (*end || pid <= 0 || pid == self || read_ppid((pid_t)pid, &ppid) < 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct proc_entry *ne = realloc(e, ncap * sizeof *ne);
            if (!ne)
                goto out;
            e = ne;
            cap = ncap;
        }
        e[n].pid = (pid_t)pid;
        e[n].ppid = ppid;
        e[n].mark = 0;
        n++;
    }
    qsort(e, n, sizeof *e, cmp_entry);
    /* Mark our children, then theirs, until nothing changes (one pass per generation). */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (e[i].mark)
                continue;
            struct proc_entry key = {.pid = e[i].ppid};
            struct proc_entry *parent = bsearch(&key, e, n, sizeof *e, cmp_entry);
            if (e[i].ppid == self || (parent && parent->mark)) {
                e[i].mark = 1;
                changed = 1;
            }
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].mark)
            e[k++] = e[i];
    *out = e;
    e = NULL;
    rc = (long)k;
out:
    free(e);
    closedir(d);
    return rc;
}

/* Signal everything that is left. As PID 1 kill(-1) reaches every process of the namespace
 * but us; as a subreaper only our descendants may be touched, found through /proc (a pid may
 * be reused between the scan and the kill: a window of microseconds, as in every init that
 * walks /proc). */
void pge_descendants_signal(int pid1, int sig)
{
    if (pid1) {
        if (kill(-1, sig) < 0 && errno != ESRCH)
            pge_warn("could not signal the remaining processes",
                     PGE_STR("signal", pge_parse_signal_name(sig)),
                     PGE_STR("error", strerror(errno)));
        return;
    }
    struct proc_entry *e = NULL;
    long n = list_descendants(&e);
    if (n < 0) {
        pge_warn("cannot list the remaining processes (/proc): signalling none",
                 PGE_STR("signal", pge_parse_signal_name(sig)), PGE_STR("error", strerror(errno)));
        return;
    }
    for (long i = 0; i < n; i++)
        if (kill(e[i].pid, sig) < 0 && errno != ESRCH)
            pge_debug("could not signal a remaining process", PGE_INT("pid", e[i].pid),
                      PGE_STR("error", strerror(errno)));
    pge_debug("signalled the remaining processes", PGE_STR("signal", pge_parse_signal_name(sig)),
              PGE_INT("count", n));
    free(e);
}

/* WNOWAIT leaves the reaping to libev. */
int pge_descendants_remain(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno != ECHILD;
    return 1;
}
