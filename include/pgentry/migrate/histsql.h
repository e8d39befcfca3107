/* SQL text of the migration engine: quoting, the history table, its rows, the lock key. Pure. */
#ifndef PGENTRY_MIGRATE_HISTSQL_H
#define PGENTRY_MIGRATE_HISTSQL_H

#include <stddef.h>
#include <stdint.h>

/* A growable string. Plain data; zero-initialise, release with pge_histsql_buf_free(). After an
 * allocation failure every append is a no-op and failed is set. */
struct pge_histsql_buf {
    char *s;
    size_t len;
    size_t cap;
    int failed;
};

/* Append n bytes of s (NUL-terminated result). On allocation failure b->failed is set and
 * nothing more is appended. */
void pge_histsql_append(struct pge_histsql_buf *b, const char *s, size_t n);

/* Append printf-style text; same failure rule. */
void pge_histsql_appendf(struct pge_histsql_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Free the text and zero the buffer (ready for reuse). */
void pge_histsql_buf_free(struct pge_histsql_buf *b);

/* Split "table" or "schema.table" (no quoting in the input: names are taken literally) and
 * quote each part as an identifier: "schema"."table". *schema_len is 0 when unqualified.
 * Returns a malloc'd string, or NULL for an empty part, a NUL-free check failure or a name
 * longer than 63 bytes (PostgreSQL would truncate it silently). */
char *pge_histsql_quote_table(const char *table, size_t *schema_len);

/* Append s as a string literal ('it''s'), standard_conforming_strings on. */
void pge_histsql_literal(struct pge_histsql_buf *b, const char *s);

/* CREATE TABLE IF NOT EXISTS for the history table (docs/migrations.md). */
void pge_histsql_create_table(struct pge_histsql_buf *b, const char *qtable);

/* The history row of a migration. duration_ms < 0: computed by the server from the
 * transaction start (exact inside the migration's own transaction). */
void pge_histsql_insert(struct pge_histsql_buf *b, const char *qtable, int64_t version,
                        const char *name, const char *checksum, int64_t duration_ms,
                        const char *applied_by);

/* CREATE TABLE IF NOT EXISTS for the repeatable migrations' table (qrtable, quoted): name text
 * primary key, checksum, applied_at, duration_ms, applied_by. */
void pge_histsql_create_repeatable_table(struct pge_histsql_buf *b, const char *qrtable);

/* The record of a repeatable migration: insert, or update the row of that name. duration_ms
 * as for pge_histsql_insert(). */
void pge_histsql_upsert_repeatable(struct pge_histsql_buf *b, const char *qrtable, const char *name,
                                   const char *checksum, int64_t duration_ms,
                                   const char *applied_by);

/* DELETE of a migration's history row (a downgrade, or stamp below it). */
void pge_histsql_delete(struct pge_histsql_buf *b, const char *qtable, int64_t version);

/* SET [LOCAL] lock_timeout = 'Nms'. */
void pge_histsql_lock_timeout(struct pge_histsql_buf *b, int64_t ms, int local);

/* Whether stmt[0..len) (a statement as the splitter returns it: starting at its first keyword)
 * ends or starts a transaction: BEGIN, START, COMMIT, END, ABORT, ROLLBACK (but not ROLLBACK TO
 * a savepoint). Such a statement inside a migration that pgentry wraps in its own transaction
 * would commit part of it. Case-insensitive. Pure. */
int pge_histsql_is_transaction_control(const char *stmt, size_t len);

/* The advisory-lock key for a history table: a stable 64-bit hash of database, schema and
 * table, the same in every pgentry (and the same for --migrate-cmd). */
int64_t pge_histsql_lock_key(const char *database, const char *schema, const char *table);

#endif
