/* SQL text of the migration engine: quoting, the history table, its rows, the lock key. Pure. */
#include "pgentry/migrate/histsql.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMEDATALEN_MAX 63

void pge_histsql_append(struct pge_histsql_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void pge_histsql_appendf(struct pge_histsql_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        pge_histsql_append(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pge_histsql_append(b, big, (size_t)n);
    free(big);
}

void pge_histsql_buf_free(struct pge_histsql_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

static void quote_ident(struct pge_histsql_buf *b, const char *s, size_t n)
{
    pge_histsql_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            pge_histsql_append(b, "\"", 1);
        pge_histsql_append(b, s + i, 1);
    }
    pge_histsql_append(b, "\"", 1);
}

char *pge_histsql_quote_table(const char *table, size_t *schema_len)
{
    struct pge_histsql_buf b = {0};
    const char *dot = strchr(table, '.');
    size_t slen = dot ? (size_t)(dot - table) : 0;
    const char *name = dot ? dot + 1 : table;
    size_t nlen = strlen(name);

    if ((dot && slen == 0) || nlen == 0 || strchr(name, '.') || slen > NAMEDATALEN_MAX ||
        nlen > NAMEDATALEN_MAX)
        return NULL;
    if (dot) {
        quote_ident(&b, table, slen);
        pge_histsql_append(&b, ".", 1);
    }
    quote_ident(&b, name, nlen);
    if (b.failed) {
        pge_histsql_buf_free(&b);
        return NULL;
    }
    if (schema_len)
        *schema_len = slen;
    return b.s;
}

void pge_histsql_literal(struct pge_histsql_buf *b, const char *s)
{
    pge_histsql_append(b, "'", 1);
    for (; *s; s++) {
        if (*s == '\'')
            pge_histsql_append(b, "'", 1);
        pge_histsql_append(b, s, 1);
    }
    pge_histsql_append(b, "'", 1);
}

void pge_histsql_create_table(struct pge_histsql_buf *b, const char *qtable)
{
    pge_histsql_appendf(b,
                        "CREATE TABLE IF NOT EXISTS %s (\n"
                        "    version bigint PRIMARY KEY,\n"
                        "    name text NOT NULL,\n"
                        "    checksum text NOT NULL,\n"
                        "    applied_at timestamptz NOT NULL DEFAULT now(),\n"
                        "    duration_ms integer NOT NULL,\n"
                        "    applied_by text\n"
                        ")",
                        qtable);
}

/* The values every record ends with: checksum, duration (< 0: computed by the server from the
 * transaction start) and who applied it. */
static void record_values(struct pge_histsql_buf *b, const char *checksum, int64_t duration_ms,
                          const char *applied_by)
{
    pge_histsql_literal(b, checksum);
    if (duration_ms < 0)
        pge_histsql_appendf(b, ", %s",
                            "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer");
    else
        pge_histsql_appendf(b, ", %lld", (long long)duration_ms);
    pge_histsql_append(b, ", ", 2);
    pge_histsql_literal(b, applied_by);
}

void pge_histsql_insert(struct pge_histsql_buf *b, const char *qtable, int64_t version,
                        const char *name, const char *checksum, int64_t duration_ms,
                        const char *applied_by)
{
    pge_histsql_appendf(b,
                        "INSERT INTO %s (version, name, checksum, duration_ms, applied_by) "
                        "VALUES (%lld, ",
                        qtable, (long long)version);
    pge_histsql_literal(b, name);
    pge_histsql_append(b, ", ", 2);
    record_values(b, checksum, duration_ms, applied_by);
    pge_histsql_append(b, ")", 1);
}

void pge_histsql_row_params(struct pge_histsql_row *r, int64_t version, const char *name,
                            const char *checksum, int64_t duration_ms, const char *applied_by)
{
    snprintf(r->version, sizeof r->version, "%lld", (long long)version);
    snprintf(r->duration, sizeof r->duration, "%lld", (long long)duration_ms);
    r->values[0] = r->version;
    r->values[1] = name;
    r->values[2] = checksum;
    r->values[3] = duration_ms < 0 ? NULL : r->duration;
    r->values[4] = applied_by;
}

void pge_histsql_insert_sql(struct pge_histsql_buf *b, const char *qtable)
{
    pge_histsql_appendf(b,
                        "INSERT INTO %s (version, name, checksum, duration_ms, applied_by) "
                        "VALUES ($1::bigint, $2::text, $3::text, coalesce($4::integer, "
                        "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer), "
                        "$5::text)",
                        qtable);
}

void pge_histsql_delete_sql(struct pge_histsql_buf *b, const char *qtable)
{
    pge_histsql_appendf(b, "DELETE FROM %s WHERE version = $1::bigint", qtable);
}

void pge_histsql_create_repeatable_table(struct pge_histsql_buf *b, const char *qrtable)
{
    pge_histsql_appendf(b,
                        "CREATE TABLE IF NOT EXISTS %s (\n"
                        "    name text PRIMARY KEY,\n"
                        "    checksum text NOT NULL,\n"
                        "    applied_at timestamptz NOT NULL DEFAULT now(),\n"
                        "    duration_ms integer NOT NULL,\n"
                        "    applied_by text\n"
                        ")",
                        qrtable);
}

void pge_histsql_upsert_repeatable(struct pge_histsql_buf *b, const char *qrtable, const char *name,
                                   const char *checksum, int64_t duration_ms,
                                   const char *applied_by)
{
    pge_histsql_appendf(b, "INSERT INTO %s (name, checksum, duration_ms, applied_by) VALUES (",
                        qrtable);
    pge_histsql_literal(b, name);
    pge_histsql_append(b, ", ", 2);
    record_values(b, checksum, duration_ms, applied_by);
    pge_histsql_appendf(b, ") ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, "
                           "applied_at = now(), duration_ms = EXCLUDED.duration_ms, "
                           "applied_by = EXCLUDED.applied_by");
}

void pge_histsql_upsert_repeatable_sql(struct pge_histsql_buf *b, const char *qrtable)
{
    pge_histsql_appendf(b,
                        "INSERT INTO %s (name, checksum, duration_ms, applied_by) "
                        "VALUES ($1::text, $2::text, coalesce($3::integer, "
                        "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer), "
                        "$4::text) ON CONFLICT (name) DO UPDATE SET checksum = "
                        "EXCLUDED.checksum, applied_at = now(), duration_ms = "
                        "EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by",
                        qrtable);
}

void pge_histsql_delete(struct pge_histsql_buf *b, const char *qtable, int64_t version)
{
    pge_histsql_appendf(b, "DELETE FROM %s WHERE version = %lld", qtable, (long long)version);
}

void pge_histsql_lock_timeout(struct pge_histsql_buf *b, int64_t ms, int local)
{
    pge_histsql_appendf(b, "SET %slock_timeout = '%lldms'", local ? "LOCAL " : "", (long long)ms);
}

void pge_histsql_timeouts(struct pge_histsql_buf *b, int64_t statement_ms, int64_t lock_ms,
                          int local)
{
    pge_histsql_appendf(b, "SET %sstatement_timeout = '%lldms'", local ? "LOCAL " : "",
                        (long long)statement_ms);
    if (lock_ms > 0) {
        pge_histsql_append(b, "; ", 2);
        pge_histsql_lock_timeout(b, lock_ms, local);
    }
}

void pge_histsql_reset_timeouts(struct pge_histsql_buf *b, int64_t lock_ms)
{
    pge_histsql_appendf(b, "RESET statement_timeout");
    if (lock_ms > 0)
        pge_histsql_appendf(b, "; RESET lock_timeout");
}

/* The next word of s[*i..len) (letters only), lowercased into w; skips blanks and comments. */
static size_t next_word(const char *s, size_t len, size_t *i, char *w, size_t size)
{
    size_t n = 0;
    for (;;) {
        while (*i < len && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
            (*i)++;
        if (*i + 1 < len && s[*i] == '-' && s[*i + 1] == '-') {
            while (*i < len && s[*i] != '\n')
                (*i)++;
            continue;
        }
        if (*i + 1 < len && s[*i] == '/' && s[*i + 1] == '*') {
            int depth = 0;
            while (*i + 1 < len) {
                if (s[*i] == '/' && s[*i + 1] == '*') {
                    depth++;
                    *i += 2;
                } else if (s[*i] == '*' && s[*i + 1] == '/') {
                    *i += 2;
                    if (--depth == 0)
                        break;
                } else {
                    (*i)++;
                }
            }
            continue;
        }
        break;
    }
    while (*i < len && ((s[*i] >= 'a' && s[*i] <= 'z') || (s[*i] >= 'A' && s[*i] <= 'Z'))) {
        if (n + 1 < size)
            w[n++] = (char)(s[*i] | 0x20);
        (*i)++;
    }
    w[n < size ? n : size - 1] = '\0';
    return n;
}

int pge_histsql_is_transaction_control(const char *stmt, size_t len)
{
    static const char *const words[] = {"begin", "start", "commit", "end", "abort"};
    char w[16];
    size_t i = 0;
    /* A longer word is cut to 15 letters and so never equals one of these. */
    if (next_word(stmt, len, &i, w, sizeof w) == 0)
        return 0;
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (strcmp(w, words[k]) == 0)
            return 1;
    if (strcmp(w, "rollback") == 0) {
        /* ROLLBACK TO [SAVEPOINT] x stays inside the transaction. */
        next_word(stmt, len, &i, w, sizeof w);
        return strcmp(w, "to") != 0;
    }
    return 0;
}

int64_t pge_histsql_lock_key(const char *database, const char *schema, const char *table)
{
    /* FNV-1a over "database\0schema\0table": stable across versions and machines. */
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *parts[3] = {database, schema, table};
    for (int i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
            h ^= *p;
            h *= 0x100000001b3ULL;
        }
        h ^= 0;
        h *= 0x100000001b3ULL;
    }
    return (int64_t)h;
}
