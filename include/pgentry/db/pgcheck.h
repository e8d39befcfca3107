/* What a fresh connection carries and must prove: its name, its notices, a writable primary. */
#ifndef PGENTRY_DB_PGCHECK_H
#define PGENTRY_DB_PGCHECK_H

#include <libpq-fe.h>

#include "pgentry/db/pgconn.h"

/* "pgentry@<hostname>:<pid>", the fallback_application_name of our connections:
 * pg_stat_activity then tells which replica (and which process in it) holds the migration
 * lock. Static storage, filled on the first call (loop thread only). */
const char *pge_pgcheck_application_name(void);

/* Send conn's NOTICE messages to the debug log instead of straight to stderr. */
void pge_pgcheck_quiet_notices(PGconn *conn);

/* The query proving that conn accepts work and may be written to, chosen from what the server
 * reported at connection start. Static string. */
const char *pge_pgcheck_sql(const PGconn *conn);

/* Judge the answer res to that query (borrowed: the caller still PQclear()s it). Returns 0
 * when conn is the kind of server target asks for (PREFER_STANDBY is judged as STANDBY), else
 * -1 with err filled: a failed query classified by its SQLSTATE, or a server of the wrong kind
 * (retry; outcome PGE_ATTEMPT_STANDBY for a read-only server where a writable one is wanted). */
int pge_pgcheck_judge(const PGconn *conn, const PGresult *res, enum pge_conninfo_target target,
                      struct pge_pgconn_error *err);

#endif
