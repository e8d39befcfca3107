/* Supervise COMMAND as init: spawn, forward signals, reap, stop with a grace period. */
#include "pgentry/supervise/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "pgentry/supervise/privdrop.h"
#include "pgentry/common/log.h"
#include "pgentry/common/parse.h"

extern char **environ;

/* After the final SIGKILL, how long to wait for the kernel to finish the processes off before
 * reporting anyway (a process in uninterruptible sleep must not hang the container). */
#define KILL_GRACE_S 2.0

/* What the child writes on its CLOEXEC pipe when it cannot exec (EOF means exec succeeded). */
enum child_stage { STAGE_EXEC = 1, STAGE_USER = 2 };
struct child_report {
    int stage;
    int err;
    char step[16]; /* the credential call that failed */
};

enum super_phase {
    PHASE_IDLE = 0,
    PHASE_RUNNING, /* the main child runs */
    PHASE_CLEANUP, /* it exited: the remaining descendants get TERM, then KILL */
    PHASE_DONE,    /* the callback has run */
};

struct pge_supervisor {
    struct ev_loop *loop;
    struct pge_supervisor_opts opts;
    pge_supervisor_cb cb;
    void *arg;
    enum super_phase phase;
    int pid1; /* we are PID 1 of a namespace: kill(-1) reaches every other process */
    pid_t pid;
    ev_child child; /* the main child: exit, stop, continue */
    ev_child any;   /* every reaped process: orphans, and the end of the cleanup */
    ev_io report;   /* the child's CLOEXEC pipe */
    ev_timer timer; /* stop grace, then cleanup deadline, then kill grace */
    struct child_report rep;
    size_t rep_len;
    char **envp; /* COMMAND's environment when --user changes HOME (array owned) */
    int tty_fd;  /* the controlling terminal COMMAND was given the foreground of, or -1 */
    int child_stopped;
    int stopping;       /* a stop signal arrived */
    int killed;         /* the stop grace elapsed and the group got SIGKILL */
    int cleanup_killed; /* the cleanup deadline elapsed and the rest got SIGKILL */
    unsigned long orphans_reaped;
    struct pge_outcome outcome; /* the main child's, reported when cleanup ends */
};

