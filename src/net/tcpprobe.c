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

#define MAX_ADDRS 8

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

struct resolve_job {
    struct pge_workqueue_job job;
    struct pge_tcpprobe *owner;
    char *host;
    char port[8];
    struct addr addrs[MAX_ADDRS];
    size_t n;
    int gai_error;
};

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
    struct resolve_job *job;
    struct addr addrs[MAX_ADDRS];
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
    if (p->job) {
        p->job->owner = NULL;
        pge_workqueue_cancel(&p->job->job);
        p->job = NULL;
    }
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
        struct addr *a = &p->addrs[p->next++];
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

static int lookup(const char *host, const char *port, int flags, struct addr *out, size_t *n)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rc;
    *n = 0;
    for (struct addrinfo *a = res; a && *n < MAX_ADDRS; a = a->ai_next) {
        memcpy(&out[*n].ss, a->ai_addr, a->ai_addrlen);
        out[*n].len = a->ai_addrlen;
        (*n)++;
    }
    freeaddrinfo(res);
    return 0;
}

static void resolve_work(struct pge_workqueue_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    j->gai_error = lookup(j->host, j->port, AI_ADDRCONFIG | AI_NUMERICSERV, j->addrs, &j->n);
}

static void resolve_release(struct pge_workqueue_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    free(j->host);
    free(j);
}

static void resolve_done(struct pge_workqueue_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    struct pge_tcpprobe *p = j->owner;
    if (!p)
        return;
    p->job = NULL;
    if (j->gai_error) {
        char msg[256];
        snprintf(msg, sizeof msg, "could not resolve host \"%s\": %s", p->host,
                 gai_strerror(j->gai_error));
        finish(p, 0, PGE_ATTEMPT_DNS, msg);
        return;
    }
    memcpy(p->addrs, j->addrs, sizeof p->addrs);
    p->n = j->n;
    try_next(p);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_tcpprobe *p = w->data;
    char port[8];
    (void)loop;
    (void)revents;
    snprintf(port, sizeof port, "%d", p->port);
    /* IP literals need no thread. */
    if (lookup(p->host, port, AI_NUMERICHOST | AI_NUMERICSERV, p->addrs, &p->n) == 0) {
        try_next(p);
        return;
    }
    struct resolve_job *j = calloc(1, sizeof *j);
    if (!j || !(j->host = strdup(p->host))) {
        free(j);
        finish(p, 0, PGE_ATTEMPT_OTHER, "out of memory");
        return;
    }
    memcpy(j->port, port, sizeof port);
    j->job.work = resolve_work;
    j->job.done = resolve_done;
    j->job.release = resolve_release;
    j->owner = p;
    if (pge_workqueue_submit(p->off, &j->job) < 0) {
        resolve_release(&j->job);
        finish(p, 0, PGE_ATTEMPT_OTHER, "could not start a resolver thread");
        return;
    }
    p->job = j;
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_tcpprobe *p = w->data;
    char msg[256], d[32];
    (void)loop;
    (void)revents;
    snprintf(msg, sizeof msg, "%s timed out after %s", p->job ? "name resolution" : "connection",
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
