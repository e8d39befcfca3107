/* Health endpoint: a bounded, non-blocking HTTP/1.1 server on the libev loop. */
#ifndef PGENTRY_HEALTH_HEALTH_H
#define PGENTRY_HEALTH_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "pgentry/common/runstate.h"

struct ev_loop;

#define PGE_HEALTH_MAX_CONNS_DEFAULT 128
#define PGE_HEALTH_IDLE_TIMEOUT_MS   10000 /* keep-alive connection with nothing to do */
#define PGE_HEALTH_HEADER_TIMEOUT_MS 5000  /* first byte of a request → its complete head */
#define PGE_HEALTH_LINGER_TIMEOUT_MS 2000  /* after our last response, before close() */
#define PGE_HEALTH_RESPONSE_MAX      16384 /* largest response, head included */

/* Tuning, mostly for tests. A zero field means its default. */
struct pge_health_opts {
    unsigned max_conns;        /* open connections; a new one evicts the least recently active */
    int64_t idle_timeout_ms;   /* also bounds how long a response may take to be read */
    int64_t header_timeout_ms; /* slow clients (slowloris) are dropped after this */
    int64_t linger_timeout_ms;
};

/* The server. Opaque; one per loop is the intended use. */
struct pge_health;

/* Listen on addr ("HOST:PORT": numeric IPv4, "[IPv6]", "localhost" meaning 127.0.0.1, or an
 * empty host meaning 0.0.0.0 — never a DNS lookup) and serve /livez, /readyz, /healthz,
 * /status and /metrics from *state on loop, starting now: the listening socket is open and
 * its watcher started when this returns. "[::]" also accepts IPv4 (IPV6_V6ONLY off).
 * state is borrowed: it must outlive the server; the server only reads it, when a request
 * arrives. Every socket is non-blocking and close-on-exec (a supervised child inherits none).
 * Returns the server, or NULL with errno kept (EADDRINUSE: the address is taken; EINVAL: a
 * malformed or non-numeric address) and a one-line message in err. Never exits, never logs
 * per request. */
struct pge_health *pge_health_new(struct ev_loop *loop, const char *addr,
                                  struct pge_runstate *state, char *err, size_t errsize);

/* pge_health_new() with tuning; opts may be NULL. */
struct pge_health *pge_health_new_opts(struct ev_loop *loop, const char *addr,
                                       struct pge_runstate *state,
                                       const struct pge_health_opts *opts, char *err,
                                       size_t errsize);

/* Stop every watcher, close every socket and release the server. NULL-safe. Must be called on
 * the loop's thread, not from inside one of the server's own callbacks. */
void pge_health_free(struct pge_health *h);

/* Whether readiness holds for this state: phase running, application running and healthy, no
 * stop signal. What /readyz and /healthz answer 200 for. Pure. */
int pge_health_ready(const struct pge_runstate *st);

#endif
