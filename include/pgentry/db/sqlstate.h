/* Classify PostgreSQL connection failures: retry, refused for good, or misconfigured. Pure. */
#ifndef PGENTRY_DB_SQLSTATE_H
#define PGENTRY_DB_SQLSTATE_H

#include <stddef.h>

#include "pgentry/common/outcome.h"

/* Pull the SQLSTATE out of a libpq error message produced with PQERRORS_VERBOSE, where the
 * server's part reads "FATAL:  28P01: password authentication failed…". Writes 5 characters
 * and a NUL to out and returns 0, or returns -1 when the message has no SQLSTATE (a client-side
 * failure such as "connection refused"). Pure. */
int pge_sqlstate_sqlstate(const char *message, char out[6]);

/* Classify a failure by what waiting on it leads to: PGE_OUT_NOT_READY for a transient one
 * (network, DNS, starting up, too many connections, standby: retry; the wait ends not ready
 * only if it lasts past the deadline), PGE_OUT_REFUSED when PostgreSQL refused us for good (bad
 * password, no pg_hba entry, no such database or role), PGE_OUT_CONFIG when our configuration
 * cannot work (e.g. SSL required but unsupported). sqlstate may be NULL or "" for client-side
 * failures; needs_password is PQconnectionNeedsPassword(). Sets *outcome (how the attempt went)
 * when outcome is not NULL. Pure. */
enum pge_outcome_kind pge_sqlstate_classify(const char *sqlstate, const char *message,
                                            int needs_password, enum pge_attempt_outcome *outcome);

/* What to do about a failure that will not go away by waiting, one line, e.g. "check the user
 * and password in DATABASE_URL" (the server's own message says what happened). Static. */
const char *pge_sqlstate_explain(const char *sqlstate, int needs_password);

/* The last line of a libpq message, without the "connection to server … failed: " prefix,
 * the severity and the SQLSTATE, trimmed: what a human wants in one log field. Pure. */
const char *pge_sqlstate_short(const char *message, char *buf, size_t size);

#endif
