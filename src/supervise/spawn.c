/* Fork and exec COMMAND as an init must: own process group, default dispositions, original mask. */
#include "pgentry/supervise/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <unistd.h>

#include "pgentry/common/cloexec.h"
#include "pgentry/common/errbuf.h"
#include "pgentry/common/log.h"
#include "pgentry/supervise/supervisor.h"

extern char **environ;

/* Default dispositions for everything. Called with every signal blocked, so nothing can be
 * delivered to a handler inherited from the parent (libev's would write to the parent's
 * wake-up pipe). sigaction fails with EINVAL for KILL, STOP and the C library's internal
 * signals: that is expected and harmless. */
static void reset_dispositions(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
}

/* The mask pgentry was started with, as a shell would hand it on (docs/supervision.md); NULL:
 * empty. */
static void restore_mask(const sigset_t *mask)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, mask ? mask : &none, NULL);
}

/* fork() with every signal blocked across it: nothing may reach an inherited handler in the
 * child before it resets them. The child returns with everything still blocked; errno is the
 * fork's. */
static pid_t fork_blocked(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        return 0;
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return pid;
}

/* Both sides set the group so that a signal sent right away already reaches it. EACCES: the
 * child has exec'd, so it did it itself. */
static void parent_setpgid(pid_t pid)
{
    int e = errno;
    if (setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH)
        pge_debug("setpgid", PGE_STR("error", strerror(errno)));
    errno = e;
}

static void report_and_exit(int fd, int stage, int e, const char *step, int code)
{
    struct pge_spawn_report r;
    memset(&r, 0, sizeof r);
    r.stage = stage;
    r.err = e;
    if (step)
        strncpy(r.step, step, sizeof r.step - 1);
    /* A short or failed write leaves the parent with the exit code alone: still correct. */
    ssize_t w = write(fd, &r, sizeof r);
    (void)w;
    _exit(code);
}

/* In the forked child: only async-signal-safe calls from here to exec. */
static void child_exec(const struct pge_spawn_cmd *c, int fd)
{
    const char *step = NULL;

    if (setpgid(0, 0) < 0)
        report_and_exit(fd, PGE_SPAWN_STAGE_EXEC, errno, "setpgid", 126);
    reset_dispositions();
    /* SIGTTOU is still blocked, so a background group may take the terminal. The parent does
     * the same; whichever runs first wins and the other is a no-op. */
    if (c->tty_fd >= 0)
        (void)tcsetpgrp(c->tty_fd, getpid());
    if (c->account && pge_privdrop_apply(c->account, &step) < 0)
        report_and_exit(fd, PGE_SPAWN_STAGE_USER, errno, step, 78);
    restore_mask(c->orig_mask);
    /* The last defence: whatever a library left open without CLOEXEC stays ours. */
    (void)pge_cloexec_from(3);
    execvpe(c->argv[0], c->argv, c->envp);
    int e = errno;
    report_and_exit(fd, PGE_SPAWN_STAGE_EXEC, e, NULL, e == ENOENT ? 127 : 126);
}

struct child_args {
    const struct pge_spawn_cmd *cmd;
    int fd;
};

static int child_main(void *arg)
{
    const struct child_args *a = arg;
    child_exec(a->cmd, a->fd);
    return 127;
}

/* Room for the child's frames up to exec: execvpe builds each PATH candidate (up to PATH_MAX
 * plus NAME_MAX) on the stack, and glibc's runs a file without "#!" through /bin/sh with a copy
 * of argv there too: so a base plus a pointer per argument. Below it one page that faults: an
 * overflow must kill the child, not write into memory it shares with us. */
#define CHILD_STACK_BASE (128 * 1024)

static size_t child_stack_size(char *const *argv)
{
    size_t n = 0;
    while (argv[n])
        n++;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = CHILD_STACK_BASE + (n + 2) * sizeof(char *);
    return (size + page - 1) / page * page + page;
}

/* Start the child on a stack of its own in our memory, suspended until it has exec'd or exited
 * (as posix_spawn does): no page tables to copy and no copy-on-write faults in the child, which
 * made fork-to-exec 3-5 ms of the start-up on a loaded VM (docs/performance.md). Not with
 * --user: the C library's setuid/setgid/setgroups stop every thread to change them all, through
 * memory this child would share with ours, and would change our threads' credentials too. */
static pid_t spawn_blocked(const struct pge_spawn_cmd *c, int fd)
{
    if (c->account && c->account->switch_ids) {
        pid_t pid = fork_blocked();
        if (pid == 0)
            child_exec(c, fd);
        return pid;
    }
    size_t size = child_stack_size(c->argv);
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED)
        return -1;
    pid_t pid = -1;
    if (mprotect(stack, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) < 0)
        goto out;
    struct child_args a = {c, fd};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* x86-64 and aarch64 stacks grow down: the child starts at the top. */
    pid = clone(child_main, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
out:;
    int e = errno;
    /* The child has exec'd or exited: nothing runs on its stack any more. */
    if (munmap(stack, size) < 0)
        pge_debug("munmap", PGE_STR("error", strerror(errno)));
    errno = e;
    return pid;
}

