/* A throwaway PgBouncer in front of a test's PostgreSQL server, in session or transaction mode. */
#ifndef PGT_PGBOUNCER_H
#define PGT_PGBOUNCER_H

#include <sys/types.h>

#include "pgt.h"

struct pgt_bouncer {
    char dir[256]; /* config, auth file and log */
    int port;      /* on 127.0.0.1 */
    pid_t pid;
};

/* 1 when the pgbouncer binary is installed (tests skip otherwise). */
int pgt_bouncer_available(void);

/* Start PgBouncer on a free port in front of pg (over its socket) with pool_mode mode
 * ("session" or "transaction"), auth_type trust and pool_size server connections per database
 * (small, to force sharing). Waits until it accepts connections; aborts the test on failure.
 * Runs as the postgres user when root; it dies with the calling process. */
void pgt_bouncer_start(struct pgt_bouncer *b, const struct pgt_pg *pg, const char *mode,
                       int pool_size);

/* postgres://postgres:PASSWORD@127.0.0.1:PORT/db through the bouncer into buf. */
const char *pgt_bouncer_url(const struct pgt_bouncer *b, const char *db, char *buf, size_t size);

/* Stop it (SIGTERM, then reap). */
void pgt_bouncer_stop(struct pgt_bouncer *b);

#endif
