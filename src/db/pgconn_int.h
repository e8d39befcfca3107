/* The state of one connection attempt, shared by pgconn.c (the attempt) and pghosts.c (where it
 * connects); private. */
#ifndef PGENTRY_DB_PGCONN_INT_H
#define PGENTRY_DB_PGCONN_INT_H

#include <ev.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "pgentry/db/conninfo.h"
#include "pgentry/db/password.h"
#include "pgentry/db/pgconn.h"
#include "pgentry/db/pgquery.h"
#include "pgentry/db/pgstart.h"
#include "pgentry/net/resolve.h"

#define ADDRS_PER_HOST 4

enum step { S_PASSWORD, S_RESOLVE, S_CONNECT, S_CHECK, S_DONE };

/* The addresses of one conninfo host that names a server: looked up on a thread. */
struct lookup {
    struct pge_pgconn *c;
    struct pge_resolve *r; /* while the lookup runs */
    int needed;            /* a name: not an IP literal, a hostaddr or a socket directory */
    char addr[ADDRS_PER_HOST][INET6_ADDRSTRLEN];
    size_t n;
    char error[160]; /* why the name did not resolve */
};

struct pge_pgconn {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    const struct pge_conninfo *params;
    enum step step;
    pge_pgconn_cb cb;
    void *arg;
    ev_timer timer;
    ev_timer kick;
    ev_io io;
    struct lookup lookups[PGE_CONNINFO_MAX_HOSTS];
    size_t resolving;          /* lookups still running */
    struct pge_pgstart *start; /* libpq starting the connection on a thread */
    PGconn *conn;
    struct pge_pgquery *q;
    int64_t timeout_ms;
    size_t host;      /* the host tried now: hosts are tried one at a time, in order */
    size_t nsteps;    /* hosts to try (1 when libpq picks the default or a service's host) */
    PGconn *fallback; /* prefer-standby: the first other server that accepted us */
    struct pge_pgconn_error worst; /* the failure that decides the attempt's verdict and pace */
    size_t nfailed;
    char failures[512];      /* "host:port: why; host:port: why" */
    struct pge_password *pw; /* --password-command running */
    int have_password;       /* from --password-file or --password-command: wins over the URL's */
    char password[PGE_PASSWORD_MAX + 2]; /* kept for every host of the attempt, wiped at its end */
};

/* Fail with a message; classification from the libpq text when conn_message is set. Ends the
 * attempt, or goes on with the next host. */
void pge_pgconn_fail(struct pge_pgconn *c, enum pge_attempt_outcome outcome, const char *message,
                     const char *conn_message);
/* PQconnectStartParams() has returned conn (NULL: out of memory): poll it from the loop. */
void pge_pgconn_started(struct pge_pgconn *c, PGconn *conn);

/* pghosts.c: look up every host's name (or let libpq do it on a thread for a service file),
 * then connect to the host tried now. */
void pge_pgconn_connect_now(struct pge_pgconn *c);
/* Connect to host c->host with what its lookup found, or wait for the lookup (step RESOLVE). */
void pge_pgconn_begin_connect(struct pge_pgconn *c);

#endif
