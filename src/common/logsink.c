/* Where log lines go: stderr through a non-blocking descriptor and a bounded buffer. */
#include "pgentry/common/logsink.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/common/logbuf.h"
#include "pgentry/common/runstate.h"

/* How a line reaches the descriptor without blocking. */
enum sink_mode {
    SINK_WRITE,   /* writev: our own non-blocking description, a regular file, a test's fd */
    SINK_SEND,    /* sendmsg(MSG_DONTWAIT): a socket, whatever its description's flags */
    SINK_POLL,    /* poll(0) first, then writev: a shared blocking pipe or tty (no /proc) */
    SINK_DISCARD, /* stderr was closed: a later descriptor 2 is not ours to write to */
};

enum flush_result { FLUSH_DONE, FLUSH_BLOCKED };

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_storage[PGE_LOGBUF_SIZE];
static struct pge_logbuf g_buf = {.data = g_storage, .cap = sizeof g_storage};
static int g_fd = 2;
static int g_own_fd = -1; /* the description we opened, closed when replaced */
static enum sink_mode g_mode = SINK_WRITE;
static struct ev_loop *g_loop;
static pthread_t g_loop_thread;
static ev_io g_io;
static ev_async g_async;

/* A forked child starts with no backlog (its parent writes those lines) and no loop. The lock
 * is held across fork() so the child never inherits it taken by a thread it does not have. */
static void before_fork(void)
{
    pthread_mutex_lock(&g_mu);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&g_mu);
}

static void after_fork_child(void)
{
    pge_logbuf_clear(&g_buf);
    g_loop = NULL;
    pthread_mutex_unlock(&g_mu);
}

static void register_fork_handlers(void)
{
    (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static void set_sink(int fd, int own_fd, enum sink_mode mode)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, register_fork_handlers);
    pthread_mutex_lock(&g_mu);
    if (g_own_fd >= 0 && g_own_fd != own_fd)
        close(g_own_fd);
    g_fd = fd;
    g_own_fd = own_fd;
    g_mode = mode;
    pthread_mutex_unlock(&g_mu);
}

int pge_logsink_open_stderr(void)
{
    struct stat st;
    int fl = fcntl(2, F_GETFL);

    if (fl < 0 || fstat(2, &st) < 0) {
        set_sink(-1, -1, SINK_DISCARD);
        return 0;
    }
    /* A file never says EAGAIN, and reopening it would reset the offset of a file opened
     * without O_APPEND: written as it is. A description already non-blocking is fine too. */
    if (S_ISREG(st.st_mode) || (fl & O_NONBLOCK)) {
        set_sink(2, -1, SINK_WRITE);
        return 0;
    }
    /* A socket cannot be reopened through /proc, but MSG_DONTWAIT makes one call
     * non-blocking without touching the description. */
    if (S_ISSOCK(st.st_mode)) {
        set_sink(2, -1, SINK_SEND);
        return 0;
    }
    /* A pipe or terminal is usually shared with COMMAND: O_NONBLOCK on that description would
     * make the application's own writes fail with EAGAIN. A second description of the same
     * pipe or terminal, opened through /proc, is non-blocking for us alone. */
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0 && fd < 3) {
        /* 0 or 1 was closed: keep the standard numbers free for what expects them. */
        int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        fd = moved;
    }
    if (fd >= 0) {
        set_sink(fd, fd, SINK_WRITE);
        return 0;
    }
    /* No /proc (or no reader yet): poll before each write. A write of at most PIPE_BUF after
     * POLLOUT does not block on a pipe unless another writer fills it in between - a small
     * window, and the only way left that never makes COMMAND's writes fail (toggling
     * O_NONBLOCK on the shared description would). */
    set_sink(2, -1, SINK_POLL);
    return 0;
}

void pge_logsink_use_fd(int fd)
{
    set_sink(fd, -1, SINK_WRITE);
}

