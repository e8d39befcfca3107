/* PQconnectStartParams() on a worker thread, for settings only libpq can resolve (a service). */
#ifndef PGENTRY_DB_PGSTART_H
#define PGENTRY_DB_PGSTART_H

#include <libpq-fe.h>

#include "pgentry/common/workqueue.h"
#include "pgentry/db/conninfo.h"

struct pge_pgstart;

/* Called on the loop with the connection libpq started (NULL when out of memory); the callee
 * owns it and polls it from there on. */
typedef void (*pge_pgstart_cb)(void *arg, PGconn *conn);

/* Start params' connection on a thread of off, with pgentry's application name and no
 * target_session_attrs of libpq's own; password (NULL: params' own) replaces any in params and
 * is copied, like every setting (the job may outlive the attempt and params). NULL (with a one-line
 * reason in err) when no job could be queued. */
struct pge_pgstart *pge_pgstart_submit(struct pge_workqueue *off, const struct pge_conninfo *params,
                                       const char *password, pge_pgstart_cb cb, void *arg,
                                       char *err, size_t errsize);

/* Abandon a job: no callback afterwards; a connection it still makes is finished. NULL-safe. */
void pge_pgstart_cancel(struct pge_pgstart *s);

#endif
