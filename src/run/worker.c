/* The database phases in a forked worker process: fork, the report pipe, and its two ends. */
#include "pgentry/run/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/common/logsink.h"
#include "pgentry/common/runstate.h"

#define MSG_MAGIC 0x70676577u /* "pgew" */

enum { MSG_STATE = 1, MSG_DONE = 2 };

/* One report: the whole state each time. Pipe writes of at most PIPE_BUF bytes are atomic, so
 * every read of this size returns one whole message and a full pipe refuses it whole. */
struct msg {
    unsigned magic;
    int kind;
    struct pge_outcome out; /* MSG_DONE */
    struct pge_runstate state;
};

_Static_assert(sizeof(struct msg) <= PIPE_BUF, "a report must fit one atomic pipe write");

struct pge_worker {
    struct ev_loop *loop;
    int fd; /* the supervisor's read end, or the worker's write end */
    pid_t pid;
    int is_worker;
    int reported; /* worker: the outcome went out; supervisor: it came in */
    int exited;   /* supervisor: the worker was reaped */
    /* supervisor side */
    ev_io in;
    ev_child child;
    pge_worker_state_cb on_state;
    pge_worker_done_cb on_done;
    void *arg;
    /* worker side */
    ev_prepare publish;
    const struct pge_runstate *st;
    struct pge_runstate sent; /* what the supervisor has (zeros before the first send) */
};

void pge_worker_merge(struct pge_runstate *dst, const struct pge_runstate *src)
{
    struct pge_runstate keep = *dst;
    *dst = *src;
    dst->stopping = keep.stopping || src->stopping;
    dst->app = keep.app;
}

/* ---- worker side -------------------------------------------------------------------------- */

static void fill(struct pge_worker *w, struct msg *m, int kind, struct pge_outcome out)
{
    memset(m, 0, sizeof *m);
    m->magic = MSG_MAGIC;
    m->kind = kind;
    m->out = out;
    m->state = *w->st;
    m->state.worker_log_dropped = pge_logsink_dropped();
}

/* Before the worker's loop sleeps: send the state when it changed. A full pipe (the supervisor
 * is busy) is no reason to wait: the next round sends the newest state. */
static void on_publish(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct pge_worker *w = p->data;
    struct msg m;
    (void)loop;
    (void)revents;
    if (w->reported)
        return;
    fill(w, &m, MSG_STATE, PGE_OUTCOME(PGE_OUT_OK, 0));
    if (memcmp(&m.state, &w->sent, sizeof w->sent) == 0)
        return;
    if (write(w->fd, &m, sizeof m) == (ssize_t)sizeof m)
        w->sent = m.state;
}

int pge_worker_report(struct pge_worker *w, struct pge_outcome out, int timeout_ms)
{
    struct msg m;
    struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};
    int64_t deadline = pge_runstate_mono_ms() + timeout_ms;

    if (!w->is_worker || w->reported)
        return 0;
    w->reported = 1;
    fill(w, &m, MSG_DONE, out);
    for (;;) {
        ssize_t n = write(w->fd, &m, sizeof m);
        if (n == (ssize_t)sizeof m)
            break;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1; /* EPIPE: the supervisor is gone */
        int64_t left = deadline - pge_runstate_mono_ms();
        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return -1;
    }
    /* Stay out of the way until the supervisor has acted on it: it closes its end once COMMAND
     * is started (COMMAND's copy goes with its exec). The worker's teardown would otherwise
     * compete for the CPU with COMMAND's start. */
    pfd.events = 0;
    for (;;) {
        int64_t left = deadline - pge_runstate_mono_ms();
        int n = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (n != 0 && !(n < 0 && errno == EINTR))
            return 0;
        if (left <= 0)
            return 0;
    }
}

/* In the new process: a loop of its own, its own process group, and the supervisor's death
 * turned into a stop signal. */
static void become_worker(struct pge_worker *w, pid_t parent)
{
    ev_loop_fork(w->loop);
    if (setpgid(0, 0) < 0)
        pge_debug("worker: no process group of its own", PGE_STR("error", strerror(errno)));
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        pge_warn("worker: will not notice the supervisor's death",
                 PGE_STR("error", strerror(errno)));
    else if (getppid() != parent)
        kill(getpid(), SIGTERM); /* it died before prctl: stop like any other stop */
    w->is_worker = 1;
    w->pid = 0;
    memset(&w->sent, 0, sizeof w->sent);
    ev_prepare_init(&w->publish, on_publish);
    w->publish.data = w;
    ev_prepare_start(w->loop, &w->publish);
    /* The publisher must not keep the worker's loop alive on its own. */
    ev_unref(w->loop);
}

