/* SQL script splitter: cuts a PostgreSQL script into statements exactly where psql would. */
#ifndef PGENTRY_MIGRATE_SQLSPLIT_H
#define PGENTRY_MIGRATE_SQLSPLIT_H

#include <stddef.h>

/* One statement of the script, as a span of the caller's buffer (nothing is copied). */
struct pge_sqlsplit_stmt {
    size_t offset; /* first byte: the first character that is not whitespace or a comment */
    size_t length; /* up to and including the terminating ';' when there is one */
    unsigned line; /* 1-based line of offset */
};

/* Result of pge_sqlsplit_next(). */
enum pge_sqlsplit_result {
    PGE_SQLSPLIT_STMT = 0,     /* *out is the next statement */
    PGE_SQLSPLIT_END,          /* no statement left */
    PGE_SQLSPLIT_UNTERMINATED, /* a quote, dollar body or comment is still open at the end */
};

/* Plain data, owned by the caller; it points into the caller's script, which must outlive it.
 * sql, len, pos and line may be read; the rest is private. */
struct pge_sqlsplit {
    const char *sql;
    size_t len;
    size_t pos;    /* bytes consumed so far */
    unsigned line; /* 1-based line of pos */
    const char *what;
    struct pge_sqlsplit_stmt open;
};

/* Start splitting sql[0..len). The script may contain NUL bytes; nothing past len is read.
 * sql may be NULL when len is 0. */
void pge_sqlsplit_init(struct pge_sqlsplit *s, const char *sql, size_t len);

/* The next statement. Rules are PostgreSQL's lexer with standard_conforming_strings on
 * (the default since 9.1) and psql's statement boundaries:
 *  - ';' ends a statement only outside quotes, comments and parentheses, and, in a statement
 *    that starts CREATE [OR REPLACE] FUNCTION|PROCEDURE, outside BEGIN ... END (and CASE ...
 *    END within it), which is how psql keeps a BEGIN ATOMIC body whole;
 *  - '...' (backslash is an ordinary character), E'...' (backslash escapes), N'', B'', X'',
 *    U&'...', "ident", U&"ident", $$...$$ and $tag$...$tag$ ($1 is a parameter and a$b an
 *    identifier), -- comments and nested block comments are opaque;
 *  - 'a' <newline> 'b' is one literal, and E'a' <newline> '\';' keeps E's escapes, as the
 *    server lexes it. psql reads line by line and misses this continuation, so it would cut
 *    that statement short and the server would reject the piece; here it runs;
 *  - empty statements (";;", only whitespace or comments) are skipped; a last statement
 *    without ';' is still returned and then ends at its last token (trailing comments are
 *    not part of it), even with a parenthesis or BEGIN left open: psql sends it too, and the
 *    server's syntax error is more precise than ours would be;
 *  - psql's backslash meta-commands are not SQL and get no special treatment.
 * On PGE_SQLSPLIT_UNTERMINATED, *out covers the opening delimiter of the construct left open
 * (e.g. "$body$", "E'", the slash-star of a comment) and its line, and pge_sqlsplit_what() names
 * it; every later call repeats that answer, as every call after PGE_SQLSPLIT_END repeats END.
 * Linear time, no allocation, reentrant. */
enum pge_sqlsplit_result pge_sqlsplit_next(struct pge_sqlsplit *s, struct pge_sqlsplit_stmt *out);

/* After PGE_SQLSPLIT_UNTERMINATED: what was left open, as a static noun phrase such as
 * "dollar-quoted string" or "block comment"; NULL otherwise. */
const char *pge_sqlsplit_what(const struct pge_sqlsplit *s);

/* The 1-based line of byte offset in sql[0..len) (offset past len counts as len): turns
 * PostgreSQL's error position inside a statement into a line of the file. "\n", "\r\n" and a
 * lone "\r" each end a line, the same counting pge_sqlsplit_next() uses. Saturates at
 * UINT_MAX. Pure. */
unsigned pge_sqlsplit_line_at(const char *sql, size_t len, size_t offset);

/* The byte offset in stmt[0..len) of PostgreSQL's error position (PG_DIAG_STATEMENT_POSITION),
 * which counts characters from 1, not bytes: with client_encoding UTF8, every byte that is not
 * a UTF-8 continuation byte starts a character. Positions past the end give len, 0 gives 0.
 * Pure. */
size_t pge_sqlsplit_char_offset(const char *stmt, size_t len, unsigned long position);

/* The 1-based line of sql[0..len) holding PostgreSQL's error position (1-based characters, as
 * in PG_DIAG_STATEMENT_POSITION) inside the statement sent as sql[stmt_offset..+stmt_len):
 * pge_sqlsplit_char_offset() then pge_sqlsplit_line_at(). Pure. */
unsigned pge_sqlsplit_position_line(const char *sql, size_t len, size_t stmt_offset,
                                    size_t stmt_len, unsigned long position);

#endif
