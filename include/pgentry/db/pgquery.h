/* Run one query at a time on a non-blocking PGconn, driven by libev; never blocks the loop. */
#ifndef PGENTRY_DB_PGQUERY_H
#define PGENTRY_DB_PGQUERY_H

#include <ev.h>
#include <libpq-fe.h>

struct pge_pgquery;

/* Called once per query with its result: the first error result if any statement failed,
 * else the last result. Ownership of res passes to the callback (PQclear it). res is NULL
 * when the connection broke: PQerrorMessage() of the connection says why. The callback may
 * send the next query or free the runner. */
typedef void (*pge_pgquery_cb)(void *arg, PGresult *res);

/* A runner borrowing conn (the caller still PQfinish()es it, after pge_pgquery_free()). The
 * connection is switched to non-blocking mode. NULL when out of memory. */
struct pge_pgquery *pge_pgquery_new(struct ev_loop *loop, PGconn *conn);

/* Send sql. nparams < 0 uses the simple protocol (several statements allowed, no
 * parameters); otherwise the extended protocol with text parameters. Returns 0, or -1 when the
 * query could not be sent (a query is already running, or the connection is broken). */
int pge_pgquery_send(struct pge_pgquery *q, const char *sql, int nparams, const char *const *params,
                     pge_pgquery_cb cb, void *arg);

/* Whether a query is in flight. */
int pge_pgquery_busy(const struct pge_pgquery *q);

/* Stop watching; a query in flight gets no callback (its results are discarded by libpq when
 * the connection is finished). NULL-safe. */
void pge_pgquery_free(struct pge_pgquery *q);

#endif
