/* libcurl's multi interface driven by the libev loop: HTTP without blocking or threads of ours. */
#include "pgentry/net/curlloop.h"

#include <fcntl.h>
#include <stdlib.h>

#include "pgentry/common/cloexec.h"

struct transfer {
    pge_curlloop_cb cb;
    void *arg;
    struct transfer *next;
    CURL *easy;
};

struct sock {
    ev_io io;
    struct pge_curlloop *c;
    curl_socket_t fd;
};

struct pge_curlloop {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    struct transfer *transfers; /* running, for cleanup */
};

static void check_done(struct pge_curlloop *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        struct transfer *t = NULL;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(c->multi, easy);
        for (struct transfer **pp = &c->transfers; *pp; pp = &(*pp)->next)
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        if (t) {
            pge_curlloop_cb cb = t->cb;
            void *arg = t->arg;
            free(t);
            cb(arg, easy, rc, status);
        }
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sock *s = (struct sock *)w;
    struct pge_curlloop *c = s->c;
    int running;
    int action =
        (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    (void)loop;
    curl_multi_socket_action(c->multi, s->fd, action, &running);
    check_done(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_curlloop *c = w->data;
    int running;
    (void)loop;
    (void)revents;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct pge_curlloop *c = userp;
    struct sock *s = socketp;
    (void)easy;
    if (!s && what != CURL_POLL_REMOVE) {
        /* libcurl 7.x makes its sockets (and the threaded resolver's socket pair) without
         * close-on-exec; each passes here before the loop ever waits on it, and children are
         * only forked from the loop. */
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(c->loop, &s->io);
            curl_multi_assign(c->multi, fd, NULL);
            free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        s->c = c;
        s->fd = fd;
        ev_init(&s->io, on_io);
        curl_multi_assign(c->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(c->loop, &s->io);
    ev_io_set(&s->io, fd, events);
    ev_io_start(c->loop, &s->io);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct pge_curlloop *c = userp;
    (void)multi;
    ev_timer_stop(c->loop, &c->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": never call socket_action from inside this callback. */
        ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0.0);
        ev_timer_start(c->loop, &c->timer);
    }
    return 0;
}

struct pge_curlloop *pge_curlloop_new(struct ev_loop *loop)
{
    struct pge_curlloop *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    ev_init(&c->timer, on_timer);
    c->timer.data = c;
    return c;
}

/* The multi handle, made on the first transfer: it holds a wake-up socket pair, which a run
 * without HTTP has no use for. */
static int ensure_multi(struct pge_curlloop *c)
{
    if (c->multi)
        return 0;
    c->multi = curl_multi_init();
    if (!c->multi)
        return -1;
    /* That pair is made without close-on-exec and libcurl does not show it to us: mark
     * everything (every descriptor of ours is meant to be close-on-exec anyway). */
    (void)pge_cloexec_from(3);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return 0;
}

int pge_curlloop_add(struct pge_curlloop *c, CURL *easy, pge_curlloop_cb cb, void *arg)
{
    if (ensure_multi(c) < 0)
        return -1;
    struct transfer *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->cb = cb;
    t->arg = arg;
    t->easy = easy;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)t);
    if (curl_multi_add_handle(c->multi, easy) != CURLM_OK) {
        free(t);
        return -1;
    }
    t->next = c->transfers;
    c->transfers = t;
    return 0;
}

void pge_curlloop_remove(struct pge_curlloop *c, CURL *easy)
{
    for (struct transfer **pp = &c->transfers; *pp; pp = &(*pp)->next) {
        if ((*pp)->easy == easy) {
            struct transfer *t = *pp;
            *pp = t->next;
            curl_multi_remove_handle(c->multi, easy);
            free(t);
            return;
        }
    }
}

void pge_curlloop_free(struct pge_curlloop *c)
{
    if (!c)
        return;
    while (c->transfers) {
        struct transfer *t = c->transfers;
        c->transfers = t->next;
        curl_multi_remove_handle(c->multi, t->easy);
        curl_easy_cleanup(t->easy);
        free(t);
    }
    ev_timer_stop(c->loop, &c->timer);
    /* Cleaning the multi handle reports every socket as removed through sock_cb. */
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c);
}
