/* Health server internals: the server object and one pooled connection (for src/health only). */
#ifndef PGENTRY_HEALTH_CONN_H
#define PGENTRY_HEALTH_CONN_H

#include <ev.h>
#include <stddef.h>
#include <time.h>

#include "pgentry/common/runstate.h"
#include "pgentry/health/health.h"
#include "pgentry/health/httpreq.h"
#include "pgentry/health/render.h"

#define PGE_CONN_IN_CAP   PGE_HTTPREQ_HEAD_MAX
#define PGE_CONN_OUT_CAP  PGE_HEALTH_RESPONSE_MAX
#define PGE_CONN_HEAD_CAP 512
#define PGE_CONN_BODY_CAP (PGE_CONN_OUT_CAP - PGE_CONN_HEAD_CAP) /* fits an empty output buffer */

enum pge_conn_phase {
    PGE_CONN_ACTIVE = 0, /* reading requests, writing responses */
    PGE_CONN_CLOSING,    /* no more requests: flush, then linger */
    PGE_CONN_LINGER,     /* write side shut: discard input until EOF or the linger deadline */
};

/* One connection. Lives in the server's fixed pool: nothing is allocated per request or in
 * proportion to what a client sends. */
struct pge_conn {
    ev_io io;
    ev_timer timer;
    struct pge_health *h;
    struct pge_conn *prev, *next; /* activity list (least recent first) or the free list */
    int fd;
    int events; /* what io is started for */
    enum pge_conn_phase phase;
    int peer_eof;
    int blocked;           /* a response waits for output room */
    int linger;            /* the client may still be sending: half-close before close() */
    unsigned nserved;      /* responses queued on this connection */
    ev_tstamp deadline;    /* when the connection is dropped */
    ev_tstamp timer_at;    /* when the timer fires (≤ deadline; it re-arms itself) */
    ev_tstamp req_start;   /* accept, or first byte of the request being read */
    ev_tstamp write_since; /* output became pending */
    ev_tstamp last_active;
    ev_tstamp linger_since;
    size_t in_len;
    size_t in_scanned; /* how much of in the parser has seen (pge_httpreq_parse_next) */
    size_t out_off, out_len;
    char in[PGE_CONN_IN_CAP];
    char out[PGE_CONN_OUT_CAP];
};

/* The server (opaque outside src/health). */
struct pge_health {
    struct ev_loop *loop;
    const struct pge_runstate *state;
    int lfd;
    int reserve_fd; /* spent to shed a connection when the process is out of descriptors */
    ev_io accept_io;
    ev_timer accept_pause;
    struct pge_conn *pool;
    struct pge_conn *free_list;   /* slots used before and closed since */
    unsigned never_used;          /* pool[never_used..] have not been touched yet */
    struct pge_conn *head, *tail; /* open connections, least recently active first */
    unsigned max_conns;
    ev_tstamp idle_timeout, header_timeout, linger_timeout;
    struct pge_render_stats stats; /* stats.nconns: open connections */
    time_t date_sec;
    char date[40];
    char body[PGE_CONN_BODY_CAP]; /* scratch for one response body, used synchronously */
};

/* Serve the accepted, non-blocking socket fd in a free pool slot (the caller made room: fewer
 * than max_conns are open). The connection owns fd from here on. */
void pge_conn_open(struct pge_health *h, int fd);

/* Stop c's watchers, close its socket and return its slot to the pool. */
void pge_conn_close(struct pge_conn *c);

#endif
