/* One attempt to open a TCP connection to HOST:PORT (async DNS, non-blocking connect). */
#include "pgentry/net/tcpprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/net/resolve.h"

struct pge_tcpprobe {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    char *host;
    int port;
    int64_t timeout_ms;
    pge_tcpprobe_cb cb;
    void *arg;
    ev_timer timer;
    ev_timer kick;
    ev_io io;
    int fd;
    struct pge_resolve *resolving;
    struct pge_resolve_addr addrs[PGE_RESOLVE_MAX_ADDRS];
    size_t n, next;
    int last_errno;
};

static void stop_all(struct pge_tcpprobe *p)
{
    ev_timer_stop(p->loop, &p->timer);
    ev_timer_stop(p->loop, &p->kick);
    ev_io_stop(p->loop, &p->io);
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    pge_resolve_cancel(p->resolving);
    p->resolving = NULL;
}

static void finish(struct pge_tcpprobe *p, int ok, enum pge_attempt_outcome o, const char *msg)
{
    stop_all(p);
    p->cb(p->arg, ok, o, msg);
}

static void fail_errno(struct pge_tcpprobe *p)
{
    char msg[256];
    int e = p->last_errno;
    snprintf(msg, sizeof msg, "%s", strerror(e));
    finish(p, 0,
           e == ETIMEDOUT ? PGE_ATTEMPT_TIMEOUT
           : (e == ECONNREFUSED || e == ENETUNREACH || e == EHOSTUNREACH || e == ECONNRESET)
               ? PGE_ATTEMPT_REFUSED
               : PGE_ATTEMPT_OTHER,
           msg);
}

static void try_next(struct pge_tcpprobe *p);

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_tcpprobe *p = w->data;
    int err = 0;
    socklen_t len = sizeof err;
    (void)loop;
    (void)revents;
    ev_io_stop(p->loop, &p->io);
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        finish(p, 1, PGE_ATTEMPT_OK, "");
        return;
    }
    p->last_errno = err;
    close(p->fd);
    p->fd = -1;
    try_next(p);
}

/* Connect to the next address; on immediate failure move on to the one after. */
static void try_next(struct pge_tcpprobe *p)
{
    while (p->next < p->n) {
        struct pge_resolve_addr *a = &p->addrs[p->next++];
        p->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0) {
            p->last_errno = errno;
            continue;
        }
        if (connect(p->fd, (struct sockaddr *)&a->ss, a->len) == 0) {
            finish(p, 1, PGE_ATTEMPT_OK, "");
            return;
        }
        if (errno == EINPROGRESS) {
            ev_io_set(&p->io, p->fd, EV_WRITE);
            ev_io_start(p->loop, &p->io);
            return;
        }
        p->last_errno = errno;
        close(p->fd);
        p->fd = -1;
    }
    fail_errno(p);
}

static void on_resolved(void *arg, const struct pge_resolve_addr *addrs, size_t n,
                        const char *error)
{
    struct pge_tcpprobe *p = arg;
    p->resolving = NULL;
    if (error) {
        finish(p, 0, PGE_ATTEMPT_DNS, error);
        return;
    }
    memcpy(p->addrs, addrs, n * sizeof *addrs);
    p->n = n;
    try_next(p);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_tcpprobe *p = w->data;
    char port[8], err[128];
    (void)loop;
    (void)revents;
    snprintf(port, sizeof port, "%d", p->port);
    /* IP literals need no thread. */
    int n = pge_resolve_numeric(p->host, port, p->addrs, PGE_RESOLVE_MAX_ADDRS);
    if (n >= 0) {
        p->n = (size_t)n;
        try_next(p);
        return;
    }
    p->resolving = pge_resolve_start(p->off, p->host, port, on_resolved, p, err, sizeof err);
    if (!p->resolving)
        finish(p, 0, PGE_ATTEMPT_OTHER, err);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_tcpprobe *p = w->data;
    char msg[256], d[32];
    (void)loop;
    (void)revents;
    snprintf(msg, sizeof msg, "%s timed out after %s",
             p->resolving ? "name resolution" : "connection",
             pge_log_fmt_ms(p->timeout_ms, d, sizeof d));
    finish(p, 0, PGE_ATTEMPT_TIMEOUT, msg);
}

struct pge_tcpprobe *pge_tcpprobe_start(struct ev_loop *loop, struct pge_workqueue *off,
                                        const char *host, int port, int64_t timeout_ms,
                                        pge_tcpprobe_cb cb, void *arg)
{
    struct pge_tcpprobe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->host = strdup(host);
    if (!p->host) {
        free(p);
        return NULL;
    }
    p->loop = loop;
    p->off = off;
    p->port = port;
    p->timeout_ms = timeout_ms;
    p->cb = cb;
    p->arg = arg;
    p->fd = -1;
    ev_init(&p->io, on_io);
    p->io.data = p;
    ev_timer_init(&p->timer, on_timeout, (double)timeout_ms / 1000.0, 0.0);
    p->timer.data = p;
    ev_timer_start(loop, &p->timer);
    ev_timer_init(&p->kick, on_kick, 0.0, 0.0);
    p->kick.data = p;
    ev_timer_start(loop, &p->kick);
    return p;
}

void pge_tcpprobe_free(struct pge_tcpprobe *p)
{
    if (!p)
        return;
    stop_all(p);
    free(p->host);
    free(p);
}
