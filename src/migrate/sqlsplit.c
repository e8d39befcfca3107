/* SQL script splitter: cuts a PostgreSQL script into statements exactly where psql would. */
#include "pgentry/migrate/sqlsplit.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Statement-level state of psql's lexer. It is all zero at every statement boundary, so it
 * lives for one call of pge_sqlsplit_next() only. */
struct stmt {
    size_t paren;    /* '(' depth: psql never ends a statement inside parentheses */
    size_t begin;    /* BEGIN/CASE ... END depth inside CREATE FUNCTION/PROCEDURE */
    unsigned nwords; /* identifiers seen so far, counted up to 4 */
    char words[4];   /* first letter of each of the first four, if one of psql's lead words */
};

/* What was left open at the end of the input, for PGE_SQLSPLIT_UNTERMINATED. */
struct unclosed {
    const char *what;
    size_t offset; /* opening delimiter */
    size_t length;
};

/* Character classes of PostgreSQL's scanner. Bytes >= 0x80 are letters, so any UTF-8
 * character may appear in identifiers and dollar-quote tags. */
static int is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A $tag$ is made of identifier characters, except '$' itself. */
static int is_tag_char(unsigned char c)
{
    return is_letter(c) || is_digit(c);
}

/* '$' continues an identifier: a$b is one word and starts no dollar quote. */
static int is_ident_char(unsigned char c)
{
    return is_tag_char(c) || c == '$';
}

/* PostgreSQL's whitespace; notably not '\v'. */
static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int is_newline(unsigned char c)
{
    return c == '\n' || c == '\r';
}

static int starts(const unsigned char *p, size_t len, size_t i, char a, char b)
{
    return i + 1 < len && p[i] == a && p[i + 1] == b;
}

static size_t skip_while(const unsigned char *p, size_t len, size_t i, int (*cls)(unsigned char))
{
    while (i < len && cls(p[i]))
        i++;
    return i;
}

static int fail(struct unclosed *u, const char *what, size_t offset, size_t length)
{
    u->what = what;
    u->offset = offset;
    u->length = length;
    return -1;
}

/* "--" runs to the end of the line; the newline itself is whitespace, left to the caller. */
static size_t line_comment_end(const unsigned char *p, size_t len, size_t i)
{
    for (i += 2; i < len && !is_newline(p[i]); i++)
        ;
    return i;
}

/* Block comments nest in PostgreSQL, unlike in C. A left-to-right scan taking "/" "*" and
 * "*" "/" pairs greedily matches the server's lexer, runs of '*' included. */
static int skip_block_comment(const unsigned char *p, size_t len, size_t *ip, struct unclosed *u)
{
    size_t depth = 0;
    size_t i = *ip + 2;

    while (i + 1 < len) {
        if (p[i] == '/' && p[i + 1] == '*') {
            depth++;
            i += 2;
        } else if (p[i] == '*' && p[i + 1] == '/') {
            i += 2;
            if (depth-- == 0) {
                *ip = i;
                return 0;
            }
        } else {
            i++;
        }
    }
    return fail(u, "block comment", *ip, 2);
}

/* Whitespace and comments between tokens. */
static int skip_blanks(const unsigned char *p, size_t len, size_t *ip, struct unclosed *u)
{
    size_t i = *ip;

    while (i < len) {
        if (is_space(p[i]))
            i++;
        else if (starts(p, len, i, '-', '-'))
            i = line_comment_end(p, len, i);
        else if (starts(p, len, i, '/', '*')) {
            if (skip_block_comment(p, len, &i, u) < 0)
                return -1;
        } else
            break;
    }
    *ip = i;
    return 0;
}

/* After a closing quote, PostgreSQL glues 'a' <newline> 'b' into one literal when only
 * whitespace and -- comments, with at least one newline, separate the two. Returns the index of
 * the quote that continues the literal, or 0 when it ends here. */
static size_t continuation(const unsigned char *p, size_t len, size_t i)
{
    int newline = 0;

    while (i < len) {
        if (is_newline(p[i])) {
            newline = 1;
            i++;
        } else if (is_space(p[i])) {
            i++;
        } else if (starts(p, len, i, '-', '-')) {
            i = line_comment_end(p, len, i);
        } else {
            break;
        }
    }
    return newline && i < len && p[i] == '\'' ? i : 0;
}

/* A literal whose opening quote is at open (a prefix such as E or U& starts at tok). With
 * backslash escapes (E'') a backslash hides the next byte, quote included; otherwise only ''
 * is a quote. The continuation keeps the first segment's escaping, as the server's lexer does
 * (psql's misses continuations: see the header). */
static int scan_string(const unsigned char *p, size_t len, size_t *ip, size_t open, int escapes,
                       const char *what, struct unclosed *u)
{
    size_t tok = *ip;
    size_t i = open + 1;

    while (i < len) {
        if (escapes && p[i] == '\\') {
            i = i + 1 < len ? i + 2 : len;
        } else if (p[i] != '\'') {
            i++;
        } else if (i + 1 < len && p[i + 1] == '\'') {
            i += 2;
        } else {
            size_t next = continuation(p, len, i + 1);
            if (next == 0) {
                *ip = i + 1;
                return 0;
            }
            i = next + 1;
        }
    }
    return fail(u, what, tok, open + 1 - tok);
}

