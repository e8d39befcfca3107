/* Supervise COMMAND as init: spawn, forward signals, reap, stop with a grace period. */
#include "pgentry/super.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/log.h"
#include "pgentry/parse.h"

struct pge_super {
    struct ev_loop *loop;
    struct pge_super_opts opts;
    pge_super_cb cb;
    void *arg;
    pid_t pid;
    ev_child child;
    ev_io exec_pipe; /* CLOEXEC pipe: EOF = exec succeeded, data = errno of a failed exec */
    ev_timer stop_timer;
    int exec_errno;
    int stopping;
};

int pge_super_init_process(void)
{
    if (getpid() == 1)
        return 0;
    /* Orphans of COMMAND are re-parented to us, so we can reap them as PID 1 would. */
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/* What COMMAND must start with: default dispositions and the mask pgentry was given. */
static void reset_signals(const sigset_t *mask)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigprocmask(SIG_SETMASK, mask, NULL);
}

static void child_exec(const struct pge_super_opts *o, int errfd)
{
    int e;
    reset_signals(o->orig_mask);
    execvp(o->argv[0], o->argv);
    e = errno;
    if (errfd >= 0) {
        ssize_t w = write(errfd, &e, sizeof e);
        (void)w;
    }
    _exit(e == ENOENT ? 127 : 126);
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

static void on_exec_pipe(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_super *s = w->data;
    int e = 0;
    (void)revents;
    ssize_t n = read(w->fd, &e, sizeof e);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, w);
    close(w->fd);
    if (n == (ssize_t)sizeof e) {
        s->exec_errno = e;
        return;
    }
    if (s->opts.state) {
        s->opts.state->app.running = 1;
        s->opts.state->phase = s->opts.state->stopping ? PGE_PHASE_STOPPING : PGE_PHASE_RUNNING;
    }
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_super *s = w->data;
    struct pge_outcome out;
    int st = w->rstatus;
    char err[512];
    (void)revents;
    if (!WIFEXITED(st) && !WIFSIGNALED(st))
        return; /* stopped/continued */
    ev_child_stop(loop, w);
    ev_timer_stop(loop, &s->stop_timer);
    if (ev_is_active(&s->exec_pipe)) {
        /* The exit raced ahead of our read: drain the pipe now for an exec error. */
        int e = 0;
        if (read(s->exec_pipe.fd, &e, sizeof e) == (ssize_t)sizeof e)
            s->exec_errno = e;
        ev_io_stop(loop, &s->exec_pipe);
        close(s->exec_pipe.fd);
    }
    if (s->exec_errno) {
        out = exec_failure(s->exec_errno, s->opts.argv[0], err, sizeof err);
        pge_error(err);
    } else if (WIFEXITED(st)) {
        out = PGE_OUTCOME(PGE_OUT_CHILD_EXIT, WEXITSTATUS(st));
    } else {
        out = PGE_OUTCOME(PGE_OUT_CHILD_SIGNAL, WTERMSIG(st));
    }
    if (s->opts.state) {
        s->opts.state->app.running = 0;
        s->opts.state->app.exited = 1;
        s->opts.state->app.exit_code = out.kind == PGE_OUT_CHILD_SIGNAL ? 128 + out.value
                                       : out.kind == PGE_OUT_CHILD_EXIT ? out.value
                                                                        : out.value;
    }
    if (!s->exec_errno)
        pge_info("command exited", PGE_INT("pid", s->pid),
                 PGE_INT(out.kind == PGE_OUT_CHILD_SIGNAL ? "signal" : "code", out.value));
    s->pid = 0;
    s->cb(s->arg, out);
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_super *s = w->data;
    (void)loop;
    (void)revents;
    if (s->pid > 0) {
        pge_warn("command did not stop in time: sending KILL", PGE_INT("pid", s->pid));
        if (kill(-s->pid, SIGKILL) < 0)
            kill(s->pid, SIGKILL);
    }
}

struct pge_super *pge_super_new(struct ev_loop *loop, const struct pge_super_opts *opts,
                                pge_super_cb cb, void *arg)
{
    struct pge_super *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->opts = *opts;
    s->cb = cb;
    s->arg = arg;
    ev_init(&s->child, on_child);
    s->child.data = s;
    ev_init(&s->exec_pipe, on_exec_pipe);
    s->exec_pipe.data = s;
    ev_timer_init(&s->stop_timer, on_stop_timeout, (double)opts->stop_timeout_ms / 1000.0, 0.0);
    s->stop_timer.data = s;
    return s;
}

int pge_super_start(struct pge_super *s, struct pge_outcome *out, char *err, size_t errsize)
{
    int p[2];
    if (s->opts.user) {
        snprintf(err, errsize, "--user is not yet implemented");
        *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        return -1;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errsize, "pipe: %s", strerror(errno));
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errsize, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        setpgid(0, 0);
        child_exec(&s->opts, p[1]);
    }
    /* Both sides set the group so that a signal sent right away already reaches it. */
    setpgid(pid, pid);
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    s->pid = pid;
    ev_child_set(&s->child, pid, 0);
    ev_child_start(s->loop, &s->child);
    ev_io_set(&s->exec_pipe, p[0], EV_READ);
    ev_io_start(s->loop, &s->exec_pipe);
    if (s->opts.state) {
        s->opts.state->app.pid = pid;
        s->opts.state->app.started_mono_ms = pge_state_mono_ms();
    }
    pge_info("command started", PGE_STR("command", s->opts.argv[0]), PGE_INT("pid", pid));
    return 0;
}

void pge_super_signal(struct pge_super *s, int signo)
{
    int to = signo;
    for (size_t i = 0; i < s->opts.nrewrite; i++)
        if (s->opts.rewrite[i].from == signo) {
            to = s->opts.rewrite[i].to;
            break;
        }
    if ((signo == SIGTERM || signo == SIGINT || signo == SIGQUIT) && !s->stopping && s->pid > 0) {
        s->stopping = 1;
        ev_timer_start(s->loop, &s->stop_timer);
    }
    if (to == 0 || s->pid <= 0)
        return;
    pge_debug("forwarding signal", PGE_STR("signal", pge_parse_signal_name(to)),
              PGE_INT("pid", s->pid));
    if (kill(s->opts.signal_group ? -s->pid : s->pid, to) < 0 && errno != ESRCH)
        pge_warn("could not forward signal", PGE_STR("error", strerror(errno)));
}

pid_t pge_super_pid(const struct pge_super *s)
{
    return s->pid;
}

struct pge_outcome pge_super_exec(const struct pge_super_opts *opts, char *err, size_t errsize)
{
    if (opts->user) {
        snprintf(err, errsize, "--user is not yet implemented");
        return PGE_OUTCOME(PGE_OUT_CONFIG, 0);
    }
    reset_signals(opts->orig_mask);
    execvp(opts->argv[0], opts->argv);
    return exec_failure(errno, opts->argv[0], err, errsize);
}

void pge_super_free(struct pge_super *s)
{
    if (!s)
        return;
    ev_child_stop(s->loop, &s->child);
    ev_timer_stop(s->loop, &s->stop_timer);
    if (ev_is_active(&s->exec_pipe)) {
        ev_io_stop(s->loop, &s->exec_pipe);
        close(s->exec_pipe.fd);
    }
    free(s);
}