static ssize_t write_chunk(struct iovec *iov, int niov)
{
    switch (g_mode) {
    case SINK_SEND: {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
        return sendmsg(g_fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    case SINK_POLL: {
        struct pollfd p = {.fd = g_fd, .events = POLLOUT};
        int r = poll(&p, 1, 0);
        if (r == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (r < 0)
            return -1;
        /* More than PIPE_BUF could block on a blocking pipe: a longer line goes in pieces. */
        if (iov[0].iov_len >= PIPE_BUF) {
            iov[0].iov_len = PIPE_BUF;
            niov = 1;
        } else if (niov == 2 && iov[0].iov_len + iov[1].iov_len > PIPE_BUF) {
            iov[1].iov_len = PIPE_BUF - iov[0].iov_len;
        }
        return writev(g_fd, iov, niov);
    }
    case SINK_WRITE:
        return writev(g_fd, iov, niov);
    case SINK_DISCARD:
        break;
    }
    errno = EBADF;
    return -1;
}

/* Write what the descriptor takes now, whole lines per call. Called with the lock held. */
static enum flush_result flush_locked(void)
{
    for (;;) {
        struct iovec iov[2];
        int niov;
        if (pge_logbuf_chunk(&g_buf, PIPE_BUF, iov, &niov) == 0)
            return FLUSH_DONE;
        if (g_mode == SINK_DISCARD) {
            pge_logbuf_clear(&g_buf);
            return FLUSH_DONE;
        }
        ssize_t w = write_chunk(iov, niov);
        if (w > 0) {
            pge_logbuf_consume(&g_buf, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
            return FLUSH_BLOCKED;
        /* EPIPE, EBADF, ENOSPC, EIO: these lines will never be written. */
        pge_logbuf_discard(&g_buf);
        return FLUSH_DONE;
    }
}

/* On the loop's thread with the lock held: wake when the descriptor takes more. */
static void watch_locked(void)
{
    if (!g_loop || ev_is_active(&g_io) || g_buf.len == 0)
        return;
    ev_io_set(&g_io, g_fd, EV_WRITE);
    ev_io_start(g_loop, &g_io);
    ev_unref(g_loop); /* a backlog alone must not keep the loop running */
}

static void unwatch_locked(void)
{
    if (!g_loop || !ev_is_active(&g_io))
        return;
    ev_ref(g_loop);
    ev_io_stop(g_loop, &g_io);
}

static void report_dropped(unsigned long long n)
{
    if (n > 0)
        pge_warn("log lines dropped: stderr was full", PGE_INT("dropped", (long long)n));
}

void pge_logsink_write(const char *line, size_t n)
{
    struct ev_loop *wake = NULL;

    pthread_mutex_lock(&g_mu);
    /* The backlog first: lines leave in the order they were logged. Behind a backlog the
     * descriptor just said EAGAIN: the line only joins the queue. */
    enum flush_result r = flush_locked();
    int queued = pge_logbuf_put(&g_buf, line, n) == 0;
    if (r == FLUSH_DONE && queued)
        r = flush_locked();
    unsigned long long dropped = pge_logbuf_notice_due(&g_buf);
    if (r == FLUSH_BLOCKED && g_loop) {
        /* libev is not thread-safe: another thread only wakes the loop, which watches. */
        if (pthread_equal(pthread_self(), g_loop_thread))
            watch_locked();
        else
            wake = g_loop;
    }
    pthread_mutex_unlock(&g_mu);
    if (wake)
        ev_async_send(wake, &g_async);
    report_dropped(dropped);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    pthread_mutex_lock(&g_mu);
    if (flush_locked() == FLUSH_DONE)
        unwatch_locked();
    unsigned long long dropped = pge_logbuf_notice_due(&g_buf);
    pthread_mutex_unlock(&g_mu);
    report_dropped(dropped);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    pthread_mutex_lock(&g_mu);
    watch_locked();
    pthread_mutex_unlock(&g_mu);
}

void pge_logsink_attach(struct ev_loop *loop)
{
    if (!loop)
        return;
    pthread_mutex_lock(&g_mu);
    if (!g_loop) {
        g_loop = loop;
        g_loop_thread = pthread_self();
        ev_io_init(&g_io, on_writable, g_fd, EV_WRITE);
        ev_async_init(&g_async, on_wake);
        ev_async_start(loop, &g_async);
        ev_unref(loop);
        watch_locked(); /* lines logged before the loop existed */
    }
    pthread_mutex_unlock(&g_mu);
}

void pge_logsink_detach(void)
{
    pthread_mutex_lock(&g_mu);
    if (g_loop) {
        unwatch_locked();
        ev_ref(g_loop);
        ev_async_stop(g_loop, &g_async);
        g_loop = NULL;
    }
    pthread_mutex_unlock(&g_mu);
}

int pge_logsink_flush(int timeout_ms)
{
    int64_t deadline = pge_runstate_mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&g_mu);
        enum flush_result r = flush_locked();
        unsigned long long dropped = pge_logbuf_notice_due(&g_buf);
        int fd = g_fd;
        pthread_mutex_unlock(&g_mu);
        if (dropped > 0) {
            report_dropped(dropped); /* and write it too, within the same bound */
            continue;
        }
        if (r == FLUSH_DONE)
            return 0;
        int64_t left = deadline - pge_runstate_mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return -1;
    }
}

unsigned long long pge_logsink_dropped(void)
{
    pthread_mutex_lock(&g_mu);
    unsigned long long n = g_buf.dropped_total;
    pthread_mutex_unlock(&g_mu);
    return n;
}
