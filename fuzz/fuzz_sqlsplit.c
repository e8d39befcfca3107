/* libFuzzer target for the SQL splitter: arbitrary bytes, invariants checked with abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/sqlsplit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RESPLIT 16

static void require(int ok)
{
    if (!ok)
        abort();
}

/* A statement split on its own is one statement, the whole of it: nothing before its end
 * depends on what follows it. The copy is exactly its size, so over-reads are caught. */
static void resplit(const char *sql, const struct pge_sqlsplit_stmt *st)
{
    char *copy = malloc(st->length);
    struct pge_sqlsplit s;
    struct pge_sqlsplit_stmt again;

    require(copy != NULL);
    memcpy(copy, sql + st->offset, st->length);
    pge_sqlsplit_init(&s, copy, st->length);
    require(pge_sqlsplit_next(&s, &again) == PGE_SQLSPLIT_STMT);
    require(again.offset == 0 && again.length == st->length && again.line == 1);
    require(pge_sqlsplit_next(&s, &again) == PGE_SQLSPLIT_END);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    struct pge_sqlsplit s;
    struct pge_sqlsplit_stmt st;
    size_t prev_end = 0, calls = 0;
    int first = 1;
    enum pge_sqlsplit_result r;

    pge_sqlsplit_init(&s, sql, size);
    while ((r = pge_sqlsplit_next(&s, &st)) == PGE_SQLSPLIT_STMT) {
        /* Each statement takes at least one byte, so the loop is bounded by the input. */
        require(++calls <= size);
        require(st.length > 0 && st.offset + st.length <= size);
        require(first || st.offset >= prev_end);
        require(st.line == pge_sqlsplit_line_at(sql, size, st.offset));
        require(s.pos >= st.offset + st.length && s.pos <= size);
        require(pge_sqlsplit_what(&s) == NULL);
        if (calls <= MAX_RESPLIT)
            resplit(sql, &st);
        prev_end = st.offset + st.length;
        first = 0;
    }
    if (r == PGE_SQLSPLIT_UNTERMINATED) {
        struct pge_sqlsplit_stmt again;
        require(pge_sqlsplit_what(&s) != NULL);
        require(st.length > 0 && st.offset + st.length <= size && st.offset >= prev_end);
        require(st.line == pge_sqlsplit_line_at(sql, size, st.offset));
        require(pge_sqlsplit_next(&s, &again) == PGE_SQLSPLIT_UNTERMINATED);
        require(again.offset == st.offset && again.length == st.length);
    } else {
        require(r == PGE_SQLSPLIT_END && pge_sqlsplit_what(&s) == NULL);
        require(pge_sqlsplit_next(&s, &st) == PGE_SQLSPLIT_END);
    }
    require(pge_sqlsplit_char_offset(sql, size, size + 1) == size);
    require(pge_sqlsplit_char_offset(sql, size, 1) == 0);
    return 0;
}
