/* Supervise COMMAND as init: spawn, forward signals, reap, stop with a grace period. */
#include "pgentry/supervise/supervisor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/log.h"
#include "pgentry/common/parse.h"
#include "pgentry/supervise/descendants.h"
#include "pgentry/supervise/privdrop.h"
#include "pgentry/supervise/spawn.h"

extern char **environ;

/* After the final SIGKILL, how long to wait for the kernel to finish the processes off before
 * reporting anyway (a process in uninterruptible sleep must not hang the container). */
#define KILL_GRACE_S 2.0

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
    ev_child child;    /* the main child: exit, stop, continue */
    ev_child any;      /* every reaped process: orphans, and the end of the cleanup */
    ev_io report;      /* the child's CLOEXEC pipe */
    ev_timer timer;    /* stop grace, then cleanup deadline, then kill grace */
    ev_timer delay;    /* --stop-delay: the held stop signal */
    int delayed_signo; /* the stop signal held by --stop-delay, or 0 */
    struct pge_spawn_report rep;
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

int pge_supervisor_is_stop_signal(int signo)
{
    return signo == SIGTERM || signo == SIGINT || signo == SIGQUIT;
}

static const char *signame(int signo)
{
    const char *n = pge_parse_signal_name(signo);
    return n ? n : "?";
}

static void close_report(struct pge_supervisor *s)
{
    if (!ev_is_active(&s->report))
        return;
    ev_io_stop(s->loop, &s->report);
    close(s->report.fd);
}

static void on_delay(struct ev_loop *loop, ev_timer *w, int revents);

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
    /* COMMAND exited during --stop-delay: nobody is left to get the held signal. */
    ev_timer_stop(s->loop, &s->delay);
    s->delayed_signo = 0;
    if (!pge_descendants_remain()) {
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
        pge_descendants_signal(s->pid1, SIGKILL);
        s->cleanup_killed = 1;
        left = KILL_GRACE_S;
    } else {
        pge_info("command has exited: stopping the remaining processes",
                 PGE_MS("timeout", (long long)(left * 1000.0)));
        pge_descendants_signal(s->pid1, SIGTERM);
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
        struct pge_spawn_report r;
        if (read(s->report.fd, &r, sizeof r) == (ssize_t)sizeof r) {
            s->rep = r;
            s->rep_len = sizeof r;
        }
        close_report(s);
    }
    if (s->rep_len == sizeof s->rep) {
        s->outcome = pge_spawn_failure(&s->rep, s->opts.user, s->opts.argv[0], err, sizeof err);
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
        pge_spawn_give_terminal(s->tty_fd, getpgrp());
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
    pge_spawn_give_terminal(s->tty_fd, getpgrp());
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
    if (s->phase == PHASE_CLEANUP && !pge_descendants_remain())
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
    if (s->opts.on_running)
        s->opts.on_running(s->arg);
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
            pge_descendants_signal(s->pid1, SIGKILL);
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
    ev_init(&s->delay, on_delay);
    s->delay.data = s;
    return s;
}

int pge_supervisor_start(struct pge_supervisor *s, struct pge_outcome *out, char *err,
                         size_t errsize)
{
    int report_fd;

    /* --user changes HOME in COMMAND's environment (the account was resolved by the caller). */
    if (s->opts.account && !(s->envp = pge_privdrop_environ(s->opts.account, environ))) {
        pge_errbuf_set(err, errsize, "out of memory");
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    s->tty_fd = pge_spawn_foreground_tty();
    struct pge_spawn_cmd cmd = {
        .argv = s->opts.argv,
        .envp = s->envp ? s->envp : environ,
        .account = s->opts.account,
        .orig_mask = s->opts.orig_mask,
        .tty_fd = s->tty_fd,
    };
    pid_t pid = pge_spawn_command(&cmd, &report_fd, err, errsize);
    if (pid < 0) {
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    s->pid = pid;
    s->phase = PHASE_RUNNING;
    ev_child_set(&s->child, pid, 1);
    ev_child_start(s->loop, &s->child);
    ev_child_start(s->loop, &s->any);
    ev_io_set(&s->report, report_fd, EV_READ);
    ev_io_start(s->loop, &s->report);
    if (s->opts.state) {
        s->opts.state->app.pid = pid;
        s->opts.state->app.started_mono_ms = pge_runstate_mono_ms();
    }
    pge_info("command started", PGE_STR("command", s->opts.argv[0]), PGE_INT("pid", pid),
             PGE_STR("terminal", s->tty_fd >= 0 ? "foreground" : "none"));
    return 0;
}

static int rewrite(const struct pge_supervisor *s, int signo)
{
    for (size_t i = 0; i < s->opts.nrewrite; i++)
        if (s->opts.rewrite[i].from == signo)
            return s->opts.rewrite[i].to;
    return signo;
}

static void forward(struct pge_supervisor *s, int signo);

/* --stop-delay elapsed: the held stop signal goes to COMMAND now. */
static void on_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_supervisor *s = w->data;
    (void)loop;
    (void)revents;
    int signo = s->delayed_signo;
    s->delayed_signo = 0;
    if (s->phase == PHASE_RUNNING && signo)
        forward(s, signo);
}

void pge_supervisor_signal(struct pge_supervisor *s, int signo)
{
    if (s->phase != PHASE_RUNNING) {
        pge_debug("signal not forwarded: the command has exited",
                  PGE_STR("signal", signame(signo)));
        return;
    }
    int stop = pge_supervisor_is_stop_signal(signo);
    if (stop && s->delayed_signo) {
        /* Somebody insists (a second TERM, Ctrl-C twice): no more draining. */
        pge_info("another stop signal during --stop-delay: forwarding it now",
                 PGE_STR("signal", signame(signo)));
        ev_timer_stop(s->loop, &s->delay);
        s->delayed_signo = 0;
    } else if ((signo == SIGTERM || signo == SIGINT) && !s->stopping && s->opts.stop_delay_ms > 0 &&
               rewrite(s, signo) != 0) {
        /* Readiness is already 503 (the run state says stopping): give load balancers time to
         * stop sending traffic before COMMAND starts shutting down. */
        s->delayed_signo = signo;
        pge_info("stop signal: readiness is 503, the command gets it after --stop-delay",
                 PGE_STR("signal", signame(signo)),
                 PGE_MS("delay", (long long)s->opts.stop_delay_ms));
        ev_timer_set(&s->delay, (double)s->opts.stop_delay_ms / 1000.0, 0.0);
        ev_timer_start(s->loop, &s->delay);
        return;
    }
    forward(s, signo);
}

/* Apply --rewrite and send: the supervisor's side of one signal. */
static void forward(struct pge_supervisor *s, int signo)
{
    int to = rewrite(s, signo);
    if (to == 0) {
        pge_debug("signal dropped (--rewrite)", PGE_STR("signal", signame(signo)));
        return;
    }
    if (pge_supervisor_is_stop_signal(signo) && !s->stopping) {
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
            pge_spawn_give_terminal(s->tty_fd, s->pid);
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

void pge_supervisor_free(struct pge_supervisor *s)
{
    if (!s)
        return;
    ev_child_stop(s->loop, &s->child);
    ev_child_stop(s->loop, &s->any);
    ev_timer_stop(s->loop, &s->timer);
    ev_timer_stop(s->loop, &s->delay);
    close_report(s);
    free(s->envp);
    free(s);
}