pid_t pge_spawn_command(const struct pge_spawn_cmd *c, int *report_fd, char *err, size_t errsize)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC) < 0) {
        pge_errbuf_set(err, errsize, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = spawn_blocked(c, p[1]);
    int spawn_errno = errno;
    close(p[1]);
    if (pid < 0) {
        /* fork, or the clone and its stack's mmap/mprotect: no process could be made. */
        pge_errbuf_set(err, errsize, "cannot start a process: %s", strerror(spawn_errno));
        close(p[0]);
        return -1;
    }
    parent_setpgid(pid);
    if (c->tty_fd >= 0)
        pge_spawn_give_terminal(c->tty_fd, pid);
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
        pge_debug("fcntl", PGE_STR("error", strerror(errno)));
    *report_fd = p[0];
    return pid;
}

static struct pge_outcome exec_failure(int e, const char *cmd, char *err, size_t errsize)
{
    if (e == ENOENT) {
        pge_errbuf_set(err, errsize, "command not found: %s (check the name and PATH)", cmd);
        return PGE_OUTCOME(PGE_OUT_NOT_FOUND, 127);
    }
    pge_errbuf_set(err, errsize, "cannot execute %s: %s", cmd, strerror(e));
    return PGE_OUTCOME(PGE_OUT_CANNOT_EXEC, 126);
}

struct pge_outcome pge_spawn_failure(const struct pge_spawn_report *r, const char *user,
                                     const char *cmd, char *err, size_t errsize)
{
    if (r->stage == PGE_SPAWN_STAGE_USER) {
        pge_errbuf_set(err, errsize, "cannot switch to --user %s: %s: %s", user, r->step,
                       strerror(r->err));
        return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
    }
    return exec_failure(r->err, cmd, err, errsize);
}

int pge_spawn_foreground_tty(void)
{
    if (!isatty(STDIN_FILENO))
        return -1;
    pid_t fg = tcgetpgrp(STDIN_FILENO);
    return fg > 0 && fg == getpgrp() ? STDIN_FILENO : -1;
}

/* A background process group may then change the foreground instead of being sent SIGTTOU
 * (which our handler would forward). */
void pge_spawn_give_terminal(int fd, pid_t pgrp)
{
    sigset_t ttou, old;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    pthread_sigmask(SIG_BLOCK, &ttou, &old);
    if (tcsetpgrp(fd, pgrp) < 0)
        pge_debug("could not hand over the terminal", PGE_INT("pgrp", pgrp),
                  PGE_STR("error", strerror(errno)));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* fd becomes target, open across exec (dup2 of a descriptor onto itself keeps its flags). */
static int onto(int fd, int target)
{
    if (fd < 0)
        return 0;
    if (fd == target)
        return fcntl(fd, F_SETFD, 0);
    return dup2(fd, target) < 0 ? -1 : 0;
}

/* Declared in supervisor.h: the supervisor's way to start helpers. */
pid_t pge_supervisor_spawn_stdio(const char *path, char *const argv[], char *const envp[],
                                 const sigset_t *mask, int in_fd, int out_fd)
{
    pid_t pid = fork_blocked();
    if (pid == 0) {
        (void)setpgid(0, 0);
        /* Only 0 and 1 lose close-on-exec: every other descriptor is CLOEXEC. */
        if (onto(in_fd, STDIN_FILENO) < 0 || onto(out_fd, STDOUT_FILENO) < 0)
            _exit(127);
        /* And what a library opened without CLOEXEC (libcurl's wake-up socketpair) or our
         * own parent left open: the helper gets 0, 1 and 2 only (docs/supervision.md). Not
         * close_range(): musl (the static build) does not declare it. */
        (void)pge_cloexec_from(3);
        reset_dispositions();
        restore_mask(mask);
        execve(path, argv, envp);
        _exit(127);
    }
    if (pid > 0)
        parent_setpgid(pid);
    return pid;
}

/* Declared in supervisor.h: the supervisor's way to exec in place. */
struct pge_outcome pge_supervisor_exec(const struct pge_supervisor_opts *opts, char *err,
                                       size_t errsize)
{
    const struct pge_privdrop *c = opts->account;
    const char *step = NULL;

    if (c) {
        if (pge_privdrop_apply(c, &step) < 0) {
            pge_errbuf_set(err, errsize, "cannot switch to --user %s: %s: %s", opts->user, step,
                           strerror(errno));
            return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        }
        if (setenv("HOME", c->home_var + strlen("HOME="), 1) < 0) {
            pge_errbuf_set(err, errsize, "setenv HOME: %s", strerror(errno));
            return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        }
    }
    reset_dispositions();
    restore_mask(opts->orig_mask);
    (void)pge_cloexec_from(3);
    execvp(opts->argv[0], opts->argv);
    return exec_failure(errno, opts->argv[0], err, errsize);
}
