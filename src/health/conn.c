/* Health server connections: read requests, queue answers, write, time out, linger, close. */
#include "pgentry/health/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgentry/common/json.h"

static void conn_update(struct pge_conn *c);

static void list_unlink(struct pge_health *h, struct pge_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        h->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(struct pge_health *h, struct pge_conn *c)
{
    c->prev = h->tail;
    c->next = NULL;
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
}

/* Activity moves a connection to the back of the eviction order. */
static void touch(struct pge_conn *c)
{
    struct pge_health *h = c->h;
    c->last_active = ev_now(h->loop);
    if (h->tail != c) {
        list_unlink(h, c);
        list_append(h, c);
    }
}

void pge_conn_close(struct pge_conn *c)
{
    struct pge_health *h = c->h;
    ev_io_stop(h->loop, &c->io);
    ev_timer_stop(h->loop, &c->timer);
    close(c->fd);
    list_unlink(h, c);
    c->next = h->free_list;
    h->free_list = c;
    h->stats.nconns--;
    /* A descriptor is free again: take back the reserve if it was spent. */
    if (h->reserve_fd < 0)
        h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static const char *http_date(struct pge_health *h)
{
    time_t now = (time_t)ev_now(h->loop);
    if (now != h->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(h->date, sizeof h->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        h->date_sec = now;
    }
    return h->date;
}

struct response {
    int code;
    const char *ctype;
    const char *body;
    size_t body_len;
    int head_only; /* HEAD: every header, no body */
    int close;
    int say_keep_alive; /* an HTTP/1.0 client asked for keep-alive */
    int allow;          /* 405: list the methods */
};

/* Queue a response on the connection. Returns -1 when the output buffer has no room yet. */
static int conn_respond(struct pge_conn *c, const struct response *r)
{
    char head[PGE_CONN_HEAD_CAP];
    size_t body = r->head_only ? 0 : r->body_len;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     r->code, reason_phrase(r->code), http_date(c->h), r->ctype, r->body_len,
                     r->allow ? "Allow: GET, HEAD\r\n" : "",
                     r->close            ? "Connection: close\r\n"
                     : r->say_keep_alive ? "Connection: keep-alive\r\n"
                                         : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        c->write_since = ev_now(c->h->loop);
    } else if (c->out_off > 0 && (size_t)n + body > PGE_CONN_OUT_CAP - c->out_len) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if ((size_t)n + body > PGE_CONN_OUT_CAP - c->out_len)
        return -1;
    memcpy(c->out + c->out_len, head, (size_t)n);
    memcpy(c->out + c->out_len + n, r->body, body);
    c->out_len += (size_t)n + body;
    c->nserved++;
    return 0;
}

/* Answer one parsed request. Returns -1 when it must wait for output room. */
static int conn_handle(struct pge_conn *c, const struct pge_httpreq *req)
{
    struct pge_health *h = c->h;
    struct pge_json_buf b = PGE_JSON_BUF(h->body, sizeof h->body);
    struct pge_render_answer a;
    struct response r = {0};

    pge_render_answer(req, h->state, &h->stats, &b, &a);
    r.code = a.code;
    r.ctype = a.ctype;
    r.allow = a.allow;
    r.head_only = pge_httpreq_str_eq(req->method, "HEAD");
    /* We never read request bodies: the connection cannot be reused after one. */
    r.close = !req->keep_alive || req->content_length > 0 || req->chunked;
    r.say_keep_alive = !r.close && req->minor_version == 0;
    r.body = b.p;
    r.body_len = b.len;
    if (conn_respond(c, &r) < 0)
        return -1;
    pge_render_count(&h->stats, a.route, r.code);
    if (r.close)
        c->phase = PGE_CONN_CLOSING;
    if (req->content_length > 0 || req->chunked)
        c->linger = 1;
    return 0;
}

static void conn_reject(struct pge_conn *c, int code)
{
    struct response r = {0};
    r.code = code;
    r.ctype = "text/plain; charset=utf-8";
    r.body = code == 431 ? "request header fields too large\n" : "bad request\n";
    r.body_len = strlen(r.body);
    r.close = 1;
    if (conn_respond(c, &r) < 0) {
        c->blocked = 1;
        return;
    }
    pge_render_count(&c->h->stats, PGE_RENDER_OTHER, code);
    c->phase = PGE_CONN_CLOSING;
    c->linger = 1;
    c->in_len = 0;
}

/* Answer every complete request in the input buffer, in order, while output room lasts. */
static void conn_serve(struct pge_conn *c)
{
    c->blocked = 0;
    while (c->phase == PGE_CONN_ACTIVE && c->in_len > 0) {
        struct pge_httpreq req;
        /* A slow client's every byte must not re-read the whole head. */
        int r = pge_httpreq_parse_next(c->in, c->in_len, &c->in_scanned, &req);
        if (r == PGE_HTTPREQ_PARTIAL)
            break;
        if (r < 0) {
            conn_reject(c, r == PGE_HTTPREQ_TOO_LARGE ? 431 : 400);
            break;
        }
        if (conn_handle(c, &req) < 0) {
            c->blocked = 1;
            break;
        }
        /* req points into in: it is not used after the shift. */
        c->in_len -= (size_t)r;
        memmove(c->in, c->in + r, c->in_len);
        c->in_scanned = 0;
        c->req_start = ev_now(c->h->loop);
    }
    /* Unanswered input at a close: a plain close() would reset the connection. */
    if (c->phase == PGE_CONN_CLOSING && c->in_len > 0)
        c->linger = 1;
    /* A half-closed client sends no more: what is left can never complete. */
    if (c->peer_eof && c->phase == PGE_CONN_ACTIVE && !c->blocked)
        c->phase = PGE_CONN_CLOSING;
}

/* Write what is pending without blocking. Returns -1 when the connection is broken. */
static int conn_flush(struct pge_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            touch(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 0;
}

/* Serve and write until nothing moves; then choose what to wait for. */
static void conn_progress(struct pge_conn *c)
{
    for (;;) {
        conn_serve(c);
        if (conn_flush(c) < 0) {
            pge_conn_close(c);
            return;
        }
        /* Requests held back for output room can go now that the output drained. */
        if (!c->blocked || c->out_off < c->out_len)
            break;
    }
    conn_update(c);
}

static int conn_read(struct pge_conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, PGE_CONN_IN_CAP - c->in_len, 0);
    if (n > 0) {
        if (c->in_len == 0)
            c->req_start = ev_now(c->h->loop);
        c->in_len += (size_t)n;
        touch(c);
        return 0;
    }
    if (n == 0) {
        c->peer_eof = 1;
        return 0;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

/* Lingering close: discard what the client still sends until it closes. */
static void conn_drain(struct pge_conn *c)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        pge_conn_close(c);
        return;
    }
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_conn *c = w->data;
    (void)loop;
    if (c->phase == PGE_CONN_LINGER) {
        conn_drain(c);
        return;
    }
    if ((revents & EV_READ) && c->in_len < PGE_CONN_IN_CAP && conn_read(c) < 0) {
        pge_conn_close(c);
        return;
    }
    conn_progress(c);
}

static void conn_arm(struct pge_conn *c, ev_tstamp deadline)
{
    struct ev_loop *loop = c->h->loop;
    c->deadline = deadline;
    /* The timer re-arms itself when it fires early, so a later deadline costs nothing here. */
    if (ev_is_active(&c->timer) && c->timer_at <= deadline)
        return;
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, deadline - ev_now(loop), 0.);
    c->timer_at = deadline;
    ev_timer_start(loop, &c->timer);
}

static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_conn *c = w->data;
    ev_tstamp now = ev_now(loop);
    (void)revents;
    if (c->deadline > now) {
        ev_timer_set(w, c->deadline - now, 0.);
        c->timer_at = c->deadline;
        ev_timer_start(loop, w);
        return;
    }
    if (c->phase != PGE_CONN_LINGER)
        c->h->stats.timed_out++;
    pge_conn_close(c);
}

