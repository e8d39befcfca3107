/* Health endpoint: a bounded, non-blocking HTTP/1.1 server on the libev loop (listen, accept). */
#include "pgentry/health/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/log.h"
#include "pgentry/common/parse.h"
#include "pgentry/health/conn.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE 0.1 /* seconds without accepting after a resource error */
#define BACKLOG      511

/* ---- accepting ---- */

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_health *h = w->data;
    (void)revents;
    ev_io_start(loop, &h->accept_io);
}

static void pause_accepting(struct pge_health *h)
{
    ev_io_stop(h->loop, &h->accept_io);
    ev_timer_set(&h->accept_pause, ACCEPT_PAUSE, 0.);
    ev_timer_start(h->loop, &h->accept_pause);
}

/* Out of descriptors: spend the reserve to accept and close one pending connection, so the
 * listening socket stops being readable for it instead of waking us forever. */
static int shed_one(struct pge_health *h)
{
    int fd;
    if (h->reserve_fd < 0)
        return -1;
    close(h->reserve_fd);
    fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        h->stats.shed++;
    }
    h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 0 : -1;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_health *h = w->data;
    (void)loop;
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the same policy as the connection limit when we hold
                 * some, else turn the newcomer away rather than leave it pending. */
                if (h->head) {
                    pge_conn_close(h->head);
                    h->stats.evicted++;
                    continue;
                }
                if (shed_one(h) == 0)
                    continue;
            }
            /* Descriptors, buffers or memory are short: retry a little later, not in a spin. */
            pause_accepting(h);
            return;
        }
        /* At the limit the least recently active connection makes room: idle hoarders cannot
         * lock out a probe, and the count never exceeds the bound. */
        if (h->stats.nconns == h->max_conns) {
            pge_conn_close(h->head);
            h->stats.evicted++;
        }
        pge_conn_open(h, fd);
    }
}

/* ---- set-up ---- */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                      size_t errsize)
{
    char host[64];
    int port;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (!addr || pge_parse_hostport(addr, host, sizeof host, &port) < 0) {
        pge_errbuf_set(err, errsize, "health address \"%s\" is not HOST:PORT", addr ? addr : "");
        return -1;
    }
    if (host[0] == '\0' || strcmp(host, "localhost") == 0)
        strcpy(host, host[0] ? "127.0.0.1" : "0.0.0.0");
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *sin6;
    } else {
        /* A name would need DNS, which blocks; the address is ours, it is known. */
        pge_errbuf_set(
            err, errsize,
            "health address \"%s\": host must be a numeric IPv4/[IPv6] address or localhost", addr);
        return -1;
    }
    return 0;
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int one = 1, zero = 0, saved;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    /* "[::]" means every address, IPv4 included, whatever the system default says. */
    if (ss->ss_family == AF_INET6 &&
        IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr) &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)ss, sslen) < 0 || listen(fd, BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

struct pge_health *pge_health_new(struct ev_loop *loop, const char *addr,
                                  struct pge_runstate *state, char *err, size_t errsize)
{
    return pge_health_new_opts(loop, addr, state, NULL, err, errsize);
}

static ev_tstamp ms_or(int64_t ms, int64_t dflt)
{
    return (ev_tstamp)(ms > 0 ? ms : dflt) / 1000.;
}

struct pge_health *pge_health_new_opts(struct ev_loop *loop, const char *addr,
                                       struct pge_runstate *state,
                                       const struct pge_health_opts *opts, char *err,
                                       size_t errsize)
{
    struct pge_health *h = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int saved;

    if (parse_addr(addr, &ss, &sslen, err, errsize) < 0) {
        errno = EINVAL;
        return NULL;
    }
    h = calloc(1, sizeof *h);
    if (!h) {
        pge_errbuf_set(err, errsize, "health endpoint: out of memory");
        goto fail;
    }
    h->loop = loop;
    h->state = state;
    h->lfd = h->reserve_fd = -1;
    h->max_conns = opts && opts->max_conns ? opts->max_conns : PGE_HEALTH_MAX_CONNS_DEFAULT;
    h->idle_timeout = ms_or(opts ? opts->idle_timeout_ms : 0, PGE_HEALTH_IDLE_TIMEOUT_MS);
    h->header_timeout = ms_or(opts ? opts->header_timeout_ms : 0, PGE_HEALTH_HEADER_TIMEOUT_MS);
    h->linger_timeout = ms_or(opts ? opts->linger_timeout_ms : 0, PGE_HEALTH_LINGER_TIMEOUT_MS);
    /* The whole pool up front: pages are touched only by connections that really exist. */
    h->pool = calloc(h->max_conns, sizeof *h->pool);
    if (!h->pool) {
        pge_errbuf_set(err, errsize, "health endpoint: out of memory");
        goto fail;
    }
    /* No free list through the whole pool: that would touch a page of every slot. Unused
     * slots are handed out in order, closed ones are reused first. */
    h->never_used = 0;
    h->lfd = open_listener(&ss, sslen);
    if (h->lfd < 0) {
        pge_errbuf_set(err, errsize, "health address %s: %s", addr, strerror(errno));
        goto fail;
    }
    h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ev_io_init(&h->accept_io, on_accept, h->lfd, EV_READ);
    h->accept_io.data = h;
    ev_timer_init(&h->accept_pause, on_accept_pause, ACCEPT_PAUSE, 0.);
    h->accept_pause.data = h;
    ev_io_start(loop, &h->accept_io);
    pge_info("health endpoint listening", PGE_STR("addr", addr));
    return h;
fail:
    saved = errno;
    pge_health_free(h);
    errno = saved;
    return NULL;
}

void pge_health_free(struct pge_health *h)
{
    if (!h)
        return;
    while (h->head)
        pge_conn_close(h->head);
    if (h->lfd >= 0) {
        ev_io_stop(h->loop, &h->accept_io);
        ev_timer_stop(h->loop, &h->accept_pause);
        close(h->lfd);
    }
    if (h->reserve_fd >= 0)
        close(h->reserve_fd);
    free(h->pool);
    free(h);
}
