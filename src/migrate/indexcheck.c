/* INVALID indexes (interrupted CREATE INDEX CONCURRENTLY): the query that finds them, the fix. */
#include "pgentry/migrate/indexcheck.h"

#include <stdio.h>

/* The index, its table and its schema; system schemas and builds in progress left out. A NOT
 * EXISTS, not NOT IN: the progress view shows NULL for other roles' builds, and NOT IN with a
 * NULL would hide every index. */
#define SELECT_INVALID                                                                             \
    "SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', tn.nspname, t.relname) "        \
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = "          \
    "i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_namespace tn ON tn.oid = "   \
    "t.relnamespace WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', "                   \
    "'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
/* PostgreSQL 12 and later: builds in progress. */
#define NOT_BUILDING                                                                               \
    " AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid)"
#define NAMED_IN_1                                                                                 \
    " AND (strpos(lower($1), lower(c.relname)) > 0 OR strpos(lower($1), lower(t.relname)) > 0)"

const char *pge_indexcheck_sql(enum pge_indexcheck_scope scope, int server_version)
{
    int progress = server_version >= 120000;
    if (scope == PGE_INDEXCHECK_NAMED)
        return progress ? SELECT_INVALID NOT_BUILDING NAMED_IN_1 " ORDER BY 1"
                        : SELECT_INVALID NAMED_IN_1 " ORDER BY 1";
    return progress ? SELECT_INVALID NOT_BUILDING " ORDER BY 1" : SELECT_INVALID " ORDER BY 1";
}

const char *pge_indexcheck_fix(char *buf, size_t size, const char *index)
{
    snprintf(buf, size, "DROP INDEX CONCURRENTLY %s;", index);
    return buf;
}
