/* --create-database: CREATE DATABASE through a maintenance database, on the loop. */
#ifndef PGENTRY_DB_CREATEDB_H
#define PGENTRY_DB_CREATEDB_H

#include <ev.h>
#include <stdint.h>

#include "pgentry/common/workqueue.h"
#include "pgentry/db/conninfo.h"

enum pge_createdb_result {
    PGE_CREATEDB_CREATED = 0, /* we created it */
    PGE_CREATEDB_EXISTS,      /* 42P04: somebody else did (replicas racing) */
    PGE_CREATEDB_RETRY,       /* the maintenance database could not be reached yet */
    PGE_CREATEDB_REFUSED,     /* for good: no CREATEDB privilege, no maintenance database… */
};

struct pge_createdb;

/* Called once (never from inside pge_createdb_start) with the result, the SQLSTATE ("" when
 * none) and a one-line message free of secrets. The callback may free the creator. */
typedef void (*pge_createdb_cb)(void *arg, enum pge_createdb_result r, const char *sqlstate,
                                const char *message);

/* The database params name: their dbname, else PGDATABASE, else the user (libpq's defaults).
 * NULL when none is known. Points into params or the environment. */
const char *pge_createdb_name(const struct pge_conninfo *params);

/* Connect with params' host and credentials to the "postgres" database (else "template1", when
 * postgres does not exist), each attempt bounded by timeout_ms, and run CREATE DATABASE with
 * the name quoted by PQescapeIdentifier. params and off must outlive the creator. NULL when
 * out of memory or when no name is known (pge_createdb_name). */
struct pge_createdb *pge_createdb_start(struct ev_loop *loop, struct pge_workqueue *off,
                                        const struct pge_conninfo *params, int64_t timeout_ms,
                                        pge_createdb_cb cb, void *arg);

/* Abandon or release; no callback afterwards. NULL-safe. */
void pge_createdb_free(struct pge_createdb *c);

#endif
