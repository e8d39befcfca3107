/* Run pgentry as PID 1 of a new PID namespace, as a container runtime does (needs root). */
#include "pgt_proc_ns.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNSHARE_MAX_ARGS 64

static const char *const unshare_prefix[] = {"/usr/bin/unshare", "--pid",        "--fork",
                                             "--mount-proc",     "--kill-child", PGT_PGENTRY_BIN};

void pgt_ns_require(void)
{
    static int probed = -1;
    if (geteuid() != 0)
        cr_skip_test("needs root: PID-namespace tests run pgentry as PID 1 via unshare");
    if (probed < 0) {
        int st = system("/usr/bin/unshare --pid --fork --mount-proc --kill-child /bin/true "
                        ">/dev/null 2>&1");
        probed = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    if (!probed)
        cr_skip_test("unshare --pid --fork --mount-proc does not work here (no user/PID "
                     "namespace support?)");
}

void pgt_ns_spawn(struct pgt_proc *p, const char *const *argv, const char *const *env)
{
    const char *full[UNSHARE_MAX_ARGS];
    size_t n = 0;
    for (size_t i = 0; i < sizeof unshare_prefix / sizeof unshare_prefix[0]; i++)
        full[n++] = unshare_prefix[i];
    for (size_t i = 0; argv[i]; i++) {
        cr_assert(n < UNSHARE_MAX_ARGS - 1, "too many arguments");
        full[n++] = argv[i];
    }
    full[n] = NULL;
    pgt_proc_spawn(p, full, env);
}

pid_t pgt_ns_init_pid(const struct pgt_proc *p, int timeout_ms)
{
    char path[128];
    int64_t deadline = pgt_now_ms() + timeout_ms;
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)p->pid, (int)p->pid);
    while (pgt_now_ms() < deadline) {
        char buf[64];
        long pid = pgt_read_proc(path, buf, sizeof buf) > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 0)
            return (pid_t)pid;
        usleep(2000);
    }
    cr_assert_fail("unshare (pid %d) started no child within %d ms", (int)p->pid, timeout_ms);
    return 0;
}

long pgt_read_proc(const char *path, char *buf, size_t size)
{
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == size - 1)
            break;
    }
    close(fd);
    buf[n] = '\0';
    return (long)n;
}

/* The parent of pid from /proc/pid/stat, or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    int ppid;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (pgt_read_proc(path, buf, sizeof buf) <= 0)
        return -1;
    char *p = strrchr(buf, ')');
    return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

#define KILL_TREE_MAX 4096

void pgt_kill_tree(pid_t pid)
{
    static pid_t tree[KILL_TREE_MAX];
    size_t n = 0;
    tree[n++] = pid;
    /* Add children of known members until a pass adds nothing. */
    for (int changed = 1; changed && n < KILL_TREE_MAX;) {
        changed = 0;
        DIR *d = opendir("/proc");
        struct dirent *de;
        if (!d)
            break;
        while ((de = readdir(d)) != NULL && n < KILL_TREE_MAX) {
            char *end;
            long p = strtol(de->d_name, &end, 10);
            int known = 0;
            if (*end || p <= 0)
                continue;
            for (size_t i = 0; i < n && !known; i++)
                known = tree[i] == (pid_t)p;
            if (known)
                continue;
            pid_t pp = parent_of((pid_t)p);
            for (size_t i = 0; i < n; i++)
                if (tree[i] == pp) {
                    tree[n++] = (pid_t)p;
                    changed = 1;
                    break;
                }
        }
        closedir(d);
    }
    for (size_t i = 0; i < n; i++)
        kill(tree[i], SIGKILL);
}