static ev_tstamp min_ts(ev_tstamp a, ev_tstamp b)
{
    return a < b ? a : b;
}

/* Choose the events and the deadline for the connection's state. */
static void conn_update(struct pge_conn *c)
{
    struct pge_health *h = c->h;
    ev_tstamp now = ev_now(h->loop), deadline;
    int pending = c->out_off < c->out_len;
    int want = 0;

    if (!pending && c->phase == PGE_CONN_CLOSING) {
        if (c->peer_eof || !c->linger) {
            pge_conn_close(c);
            return;
        }
        /* close() with unread input sends a reset, which can destroy our last response in
         * the client's buffers: half-close and discard its input for a while instead. A
         * client that asked for the close and sent nothing more is closed at once. */
        shutdown(c->fd, SHUT_WR);
        c->phase = PGE_CONN_LINGER;
        c->linger_since = now;
        c->in_len = 0;
    }
    if (pending)
        want |= EV_WRITE;
    if (c->phase == PGE_CONN_LINGER ||
        (c->phase == PGE_CONN_ACTIVE && !c->peer_eof && c->in_len < PGE_CONN_IN_CAP))
        want |= EV_READ;
    if (want == 0) {
        pge_conn_close(c);
        return;
    }
    if (want != c->events) {
        ev_io_stop(h->loop, &c->io);
        ev_io_set(&c->io, c->fd, want);
        ev_io_start(h->loop, &c->io);
        c->events = want;
    }

    if (c->phase == PGE_CONN_LINGER) {
        deadline = c->linger_since + h->linger_timeout;
    } else {
        /* Idle keep-alive, a request still arriving, a response still being read. */
        deadline = c->last_active + h->idle_timeout;
        if (c->in_len > 0 || c->nserved == 0)
            deadline = min_ts(deadline, c->req_start + h->header_timeout);
        if (pending)
            deadline = min_ts(deadline, c->write_since + h->idle_timeout);
    }
    conn_arm(c, deadline);
}

void pge_conn_open(struct pge_health *h, int fd)
{
    struct pge_conn *c = h->free_list;
    ev_tstamp now = ev_now(h->loop);
    int one = 1;

    if (c)
        h->free_list = c->next;
    else
        c = &h->pool[h->never_used++];
    /* Small responses go out at once rather than waiting on Nagle and delayed ACKs. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->h = h;
    c->fd = fd;
    c->events = EV_READ;
    c->phase = PGE_CONN_ACTIVE;
    c->peer_eof = c->blocked = c->linger = 0;
    c->nserved = 0;
    c->req_start = c->last_active = now;
    c->in_len = c->in_scanned = c->out_off = c->out_len = 0;
    ev_io_init(&c->io, on_conn_io, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, on_conn_timer, 0., 0.);
    c->timer.data = c;
    ev_io_start(h->loop, &c->io);
    list_append(h, c);
    h->stats.nconns++;
    conn_arm(c, now + h->header_timeout);
}
