/* INVALID indexes (interrupted CREATE INDEX CONCURRENTLY): the query that finds them, the fix. */
#ifndef PGENTRY_MIGRATE_INDEXCHECK_H
#define PGENTRY_MIGRATE_INDEXCHECK_H

#include <stddef.h>

/* Which INVALID indexes the query lists. */
enum pge_indexcheck_scope {
    PGE_INDEXCHECK_ALL = 0, /* every schema but the system ones (status); no parameter */
    PGE_INDEXCHECK_NAMED,   /* only those a migration's text ($1) names, or whose table it
                               names (before a no-transaction migration is recorded) */
};

/* The SQL (a static string) listing INVALID indexes, two columns: the index and its table, each
 * "schema.name" quoted as PostgreSQL quotes identifiers, ordered by index. An index that is
 * being built right now (it is in pg_stat_progress_create_index, PostgreSQL 12+: server_version
 * as PQserverVersion() says) is not listed: a running CREATE INDEX CONCURRENTLY is invalid until
 * it ends. Only backends of the same role (or with pg_read_all_stats) show their index there: a
 * build by another role is listed. Pure. */
const char *pge_indexcheck_sql(enum pge_indexcheck_scope scope, int server_version);

/* The fix for index ("schema.name", as the query returns it) into buf:
 * "DROP INDEX CONCURRENTLY schema.name;" (truncated to size). Returns buf. Pure. */
const char *pge_indexcheck_fix(char *buf, size_t size, const char *index);

#endif
