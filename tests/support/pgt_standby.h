/* A hot standby of a throwaway PostgreSQL server, for multi-host and failover tests. */
#ifndef PGT_STANDBY_H
#define PGT_STANDBY_H

#include "pgt.h"

/* pg_basebackup -R from the running primary into a new data directory, then start it as a
 * hot standby on a free port (its own socket directory). pg_ctl -w returns once it accepts
 * read-only connections. Aborts the test on failure; release with pgt_pg_destroy(). */
void pgt_pg_standby(const struct pgt_pg *primary, struct pgt_pg *standby);

/* pg_ctl promote -w: returns once the server has left recovery. */
void pgt_pg_promote(struct pgt_pg *pg);

#endif
