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

/* A history row as query parameters, for pge_histsql_insert_sql() ($1 version, $2 name,
 * $3 checksum, $4 duration_ms, NULL when the server computes it, $5 applied_by) and
 * pge_histsql_delete_sql() ($1 only). values point into the struct itself and into the
 * caller's strings: fill it in place, do not copy it, keep the strings alive while it is used.
 * Sent as parameters, no value is ever parsed as SQL (whatever standard_conforming_strings
 * is). */
struct pge_histsql_row {
    char version[24];
    char duration[24];
    const char *values[5];
};

/* Fill r; duration_ms < 0 leaves $4 NULL (the server's transaction time is used). Pure. */
void pge_histsql_row_params(struct pge_histsql_row *r, int64_t version, const char *name,
                            const char *checksum, int64_t duration_ms, const char *applied_by);

/* INSERT of a history row taking the five parameters of struct pge_histsql_row. */
void pge_histsql_insert_sql(struct pge_histsql_buf *b, const char *qtable);

/* DELETE of a history row taking its version as $1. */
void pge_histsql_delete_sql(struct pge_histsql_buf *b, const char *qtable);

/* CREATE TABLE IF NOT EXISTS for the repeatable migrations' table (qrtable, quoted): name text
 * primary key, checksum, applied_at, duration_ms, applied_by. */
void pge_histsql_create_repeatable_table(struct pge_histsql_buf *b, const char *qrtable);

/* The record of a repeatable migration as printed SQL (--sql): insert, or update the row of
 * that name. duration_ms as for pge_histsql_insert(). */
void pge_histsql_upsert_repeatable(struct pge_histsql_buf *b, const char *qrtable, const char *name,
                                   const char *checksum, int64_t duration_ms,
                                   const char *applied_by);

/* The record of a repeatable migration, insert or update of the row of that name, taking four
 * parameters: $1 name, $2 checksum, $3 duration_ms (NULL: the server computes it), $4
 * applied_by, i.e. values + 1 of a struct pge_histsql_row (its version is not used). */
void pge_histsql_upsert_repeatable_sql(struct pge_histsql_buf *b, const char *qrtable);

/* DELETE of a migration's history row (a downgrade, or stamp below it). */
void pge_histsql_delete(struct pge_histsql_buf *b, const char *qtable, int64_t version);

/* SET [LOCAL] lock_timeout = 'Nms'. */
void pge_histsql_lock_timeout(struct pge_histsql_buf *b, int64_t ms, int local);

/* The settings a migration runs under: SET [LOCAL] statement_timeout = 'Nms' (always: 0 is
 * "no limit" and overrides a role's or server's timeout), then lock_timeout when lock_ms > 0.
 * LOCAL for a migration in a transaction; a session SET for a no-transaction one, undone by
 * pge_histsql_reset_timeouts() after its history row. */
void pge_histsql_timeouts(struct pge_histsql_buf *b, int64_t statement_ms, int64_t lock_ms,
                          int local);

/* RESET statement_timeout (and lock_timeout when lock_ms > 0): back to the session's default,
 * the role's or server's own setting, since pgentry sets them only around a migration. */
void pge_histsql_reset_timeouts(struct pge_histsql_buf *b, int64_t lock_ms);

/* Whether stmt[0..len) (a statement as the splitter returns it: starting at its first keyword)
 * ends or starts a transaction: BEGIN, START, COMMIT, END, ABORT, ROLLBACK (but not ROLLBACK TO
 * a savepoint). Such a statement inside a migration that pgentry wraps in its own transaction
 * would commit part of it. Case-insensitive. Pure. */
int pge_histsql_is_transaction_control(const char *stmt, size_t len);

/* The advisory-lock key for a history table: a stable 64-bit hash of database, schema and
 * table, the same in every pgentry (and the same for --migrate-cmd). */
int64_t pge_histsql_lock_key(const char *database, const char *schema, const char *table);

#endif