/* ---- supervisor side ---------------------------------------------------------------------- */

static void deliver(struct pge_worker *w, struct pge_outcome out)
{
    if (w->reported)
        return;
    w->reported = 1;
    w->on_done(w->arg, out);
}

/* Read every whole report in the pipe. Returns 1 at end of file or on a broken report. */
static int drain(struct pge_worker *w)
{
    struct msg m;
    for (;;) {
        ssize_t n = read(w->fd, &m, sizeof m);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : 1;
        if (n == 0)
            return 1;
        if (n != (ssize_t)sizeof m || m.magic != MSG_MAGIC) {
            pge_error("database worker: garbled report: stopping it");
            kill(w->pid, SIGKILL);
            return 1;
        }
        if (w->reported)
            continue;
        w->on_state(w->arg, &m.state);
        if (m.kind == MSG_DONE) {
            deliver(w, m.out);
            return 0;
        }
    }
}

static void stop_reading(struct pge_worker *w)
{
    if (w->fd < 0)
        return;
    ev_io_stop(w->loop, &w->in);
    close(w->fd);
    w->fd = -1;
}

static void on_reports(struct ev_loop *loop, ev_io *io, int revents)
{
    struct pge_worker *w = io->data;
    (void)loop;
    (void)revents;
    if (drain(w))
        stop_reading(w);
}

static void on_worker_exit(struct ev_loop *loop, ev_child *c, int revents)
{
    struct pge_worker *w = c->data;
    int st = c->rstatus;
    (void)revents;
    ev_child_stop(loop, c);
    w->exited = 1;
    if (w->reported)
        return;
    /* Whatever it wrote before dying is still in the pipe. */
    if (w->fd >= 0 && drain(w))
        stop_reading(w);
    if (w->reported)
        return;
    if (WIFSIGNALED(st))
        pge_error("database worker died before reporting: see the lines above",
                  PGE_INT("pid", c->rpid), PGE_INT("signal", WTERMSIG(st)));
    else
        pge_error("database worker ended before reporting: see the lines above",
                  PGE_INT("pid", c->rpid), PGE_INT("code", WEXITSTATUS(st)));
    deliver(w, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
}

static void become_supervisor(struct pge_worker *w, pid_t pid)
{
    w->pid = pid;
    ev_io_init(&w->in, on_reports, w->fd, EV_READ);
    w->in.data = w;
    ev_io_start(w->loop, &w->in);
    ev_child_init(&w->child, on_worker_exit, pid, 0);
    w->child.data = w;
    ev_child_start(w->loop, &w->child);
}

pid_t pge_worker_fork(struct pge_worker **out, struct ev_loop *loop, const struct pge_runstate *st,
                      pge_worker_state_cb on_state, pge_worker_done_cb on_done, void *arg)
{
    struct pge_worker *w = calloc(1, sizeof *w);
    int fds[2] = {-1, -1};
    pid_t parent = getpid(), pid;
    int saved;

    *out = NULL;
    if (!w)
        return -1;
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail;
    w->loop = loop;
    w->st = st;
    w->on_state = on_state;
    w->on_done = on_done;
    w->arg = arg;
    fflush(NULL); /* nothing buffered may be written twice */
    pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0) {
        close(fds[0]);
        w->fd = fds[1];
        become_worker(w, parent);
        *out = w;
        return 0;
    }
    close(fds[1]);
    w->fd = fds[0];
    become_supervisor(w, pid);
    *out = w;
    return pid;
fail:
    saved = errno;
    if (fds[0] >= 0) {
        close(fds[0]);
        close(fds[1]);
    }
    free(w);
    errno = saved;
    return -1;
}

void pge_worker_release(struct pge_worker *w)
{
    if (w && !w->is_worker)
        stop_reading(w);
}

void pge_worker_signal(struct pge_worker *w, int signo)
{
    if (w && !w->is_worker && !w->exited && kill(w->pid, signo) < 0 && errno != ESRCH)
        pge_warn("could not signal the database worker", PGE_STR("error", strerror(errno)));
}

void pge_worker_free(struct pge_worker *w)
{
    if (!w)
        return;
    if (w->is_worker) {
        ev_ref(w->loop);
        ev_prepare_stop(w->loop, &w->publish);
        close(w->fd);
    } else {
        if (!w->exited && !w->reported) {
            /* Its phases never ended (the supervisor failed right after the fork): let it stop
             * them as on any stop signal, and wait, so nothing is left half done. */
            kill(w->pid, SIGTERM);
            while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            w->exited = 1;
        }
        if (!w->exited)
            ev_child_stop(w->loop, &w->child);
        stop_reading(w);
    }
    free(w);
}