int pge_supervisor_init_process(void)
{
    if (getpid() == 1)
        return 0;
    /* Orphans of COMMAND are re-parented to us, so we can reap them as PID 1 would. */
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static int is_stop_signal(int signo)
{
    return signo == SIGTERM || signo == SIGINT || signo == SIGQUIT;
}

static const char *signame(int signo)
{
    const char *n = pge_parse_signal_name(signo);
    return n ? n : "?";
}

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

static void report_and_exit(int fd, int stage, int e, const char *step, int code)
{
    struct child_report r;
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
static void child_exec(struct pge_supervisor *s, int fd)
{
    const char *step = NULL;
    sigset_t none;

    if (setpgid(0, 0) < 0)
        report_and_exit(fd, STAGE_EXEC, errno, "setpgid", 126);
    reset_dispositions();
    /* SIGTTOU is still blocked, so a background group may take the terminal. The parent does
     * the same; whichever runs first wins and the other is a no-op. */
    if (s->tty_fd >= 0)
        (void)tcsetpgrp(s->tty_fd, getpid());
    if (s->opts.account && pge_privdrop_apply(s->opts.account, &step) < 0)
        report_and_exit(fd, STAGE_USER, errno, step, 78);
    /* The mask pgentry was started with, as a shell would hand it on (CONTRACT.md). */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, s->opts.orig_mask ? s->opts.orig_mask : &none, NULL);
    execvpe(s->opts.argv[0], s->opts.argv, s->envp ? s->envp : environ);
    int e = errno;
    report_and_exit(fd, STAGE_EXEC, e, NULL, e == ENOENT ? 127 : 126);
}

static struct pge_outcome exec_failure(int e, const char *cmd, char *err, size_t errsize)
{
    if (e == ENOENT) {
        snprintf(err, errsize, "command not found: %s (check the name and PATH)", cmd);
        return PGE_OUTCOME(PGE_OUT_NOT_FOUND, 127);
    }
    snprintf(err, errsize, "cannot execute %s: %s", cmd, strerror(e));
    return PGE_OUTCOME(PGE_OUT_CANNOT_EXEC, 126);
}

static struct pge_outcome report_outcome(const struct pge_supervisor *s, char *err, size_t errsize)
{
    if (s->rep.stage == STAGE_USER) {
        snprintf(err, errsize, "cannot switch to --user %s: %s: %s", s->opts.user, s->rep.step,
                 strerror(s->rep.err));
        return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
    }
    return exec_failure(s->rep.err, s->opts.argv[0], err, errsize);
}

/* Block SIGTTOU around terminal calls: a background process group may then change the
 * foreground instead of being sent SIGTTOU (which our handler would forward). */
static void give_terminal(int fd, pid_t pgrp)
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

/* ---- descendants ------------------------------------------------------------------------ */

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
static void signal_descendants(struct pge_supervisor *s, int sig)
{
    if (s->pid1) {
        if (kill(-1, sig) < 0 && errno != ESRCH)
            pge_warn("could not signal the remaining processes", PGE_STR("signal", signame(sig)),
                     PGE_STR("error", strerror(errno)));
        return;
    }
    struct proc_entry *e = NULL;
    long n = list_descendants(&e);
    if (n < 0) {
        pge_warn("cannot list the remaining processes (/proc): signalling none",
                 PGE_STR("signal", signame(sig)), PGE_STR("error", strerror(errno)));
        return;
    }
    for (long i = 0; i < n; i++)
        if (kill(e[i].pid, sig) < 0 && errno != ESRCH)
            pge_debug("could not signal a remaining process", PGE_INT("pid", e[i].pid),
                      PGE_STR("error", strerror(errno)));
    pge_debug("signalled the remaining processes", PGE_STR("signal", signame(sig)),
              PGE_INT("count", n));
    free(e);
}

/* Whether any child (zombie or alive) is left. WNOWAIT leaves the reaping to libev. Every
 * orphaned descendant is re-parented to us (PID 1 or subreaper), so no child means no
 * descendant. */
static int children_remain(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno != ECHILD;
    return 1;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void close_report(struct pge_supervisor *s)
{
    if (!ev_is_active(&s->report))
        return;
    ev_io_stop(s->loop, &s->report);
    close(s->report.fd);
}

static void finish(struct pge_supervisor *s)
{
    ev_timer_stop(s->loop, &s->timer);
    ev_child_stop(s->loop, &s->any);
    s->phase = PHASE_DONE;
    if (s->orphans_reaped)
        pge_debug("orphans reaped", PGE_INT("count", (long long)s->orphans_reaped));
    s->cb(s->arg, s->outcome);
}

static void begin_cleanup(struct pge_supervisor *s)
{
    double left = (double)s->opts.stop_timeout_ms / 1000.0;

    s->phase = PHASE_CLEANUP;
    if (!children_remain()) {
        finish(s);
        return;
    }
    /* After a stop signal the whole stop shares one --stop-timeout: the remaining processes
     * get what is left of it, not a fresh one. */
    if (s->killed)
        left = 0;
    else if (ev_is_active(&s->timer))
        left = ev_timer_remaining(s->loop, &s->timer);
    ev_timer_stop(s->loop, &s->timer);
    if (left <= 0) {
        pge_info("command has exited after the stop timeout: killing any remaining processes");
        signal_descendants(s, SIGKILL);
        s->cleanup_killed = 1;
        left = KILL_GRACE_S;
    } else {
        pge_info("command has exited: stopping the remaining processes",
                 PGE_MS("timeout", (long long)(left * 1000.0)));
        signal_descendants(s, SIGTERM);
    }
    ev_timer_set(&s->timer, left, 0.0);
    ev_timer_start(s->loop, &s->timer);
}

static void main_exited(struct pge_supervisor *s, int st)
{
    char err[512];

    ev_child_stop(s->loop, &s->child);
    if (ev_is_active(&s->report)) {
        /* The exit raced ahead of our read: the report, if any, is already in the pipe. */
        struct child_report r;
        if (read(s->report.fd, &r, sizeof r) == (ssize_t)sizeof r) {
            s->rep = r;
            s->rep_len = sizeof r;
        }
        close_report(s);
    }
    if (s->rep_len == sizeof s->rep) {
        s->outcome = report_outcome(s, err, sizeof err);
        pge_error(err);
    } else if (WIFEXITED(st)) {
        s->outcome = PGE_OUTCOME(PGE_OUT_CHILD_EXIT, WEXITSTATUS(st));
        pge_info("command exited", PGE_INT("pid", s->pid), PGE_INT("code", WEXITSTATUS(st)));
    } else {
        s->outcome = PGE_OUTCOME(PGE_OUT_CHILD_SIGNAL, WTERMSIG(st));
        pge_info("command was killed", PGE_INT("pid", s->pid),
                 PGE_STR("signal", signame(WTERMSIG(st))));
    }
    if (s->opts.state) {
        struct pge_runstate *state = s->opts.state;
        state->app.running = 0;
        state->app.exited = 1;
        state->app.exit_code =
            s->outcome.kind == PGE_OUT_CHILD_SIGNAL ? 128 + s->outcome.value : s->outcome.value;
        if (state->phase == PGE_PHASE_RUNNING || state->phase == PGE_PHASE_STARTING)
            state->phase = PGE_PHASE_STOPPING;
    }
    /* Take the terminal back as a shell does when its job ends. */
    if (s->tty_fd >= 0 && tcgetpgrp(s->tty_fd) == s->pid)
        give_terminal(s->tty_fd, getpgrp());
    s->pid = 0;
    begin_cleanup(s);
}

/* Ctrl-Z stopped COMMAND: take the terminal back and stop ourselves, so that the shell that
 * started us sees its job stopped and gets the terminal back. On SIGCONT (fg) we hand the
 * terminal over again (pge_supervisor_signal). As PID 1 there is no shell above us and the
 * kernel would not stop us anyway. */
static void main_stopped(struct pge_supervisor *s)
{
    s->child_stopped = 1;
    if (s->tty_fd < 0 || s->pid1)
        return;
    pge_debug("command stopped: stopping too", PGE_INT("pid", s->pid));
    give_terminal(s->tty_fd, getpgrp());
    if (kill(getpid(), SIGSTOP) < 0)
        pge_warn("could not stop", PGE_STR("error", strerror(errno)));
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_supervisor *s = w->data;
    int st = w->rstatus;
    (void)loop;
    (void)revents;
    if (WIFSTOPPED(st)) {
        main_stopped(s);
        return;
    }
    if (WIFCONTINUED(st)) {
        s->child_stopped = 0;
        return;
    }
    main_exited(s, st);
}

static void on_any_child(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_supervisor *s = w->data;
    (void)loop;
    (void)revents;
    if (w->rpid == s->pid || w->rpid <= 0)
        return; /* the main child has its own watcher */
    s->orphans_reaped++;
    pge_debug("reaped", PGE_INT("pid", w->rpid),
              PGE_INT(WIFSIGNALED(w->rstatus) ? "signal" : "code",
                      WIFSIGNALED(w->rstatus) ? WTERMSIG(w->rstatus) : WEXITSTATUS(w->rstatus)));
    if (s->phase == PHASE_CLEANUP && !children_remain())
        finish(s);
}

static void on_report(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_supervisor *s = w->data;
    (void)loop;
    (void)revents;
    ssize_t n = read(w->fd, (char *)&s->rep + s->rep_len, sizeof s->rep - s->rep_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        s->rep_len += (size_t)n;
        if (s->rep_len < sizeof s->rep)
            return;
    }
    close_report(s);
    if (s->rep_len == sizeof s->rep)
        return; /* a failure report: on_child decides once the child has exited */
    s->rep_len = 0;
    pge_debug("command is running", PGE_INT("pid", s->pid));
    if (s->opts.state) {
        s->opts.state->app.running = 1;
        if (s->opts.state->phase == PGE_PHASE_STARTING)
            s->opts.state->phase = s->opts.state->stopping ? PGE_PHASE_STOPPING : PGE_PHASE_RUNNING;
    }
}

static void kill_group(pid_t pid, int sig)
{
    /* The child may have left its group (setsid): then signal it alone. */
    if (kill(-pid, sig) < 0 && kill(pid, sig) < 0 && errno != ESRCH)
        pge_warn("could not signal the command", PGE_INT("pid", pid),
                 PGE_STR("signal", signame(sig)), PGE_STR("error", strerror(errno)));
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_supervisor *s = w->data;
    (void)loop;
    (void)revents;
    switch (s->phase) {
    case PHASE_RUNNING:
        pge_warn("command did not stop within --stop-timeout: sending KILL to its group",
                 PGE_INT("pid", s->pid));
        s->killed = 1;
        kill_group(s->pid, SIGKILL);
        return;
    case PHASE_CLEANUP:
        if (!s->cleanup_killed) {
            pge_warn("processes still running after --stop-timeout: sending KILL");
            s->cleanup_killed = 1;
            signal_descendants(s, SIGKILL);
            ev_timer_set(&s->timer, KILL_GRACE_S, 0.0);
            ev_timer_start(s->loop, &s->timer);
            return;
        }
        pge_warn("processes survived KILL (uninterruptible sleep?): exiting anyway");
        finish(s);
        return;
    case PHASE_IDLE:
    case PHASE_DONE:
        return;
    }
}

struct pge_supervisor *pge_supervisor_new(struct ev_loop *loop,
                                          const struct pge_supervisor_opts *opts,
                                          pge_supervisor_cb cb, void *arg)
{
    struct pge_supervisor *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->opts = *opts;
    s->cb = cb;
    s->arg = arg;
    s->tty_fd = -1;
    s->pid1 = getpid() == 1;
    ev_init(&s->child, on_child);
    s->child.data = s;
    ev_child_init(&s->any, on_any_child, 0, 0);
    s->any.data = s;
    ev_init(&s->report, on_report);
    s->report.data = s;
    ev_init(&s->timer, on_timer);
    s->timer.data = s;
    return s;
}

/* stdin is our controlling terminal and we are its foreground: COMMAND should be, as in a
 * shell. Started in the background (cmd &), we leave the terminal alone. */
static int foreground_tty(void)
{
    if (!isatty(STDIN_FILENO))
        return -1;
    pid_t fg = tcgetpgrp(STDIN_FILENO);
    return fg > 0 && fg == getpgrp() ? STDIN_FILENO : -1;
}

static void on_never(struct ev_loop *loop, ev_periodic *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* An idle init should not wake up at all. Without a timerfd libev wakes every 59.7 s to notice
 * wall-clock jumps; starting a periodic watcher once makes it create the timerfd that reports
 * such jumps instead, after which it sleeps until an event (the watcher itself is not kept). */
static void quiet_idle_loop(struct ev_loop *loop)
{
    ev_periodic once;
    ev_periodic_init(&once, on_never, 0.0, 0.0, NULL);
    ev_periodic_start(loop, &once);
    ev_periodic_stop(loop, &once);
}

int pge_supervisor_start(struct pge_supervisor *s, struct pge_outcome *out, char *err,
                         size_t errsize)
{
    int p[2];
    sigset_t all, old;

    /* --user changes HOME in COMMAND's environment (the account was resolved by the caller). */
    if (s->opts.account && !(s->envp = pge_privdrop_environ(s->opts.account, environ))) {
        snprintf(err, errsize, "out of memory");
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errsize, "pipe: %s", strerror(errno));
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    s->tty_fd = foreground_tty();
    /* Nothing may reach an inherited handler in the child before it resets them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_exec(s, p[1]);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    if (pid < 0) {
        snprintf(err, errsize, "fork: %s", strerror(fork_errno));
        close(p[0]);
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    /* Both sides set the group (and the terminal) so that a signal sent right away already
     * reaches the group. EACCES: the child has exec'd, so it did it itself. */
    if (setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH)
        pge_debug("setpgid", PGE_STR("error", strerror(errno)));
    if (s->tty_fd >= 0)
        give_terminal(s->tty_fd, pid);
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
        pge_debug("fcntl", PGE_STR("error", strerror(errno)));
    s->pid = pid;
    s->phase = PHASE_RUNNING;
    ev_child_set(&s->child, pid, 1);
    ev_child_start(s->loop, &s->child);
    ev_child_start(s->loop, &s->any);
    ev_io_set(&s->report, p[0], EV_READ);
    ev_io_start(s->loop, &s->report);
    quiet_idle_loop(s->loop);
    if (s->opts.state) {
        s->opts.state->app.pid = pid;
        s->opts.state->app.started_mono_ms = pge_runstate_mono_ms();
    }
    pge_info("command started", PGE_STR("command", s->opts.argv[0]), PGE_INT("pid", pid),
             PGE_STR("terminal", s->tty_fd >= 0 ? "foreground" : "none"));
    return 0;
}

pid_t pge_supervisor_spawn(const char *path, char *const argv[], char *const envp[],
                           const sigset_t *mask)
{
    sigset_t all, old, none;
    sigfillset(&all);
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        (void)setpgid(0, 0);
        reset_dispositions();
        sigprocmask(SIG_SETMASK, mask ? mask : &none, NULL);
        execve(path, argv, envp);
        _exit(127);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid > 0 && setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH)
        pge_debug("setpgid", PGE_STR("error", strerror(errno)));
    errno = e;
    return pid;
}

static int rewrite(const struct pge_supervisor *s, int signo)
{
    for (size_t i = 0; i < s->opts.nrewrite; i++)
        if (s->opts.rewrite[i].from == signo)
            return s->opts.rewrite[i].to;
    return signo;
}

void pge_supervisor_signal(struct pge_supervisor *s, int signo)
{
    if (s->phase != PHASE_RUNNING) {
        pge_debug("signal not forwarded: the command has exited",
                  PGE_STR("signal", signame(signo)));
        return;
    }
    int to = rewrite(s, signo);
    if (to == 0) {
        pge_debug("signal dropped (--rewrite)", PGE_STR("signal", signame(signo)));
        return;
    }
    if (is_stop_signal(signo) && !s->stopping) {
        s->stopping = 1;
        pge_info("stopping the command", PGE_STR("signal", signame(to)),
                 PGE_MS("timeout", (long long)s->opts.stop_timeout_ms));
        ev_timer_set(&s->timer, (double)s->opts.stop_timeout_ms / 1000.0, 0.0);
        ev_timer_start(s->loop, &s->timer);
    }
    int group = s->opts.signal_group;
    if (signo == SIGCONT && s->child_stopped && s->tty_fd >= 0) {
        /* fg after Ctrl-Z: COMMAND's whole group was stopped by the terminal, and takes the
         * terminal back if we were put in the foreground (not after bg). */
        if (tcgetpgrp(s->tty_fd) == getpgrp())
            give_terminal(s->tty_fd, s->pid);
        group = 1;
    }
    pge_debug("forwarding signal", PGE_STR("signal", signame(to)), PGE_INT("pid", s->pid));
    if (group)
        kill_group(s->pid, to);
    else if (kill(s->pid, to) < 0 && errno != ESRCH)
        pge_warn("could not forward signal", PGE_STR("signal", signame(to)),
                 PGE_STR("error", strerror(errno)));
}

int pge_supervisor_active(const struct pge_supervisor *s)
{
    return s->phase == PHASE_RUNNING || s->phase == PHASE_CLEANUP;
}

struct pge_outcome pge_supervisor_exec(const struct pge_supervisor_opts *opts, char *err,
                                       size_t errsize)
{
    const struct pge_privdrop *c = opts->account;
    const char *step = NULL;
    sigset_t none;

    if (c) {
        if (pge_privdrop_apply(c, &step) < 0) {
            snprintf(err, errsize, "cannot switch to --user %s: %s: %s", opts->user, step,
                     strerror(errno));
            return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        }
        if (setenv("HOME", c->home_var + strlen("HOME="), 1) < 0) {
            snprintf(err, errsize, "setenv HOME: %s", strerror(errno));
            return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        }
    }
    reset_dispositions();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, opts->orig_mask ? opts->orig_mask : &none, NULL);
    execvp(opts->argv[0], opts->argv);
    return exec_failure(errno, opts->argv[0], err, errsize);
}

void pge_supervisor_free(struct pge_supervisor *s)
{
    if (!s)
        return;
    ev_child_stop(s->loop, &s->child);
    ev_child_stop(s->loop, &s->any);
    ev_timer_stop(s->loop, &s->timer);
    close_report(s);
    free(s->envp);
    free(s);
}