/* "ident" or U&"ident"; "" is a double quote inside. */
static int scan_quoted_ident(const unsigned char *p, size_t len, size_t *ip, size_t open,
                             struct unclosed *u)
{
    size_t i = open + 1;

    while (i < len) {
        const unsigned char *q = memchr(p + i, '"', len - i);
        if (!q)
            break;
        i = (size_t)(q - p) + 1;
        if (i < len && p[i] == '"') {
            i++;
            continue;
        }
        *ip = i;
        return 0;
    }
    return fail(u, "quoted identifier", *ip, open + 1 - *ip);
}

/* '$' at the start of a token: $$ or $tag$ opens a body that runs to the next identical
 * delimiter (case matters); anything else is a lone '$', and what follows is scanned again:
 * the letters of a failed tag as an identifier, the digits of $1 as a number, as the server's
 * lexer does. */
static int scan_dollar(const unsigned char *p, size_t len, size_t *ip, struct unclosed *u)
{
    size_t open = *ip;
    size_t i = open + 1;
    size_t delim;

    if (i < len && is_letter(p[i]))
        i = skip_while(p, len, i, is_tag_char);
    if (i >= len || p[i] != '$') {
        *ip = open + 1;
        return 0;
    }
    delim = i + 1 - open;
    /* Every '$' of the body may start the closing delimiter; tag characters are never '$',
     * so a failed comparison stops before the next candidate and the search stays linear. */
    for (i++; i < len;) {
        const unsigned char *q = memchr(p + i, '$', len - i);
        if (!q)
            break;
        i = (size_t)(q - p);
        if (len - i >= delim && memcmp(p + i, p + open, delim) == 0) {
            *ip = i + delim;
            return 0;
        }
        i++;
    }
    return fail(u, "dollar-quoted string", open, delim);
}

static int word_is(const unsigned char *w, size_t n, const char *kw)
{
    size_t i;

    for (i = 0; i < n && kw[i]; i++) {
        unsigned char c = w[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)kw[i])
            return 0;
    }
    return i == n && kw[i] == '\0';
}

/* psql's heuristic for SQL-standard bodies: the statement's first identifiers spell
 * CREATE [OR REPLACE] FUNCTION|PROCEDURE. */
static int is_routine(const struct stmt *st)
{
    const char *w = st->words;
    return w[0] == 'c' && (w[1] == 'f' || w[1] == 'p' ||
                           (w[1] == 'o' && w[2] == 'r' && (w[3] == 'f' || w[3] == 'p')));
}

/* An unquoted identifier or keyword of the statement. BEGIN ... END in a routine is counted
 * only outside parentheses, and CASE only within BEGIN, so that a CASE's END is not taken for
 * the body's; this is psql's rule, quirks included, so both split the same file alike. */
static void note_word(struct stmt *st, const unsigned char *w, size_t n)
{
    static const char *const lead[] = {"create", "function", "procedure", "or", "replace"};

    if (st->nwords < sizeof st->words) {
        for (size_t k = 0; k < sizeof lead / sizeof lead[0]; k++)
            if (word_is(w, n, lead[k]))
                st->words[st->nwords] = lead[k][0];
        st->nwords++;
    }
    if (!is_routine(st) || st->paren > 0)
        return;
    if (word_is(w, n, "begin"))
        st->begin++;
    else if (word_is(w, n, "case") && st->begin > 0)
        st->begin++;
    else if (word_is(w, n, "end") && st->begin > 0)
        st->begin--;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* A token starting with a letter: a prefixed literal (E'', B'', X'', N'', U&'', U&""),
 * or an identifier. */
static int scan_word(const unsigned char *p, size_t len, size_t *ip, struct stmt *st,
                     struct unclosed *u)
{
    size_t i = *ip;
    unsigned char c = lower(p[i]);
    unsigned char next = i + 1 < len ? p[i + 1] : 0;

    if (next == '\'') {
        switch (c) {
        case 'e':
            return scan_string(p, len, ip, i + 1, 1, "escape string", u);
        case 'b':
            return scan_string(p, len, ip, i + 1, 0, "bit-string literal", u);
        case 'x':
            return scan_string(p, len, ip, i + 1, 0, "hexadecimal string literal", u);
        case 'n':
            return scan_string(p, len, ip, i + 1, 0, "quoted string", u);
        default:
            break;
        }
    }
    if (c == 'u' && next == '&') {
        if (i + 2 < len && p[i + 2] == '\'')
            return scan_string(p, len, ip, i + 2, 0, "Unicode string", u);
        if (i + 2 < len && p[i + 2] == '"')
            return scan_quoted_ident(p, len, ip, i + 2, u);
        /* The server's lexer takes this U alone, and not as an identifier. */
        *ip = i + 1;
        return 0;
    }
    *ip = skip_while(p, len, i + 1, is_ident_char);
    note_word(st, p + i, *ip - i);
    return 0;
}

/* One token at *ip, which is not whitespace, a comment or a statement-ending ';'. Only the
 * tokens that can hide a ';', '(', ')' or comment start need scanning in full: quotes, dollar
 * bodies, and words (whose '$' and letters must not start anything). */
static int scan_token(const unsigned char *p, size_t len, size_t *ip, struct stmt *st,
                      struct unclosed *u)
{
    size_t i = *ip;

    switch (p[i]) {
    case '(':
        st->paren++;
        break;
    case ')':
        if (st->paren > 0)
            st->paren--;
        break;
    case '\'':
        return scan_string(p, len, ip, i, 0, "quoted string", u);
    case '"':
        return scan_quoted_ident(p, len, ip, i, u);
    case '$':
        return scan_dollar(p, len, ip, u);
    default:
        if (is_digit(p[i])) {
            /* A number glued to letters ("1e", "0x1F", "1abc") is one token in PostgreSQL 16
             * and a number then an identifier before: neither starts a quote. */
            i = skip_while(p, len, i, is_digit);
            if (i < len && is_letter(p[i]))
                i = skip_while(p, len, i, is_ident_char);
            *ip = i;
            return 0;
        }
        if (is_letter(p[i]))
            return scan_word(p, len, ip, st, u);
        break;
    }
    *ip = i + 1;
    return 0;
}

static unsigned count_lines(const unsigned char *p, size_t len, size_t from, size_t to,
                            unsigned line)
{
    for (size_t i = from; i < to; i++) {
        int ends = p[i] == '\n' || (p[i] == '\r' && (i + 1 >= len || p[i + 1] != '\n'));
        if (ends && line < UINT_MAX)
            line++;
    }
    return line;
}

void pge_sqlsplit_init(struct pge_sqlsplit *s, const char *sql, size_t len)
{
    memset(s, 0, sizeof *s);
    s->sql = sql;
    s->len = len;
    s->line = 1;
}

/* Moves pos (and its line) forward to the end of what was just returned. */
static void advance(struct pge_sqlsplit *s, size_t from, unsigned from_line, size_t to)
{
    s->line = count_lines((const unsigned char *)s->sql, s->len, from, to, from_line);
    s->pos = to;
}

enum pge_sqlsplit_result pge_sqlsplit_next(struct pge_sqlsplit *s, struct pge_sqlsplit_stmt *out)
{
    const unsigned char *p = (const unsigned char *)s->sql;
    size_t len = s->len;
    size_t i = s->pos;
    size_t start = SIZE_MAX;
    size_t end = 0;
    struct stmt st = {0};
    struct unclosed u = {0};

    if (s->what) {
        *out = s->open;
        return PGE_SQLSPLIT_UNTERMINATED;
    }
    for (;;) {
        if (skip_blanks(p, len, &i, &u) < 0)
            goto unterminated;
        if (i >= len)
            break;
        if (start == SIZE_MAX) {
            if (p[i] == ';') {
                i++; /* an empty statement */
                continue;
            }
            start = i;
        }
        if (p[i] == ';' && st.paren == 0 && st.begin == 0) {
            end = ++i;
            break;
        }
        if (scan_token(p, len, &i, &st, &u) < 0)
            goto unterminated;
        end = i;
    }
    if (start == SIZE_MAX) {
        advance(s, s->pos, s->line, len);
        return PGE_SQLSPLIT_END;
    }
    out->offset = start;
    out->length = end - start;
    out->line = count_lines(p, len, s->pos, start, s->line);
    advance(s, start, out->line, i);
    return PGE_SQLSPLIT_STMT;

unterminated:
    s->what = u.what;
    s->open.offset = u.offset;
    s->open.length = u.length;
    s->open.line = count_lines(p, len, s->pos, u.offset, s->line);
    advance(s, u.offset, s->open.line, len);
    *out = s->open;
    return PGE_SQLSPLIT_UNTERMINATED;
}

const char *pge_sqlsplit_what(const struct pge_sqlsplit *s)
{
    return s->what;
}

unsigned pge_sqlsplit_line_at(const char *sql, size_t len, size_t offset)
{
    return count_lines((const unsigned char *)sql, len, 0, offset < len ? offset : len, 1);
}

size_t pge_sqlsplit_char_offset(const char *stmt, size_t len, unsigned long position)
{
    const unsigned char *p = (const unsigned char *)stmt;
    size_t i = 0;

    /* Character 1 starts at byte 0; each later one at the next byte that is not a UTF-8
     * continuation byte (10xxxxxx). */
    for (; position > 1 && i < len; position--)
        for (i++; i < len && (p[i] & 0xC0) == 0x80; i++)
            ;
    return i;
}

unsigned pge_sqlsplit_position_line(const char *sql, size_t len, size_t stmt_offset,
                                    size_t stmt_len, unsigned long position)
{
    if (stmt_offset > len)
        stmt_offset = len;
    if (stmt_len > len - stmt_offset)
        stmt_len = len - stmt_offset;
    size_t off = pge_sqlsplit_char_offset(sql ? sql + stmt_offset : NULL, stmt_len, position);
    return pge_sqlsplit_line_at(sql, len, stmt_offset + off);
}
