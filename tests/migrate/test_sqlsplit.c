/* Unit tests for the SQL statement splitter, each case also fed as every truncated prefix. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/sqlsplit.h"

#define MAX_STMTS 8

/* An expected statement (or, for an unterminated case, opening delimiter): where it starts,
 * its exact bytes, its line. */
struct want {
    size_t offset;
    const char *text;
    unsigned line;
};

struct split_case {
    const char *sql;
    size_t len; /* 0: strlen(sql) */
    struct want stmts[MAX_STMTS];
    const char *what; /* NULL: the script ends cleanly; else what is left open */
    struct want open;
};

struct got {
    size_t n;
    struct pge_sqlsplit_stmt stmts[64];
    enum pge_sqlsplit_result last;
    struct pge_sqlsplit_stmt open;
    const char *what;
};

static size_t case_len(const struct split_case *c)
{
    return c->len ? c->len : strlen(c->sql);
}

/* Splits sql[0..len) and checks what holds for any input: spans inside the input, in order,
 * not empty, with the line pge_sqlsplit_line_at() gives, and termination. */
static void split(const char *sql, size_t len, struct got *g)
{
    struct pge_sqlsplit s;
    size_t prev_end = 0;

    memset(g, 0, sizeof *g);
    pge_sqlsplit_init(&s, sql, len);
    for (;;) {
        struct pge_sqlsplit_stmt st = {0};
        enum pge_sqlsplit_result r = pge_sqlsplit_next(&s, &st);
        if (r == PGE_SQLSPLIT_END) {
            cr_assert_null(pge_sqlsplit_what(&s));
            cr_assert_eq(pge_sqlsplit_next(&s, &st), PGE_SQLSPLIT_END, "END is not sticky");
            g->last = r;
            return;
        }
        cr_assert(st.length > 0 && st.offset >= prev_end && st.offset + st.length <= len,
                  "span %zu+%zu outside %zu (previous end %zu)", st.offset, st.length, len,
                  prev_end);
        cr_assert_eq(st.line, pge_sqlsplit_line_at(sql, len, st.offset));
        if (r == PGE_SQLSPLIT_UNTERMINATED) {
            struct pge_sqlsplit_stmt again = {0};
            g->last = r;
            g->open = st;
            g->what = pge_sqlsplit_what(&s);
            cr_assert_not_null(g->what);
            cr_assert_eq(pge_sqlsplit_next(&s, &again), PGE_SQLSPLIT_UNTERMINATED);
            cr_assert(again.offset == st.offset && again.length == st.length &&
                      again.line == st.line);
            return;
        }
        cr_assert_eq(r, PGE_SQLSPLIT_STMT);
        cr_assert_null(pge_sqlsplit_what(&s));
        cr_assert_lt(g->n, sizeof g->stmts / sizeof g->stmts[0], "runaway splitter");
        g->stmts[g->n++] = st;
        prev_end = st.offset + st.length;
        cr_assert_eq(s.pos >= prev_end, 1);
    }
}

static int same(const struct pge_sqlsplit_stmt *a, const struct pge_sqlsplit_stmt *b)
{
    return a->offset == b->offset && a->length == b->length && a->line == b->line;
}

/* Every prefix of the script, copied to a buffer of exactly that size so that a read past the
 * end trips the sanitizer. Only the last statement of a split can lack its ';', so all
 * statements of the full split but the last are terminated: a prefix that contains one
 * returns it unchanged, and a prefix that ends at its ';' returns exactly those before it. */
static void check_prefixes(const char *name, const char *sql, size_t len, const struct got *full)
{
    for (size_t n = 0; n < len; n++) {
        char *buf = malloc(n ? n : 1);
        struct got g;

        cr_assert_not_null(buf);
        memcpy(buf, sql, n);
        split(buf, n, &g);
        for (size_t k = 0; k + 1 < g.n; k++)
            cr_assert(k < full->n && same(&g.stmts[k], &full->stmts[k]),
                      "%s: prefix %zu, statement %zu differs", name, n, k);
        for (size_t k = 0; k + 1 < full->n; k++) {
            const struct pge_sqlsplit_stmt *f = &full->stmts[k];
            if (f->offset + f->length > n)
                break;
            cr_assert(k < g.n && same(&g.stmts[k], f), "%s: prefix %zu lost statement %zu", name, n,
                      k);
            if (f->offset + f->length == n)
                cr_assert(g.n == k + 1 && g.last == PGE_SQLSPLIT_END,
                          "%s: prefix %zu ends after statement %zu", name, n, k);
        }
        free(buf);
    }
}

static void check_cases(const struct split_case *cases, size_t ncases)
{
    for (size_t i = 0; i < ncases; i++) {
        const struct split_case *c = &cases[i];
        size_t len = case_len(c);
        size_t nwant = 0;
        struct got g;

        split(c->sql, len, &g);
        while (nwant < MAX_STMTS && c->stmts[nwant].text)
            nwant++;
        cr_assert_eq(g.n, nwant, "%s: %zu statements, want %zu", c->sql, g.n, nwant);
        for (size_t k = 0; k < nwant; k++) {
            const struct want *w = &c->stmts[k];
            const struct pge_sqlsplit_stmt *st = &g.stmts[k];
            size_t wlen = strlen(w->text);
            cr_assert(st->offset == w->offset && st->length == wlen &&
                          memcmp(c->sql + st->offset, w->text, wlen) == 0,
                      "%s: statement %zu is %zu+%zu \"%.*s\", want %zu \"%s\"", c->sql, k,
                      st->offset, st->length, (int)st->length, c->sql + st->offset, w->offset,
                      w->text);
            cr_assert_eq(st->line, w->line, "%s: statement %zu on line %u, want %u", c->sql, k,
                         st->line, w->line);
        }
        if (c->what) {
            size_t wlen = strlen(c->open.text);
            cr_assert_eq(g.last, PGE_SQLSPLIT_UNTERMINATED, "%s: not refused", c->sql);
            cr_assert_str_eq(g.what, c->what, "%s", c->sql);
            cr_assert(g.open.offset == c->open.offset && g.open.length == wlen &&
                          memcmp(c->sql + g.open.offset, c->open.text, wlen) == 0,
                      "%s: open at %zu+%zu, want %zu \"%s\"", c->sql, g.open.offset, g.open.length,
                      c->open.offset, c->open.text);
            cr_assert_eq(g.open.line, c->open.line, "%s", c->sql);
        } else {
            cr_assert_eq(g.last, PGE_SQLSPLIT_END, "%s: refused (%s)", c->sql, g.what);
        }
        check_prefixes(c->sql, c->sql, len, &g);
    }
}

#define CHECK(cases) check_cases(cases, sizeof cases / sizeof cases[0])

Test(sqlsplit, statement_boundaries, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"", 0, {{0}}, NULL, {0}},
        {"SELECT 1; SELECT 2;", 0, {{0, "SELECT 1;", 1}, {10, "SELECT 2;", 1}}, NULL, {0}},
        {"  -- only a comment\n/* and another */\n\t", 0, {{0}}, NULL, {0}},
        {";; ;\n SELECT 1;;\n;", 0, {{6, "SELECT 1;", 2}}, NULL, {0}},
        {"-- head\n/* a */ SELECT 1 /* in */;", 0, {{16, "SELECT 1 /* in */;", 2}}, NULL, {0}},
        /* No ';' at the end: the statement stops at its last token, not the comment. */
        {"SELECT 1;\nSELECT 2  \n-- bye\n",
         0,
         {{0, "SELECT 1;", 1}, {10, "SELECT 2", 2}},
         NULL,
         {0}},
        {"SELECT 1;\n\n  SELECT\n  2;\n-- c\n/* multi\nline */ SELECT 3",
         0,
         {{0, "SELECT 1;", 1}, {13, "SELECT\n  2;", 3}, {47, "SELECT 3", 7}},
         NULL,
         {0}},
        /* Carriage returns: CRLF is one line end, a lone CR another, and ends a comment. */
        {"SELECT 1;\r\nSELECT 2;\r-- c\rSELECT 3;",
         0,
         {{0, "SELECT 1;", 1}, {11, "SELECT 2;", 2}, {26, "SELECT 3;", 4}},
         NULL,
         {0}},
    };
    CHECK(cases);
}

Test(sqlsplit, quoted_strings, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"SELECT 'a;b', 'it''s;'; SELECT 2;",
         0,
         {{0, "SELECT 'a;b', 'it''s;';", 1}, {24, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* standard_conforming_strings: a backslash does not escape in '' strings. */
        {"SELECT 'a\\'; SELECT 2;", 0, {{0, "SELECT 'a\\';", 1}, {13, "SELECT 2;", 1}}, NULL, {0}},
        {"SELECT E'\\';', e'\\\\', E'x''y;'; SELECT 2;",
         0,
         {{0, "SELECT E'\\';', e'\\\\', E'x''y;';", 1}, {32, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* E only prefixes a literal at the start of a token: ae'\' is a word then '\'. */
        {"SELECT ae'\\'; SELECT 2;",
         0,
         {{0, "SELECT ae'\\';", 1}, {14, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* '' inside E'' is a quote too, so the \' after it is still escaped. */
        {"SELECT E'a''\\';'; SELECT 7;",
         0,
         {{0, "SELECT E'a''\\';';", 1}, {18, "SELECT 7;", 1}},
         NULL,
         {0}},
        {"SELECT B'1;0', x'f;f', N'n;', U&'d;\\0061'; SELECT 2;",
         0,
         {{0, "SELECT B'1;0', x'f;f', N'n;', U&'d;\\0061';", 1}, {43, "SELECT 2;", 1}},
         NULL,
         {0}},
        {"SELECT \"a;b\", \"q\"\";\" FROM t; SELECT U&\"x;\" ;",
         0,
         {{0, "SELECT \"a;b\", \"q\"\";\" FROM t;", 1}, {29, "SELECT U&\"x;\" ;", 1}},
         NULL,
         {0}},
        /* 'a' <newline> 'b' is one literal that keeps E's escapes: \' stays escaped. This is
         * the server's reading; psql, which lexes line by line, would end the first statement
         * at the second ';' and the server would then refuse it as unterminated. */
        {"SELECT E'a'\n'\\';'; SELECT 2;",
         0,
         {{0, "SELECT E'a'\n'\\';';", 1}, {19, "SELECT 2;", 2}},
         NULL,
         {0}},
        {"SELECT E'a' -- c\n'\\';'; SELECT 2;",
         0,
         {{0, "SELECT E'a' -- c\n'\\';';", 1}, {24, "SELECT 2;", 2}},
         NULL,
         {0}},
        /* Without a newline, or across a block comment, the second literal is a plain one. */
        {"SELECT E'a' '\\';';", 0, {{0, "SELECT E'a' '\\';", 1}}, "quoted string", {16, "'", 1}},
        {"SELECT E'a' /* c */\n'\\';';",
         0,
         {{0, "SELECT E'a' /* c */\n'\\';", 1}},
         "quoted string",
         {24, "'", 2}},
    };
    CHECK(cases);
}

Test(sqlsplit, dollar_quotes, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"DO $$ BEGIN PERFORM 1; END $$; SELECT 2;",
         0,
         {{0, "DO $$ BEGIN PERFORM 1; END $$;", 1}, {31, "SELECT 2;", 1}},
         NULL,
         {0}},
        {"SELECT $a$ $b$ ; $a$; SELECT $b$;$b$;",
         0,
         {{0, "SELECT $a$ $b$ ; $a$;", 1}, {22, "SELECT $b$;$b$;", 1}},
         NULL,
         {0}},
        /* $b$a$: the failed $b$ gives back its last '$', which then closes $a$. */
        {"SELECT $a$x;$b$a$; SELECT 2;",
         0,
         {{0, "SELECT $a$x;$b$a$;", 1}, {19, "SELECT 2;", 1}},
         NULL,
         {0}},
        {"SELECT $A$ $a$; $A$;", 0, {{0, "SELECT $A$ $a$; $A$;", 1}}, NULL, {0}},
        {"CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN\n  RETURN 1;\nEND\n$body$ "
         "LANGUAGE plpgsql;\nSELECT f();",
         0,
         {{0,
           "CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN\n  RETURN 1;\nEND\n$body$ "
           "LANGUAGE plpgsql;",
           1},
          {89, "SELECT f();", 6}},
         NULL,
         {0}},
        /* $1 is a parameter, a$b$ one identifier; $1 then $$ opens a body. */
        {"SELECT $1, a$b$, $2; SELECT $1$$x;$$;",
         0,
         {{0, "SELECT $1, a$b$, $2;", 1}, {21, "SELECT $1$$x;$$;", 1}},
         NULL,
         {0}},
        /* A number glued to letters is one token, as in psql 15 and the server since 16:
         * its letters start no E'' literal and are no END. */
        {"SELECT 10e'\\'; SELECT 2;",
         0,
         {{0, "SELECT 10e'\\';", 1}, {15, "SELECT 2;", 1}},
         NULL,
         {0}},
        {"CREATE FUNCTION f() BEGIN ATOMIC SELECT 1end; SELECT 5; END; SELECT 6;",
         0,
         {{0, "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1end; SELECT 5; END;", 1},
          {61, "SELECT 6;", 1}},
         NULL,
         {0}},
        /* A number ends before '$', but a number glued to letters swallows it. */
        {"SELECT 1$a$;$a$; SELECT 1e$a$; SELECT $1x$a$;",
         0,
         {{0, "SELECT 1$a$;$a$;", 1}, {17, "SELECT 1e$a$;", 1}, {31, "SELECT $1x$a$;", 1}},
         NULL,
         {0}},
        /* A '$' that opens nothing is a lone character; the letters after it are a word. */
        {"SELECT $ab ; SELECT $;", 0, {{0, "SELECT $ab ;", 1}, {13, "SELECT $;", 1}}, NULL, {0}},
        /* Bytes >= 0x80 are letters: in identifiers and in tags. */
        {"SELECT \xc3\xa9$x$; SELECT $\xc3\xa9$;$\xc3\xa9$;",
         0,
         {{0, "SELECT \xc3\xa9$x$;", 1}, {14, "SELECT $\xc3\xa9$;$\xc3\xa9$;", 1}},
         NULL,
         {0}},
    };
    CHECK(cases);
}

Test(sqlsplit, comments, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"SELECT 1 -- ; not the end\n; SELECT /* a /* b; */ still; */ 2;",
         0,
         {{0, "SELECT 1 -- ; not the end\n;", 1}, {28, "SELECT /* a /* b; */ still; */ 2;", 2}},
         NULL,
         {0}},
        /* slash-star-slash opens a comment and does not close it. */
        {"SELECT /*/ ; */ 1; SELECT /**/ 2;",
         0,
         {{0, "SELECT /*/ ; */ 1;", 1}, {19, "SELECT /**/ 2;", 1}},
         NULL,
         {0}},
        /* Comment starts inside what looks like an operator still start comments. */
        {"SELECT 2*/*x;*/3; SELECT 1 +-- x;\n 2;",
         0,
         {{0, "SELECT 2*/*x;*/3;", 1}, {18, "SELECT 1 +-- x;\n 2;", 1}},
         NULL,
         {0}},
        {"SELECT 1 /* a **/; SELECT 2 -- no newline at the end",
         0,
         {{0, "SELECT 1 /* a **/;", 1}, {19, "SELECT 2", 1}},
         NULL,
         {0}},
    };
    CHECK(cases);
}

Test(sqlsplit, parentheses, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"SELECT (1; 2); SELECT 2;",
         0,
         {{0, "SELECT (1; 2);", 1}, {15, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* A stray ')' does not make the depth negative. */
        {"SELECT 1); SELECT 2;", 0, {{0, "SELECT 1);", 1}, {11, "SELECT 2;", 1}}, NULL, {0}},
        /* Left open at the end: sent whole, as psql does, for the server to reject. */
        {"SELECT (1; SELECT 2;", 0, {{0, "SELECT (1; SELECT 2;", 1}}, NULL, {0}},
    };
    CHECK(cases);
}

Test(sqlsplit, begin_atomic_bodies, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n"
         "  SELECT CASE WHEN true THEN 1 ELSE 2 END;\nEND;\nSELECT 2;",
         0,
         {{0,
           "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n"
           "  SELECT CASE WHEN true THEN 1 ELSE 2 END;\nEND;",
           1},
          {118, "SELECT 2;", 6}},
         NULL,
         {0}},
        {"create or replace procedure p() begin atomic insert into t values (1); end; select 2;",
         0,
         {{0, "create or replace procedure p() begin atomic insert into t values (1); end;", 1},
          {76, "select 2;", 1}},
         NULL,
         {0}},
        {"CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END; SELECT 2;",
         0,
         {{0, "CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END;", 1}, {49, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* Outside CREATE FUNCTION/PROCEDURE, BEGIN and END are just transaction statements. */
        {"BEGIN; SELECT CASE WHEN true THEN 1 END; END;",
         0,
         {{0, "BEGIN;", 1}, {7, "SELECT CASE WHEN true THEN 1 END;", 1}, {41, "END;", 1}},
         NULL,
         {0}},
        /* Words in parentheses or quotes do not count. */
        {"CREATE FUNCTION f(begin int) RETURNS int RETURN 1; CREATE FUNCTION \"begin\"() "
         "RETURNS int RETURN 1; SELECT 2;",
         0,
         {{0, "CREATE FUNCTION f(begin int) RETURNS int RETURN 1;", 1},
          {51, "CREATE FUNCTION \"begin\"() RETURNS int RETURN 1;", 1},
          {99, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* CASE outside a BEGIN block is not counted, so its END closes nothing. */
        {"CREATE FUNCTION f() RETURNS int RETURN CASE WHEN true THEN 1 END; SELECT 2;",
         0,
         {{0, "CREATE FUNCTION f() RETURNS int RETURN CASE WHEN true THEN 1 END;", 1},
          {66, "SELECT 2;", 1}},
         NULL,
         {0}},
        /* Only the statement's first words decide: a view is not a routine. */
        {"CREATE VIEW v AS SELECT 1 AS begin; SELECT 2;",
         0,
         {{0, "CREATE VIEW v AS SELECT 1 AS begin;", 1}, {36, "SELECT 2;", 1}},
         NULL,
         {0}},
    };
    CHECK(cases);
}

Test(sqlsplit, unterminated_constructs, .timeout = 10)
{
    static const struct split_case cases[] = {
        {"SELECT 'abc", 0, {{0}}, "quoted string", {7, "'", 1}},
        {"SELECT 1;\nSELECT $body$ x",
         0,
         {{0, "SELECT 1;", 1}},
         "dollar-quoted string",
         {17, "$body$", 2}},
        {"SELECT $$", 0, {{0}}, "dollar-quoted string", {7, "$$", 1}},
        {"SELECT $a$ $A$", 0, {{0}}, "dollar-quoted string", {7, "$a$", 1}},
        {"SELECT 1; /* a /* b */", 0, {{0, "SELECT 1;", 1}}, "block comment", {10, "/*", 1}},
        {"SELECT 1 /* a", 0, {{0}}, "block comment", {9, "/*", 1}},
        {"SELECT \"abc", 0, {{0}}, "quoted identifier", {7, "\"", 1}},
        {"SELECT U&\"abc\"\"", 0, {{0}}, "quoted identifier", {7, "U&\"", 1}},
        {"SELECT e'\\'; SELECT 2;", 0, {{0}}, "escape string", {7, "e'", 1}},
        {"SELECT E'\\", 0, {{0}}, "escape string", {7, "E'", 1}},
        {"SELECT B'01", 0, {{0}}, "bit-string literal", {7, "B'", 1}},
        {"SELECT X'0", 0, {{0}}, "hexadecimal string literal", {7, "X'", 1}},
        {"SELECT U&'x", 0, {{0}}, "Unicode string", {7, "U&'", 1}},
        {"SELECT N'x", 0, {{0}}, "quoted string", {7, "N'", 1}},
        /* The literal starts at its first segment. */
        {"SELECT 'a'\n'b", 0, {{0}}, "quoted string", {7, "'", 1}},
    };
    CHECK(cases);
}

Test(sqlsplit, nul_bytes, .timeout = 10)
{
    /* A NUL is an ordinary character and the input is not a C string: a NUL inside a literal
     * does not end it, and one between statements starts a statement (the server refuses it). */
    static const char sql[] = "SELECT '\0;'; \0;";
    struct got g;

    split(sql, sizeof sql - 1, &g);
    cr_assert_eq(g.last, PGE_SQLSPLIT_END);
    cr_assert_eq(g.n, 2);
    cr_assert(g.stmts[0].offset == 0 && g.stmts[0].length == 12 && g.stmts[0].line == 1);
    cr_assert(g.stmts[1].offset == 13 && g.stmts[1].length == 2 && g.stmts[1].line == 1);
    check_prefixes("nul", sql, sizeof sql - 1, &g);
}

Test(sqlsplit, line_at, .timeout = 10)
{
    static const struct {
        const char *sql;
        size_t offset;
        unsigned line;
    } cases[] = {
        {"", 0, 1},       {"abc", 2, 1},    {"a\nb", 1, 1},   {"a\nb", 2, 2},
        {"a\n\nb", 3, 3}, {"a\r\nb", 2, 1}, {"a\r\nb", 3, 2}, {"a\rb", 2, 2},
        {"a\nb", 99, 2},  {"a\r", 2, 2},    {"\n\n\n", 3, 4}, {"x\r\r\n", 4, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(pge_sqlsplit_line_at(cases[i].sql, strlen(cases[i].sql), cases[i].offset),
                     cases[i].line, "case %zu", i);
    cr_assert_eq(pge_sqlsplit_line_at(NULL, 0, 5), 1);
}

Test(sqlsplit, char_offset, .timeout = 10)
{
    /* "é" is two bytes, "€" three. */
    static const char s[] = "a\xc3\xa9\xe2\x82\xac;";
    static const struct {
        unsigned long position;
        size_t offset;
    } cases[] = {{0, 0}, {1, 0}, {2, 1}, {3, 3}, {4, 6}, {5, 7}, {99, 7}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(pge_sqlsplit_char_offset(s, sizeof s - 1, cases[i].position), cases[i].offset,
                     "position %lu", cases[i].position);
    cr_assert_eq(pge_sqlsplit_char_offset(NULL, 0, 3), 0);
}

Test(sqlsplit, error_position_to_line, .timeout = 10)
{
    /* The way the runner uses it: PostgreSQL's character position inside the second
     * statement becomes a line of the file. */
    static const char sql[] = "SELECT 1;\n-- \xc3\xa9\nSELECT\n  'd\xc3\xa9j\xc3\xa0',\n  nope;";
    struct pge_sqlsplit s;
    struct pge_sqlsplit_stmt st;

    pge_sqlsplit_init(&s, sql, sizeof sql - 1);
    cr_assert_eq(pge_sqlsplit_next(&s, &st), PGE_SQLSPLIT_STMT);
    cr_assert_eq(pge_sqlsplit_next(&s, &st), PGE_SQLSPLIT_STMT);
    cr_assert_eq(st.line, 3);
    /* "nope" is character 20 of the statement: SELECT\n (7), two spaces, 'déjà' (6), ",\n",
     * two spaces. */
    size_t at = pge_sqlsplit_char_offset(sql + st.offset, st.length, 20);
    cr_assert_eq(memcmp(sql + st.offset + at, "nope", 4), 0);
    cr_assert_eq(pge_sqlsplit_line_at(sql, sizeof sql - 1, st.offset + at), 5);
    cr_assert_eq(pge_sqlsplit_next(&s, &st), PGE_SQLSPLIT_END);
}

Test(sqlsplit, position_line, .timeout = 10)
{
    /* PostgreSQL's error position is the 1-based character (not byte) of the token inside the
     * statement sent, which starts at stmt_offset of the file. */
    static const struct {
        const char *sql;
        size_t stmt_offset;
        unsigned long position;
        const char *token;
        unsigned line;
    } cases[] = {
        {"SELECT 1 FROM\nno_such_table;", 0, 15, "no_such_table", 2},    /* start of a line */
        {"SELECT 1 FROM\nx JOIN nope;", 0, 22, "nope", 2},               /* middle of a line */
        {"SELECT nope\nFROM t;", 0, 8, "nope", 1},                       /* end of a line */
        {"SELECT\nnope", 0, 8, "nope", 2},                               /* end of the text */
        {"nope;", 0, 1, "nope", 1},                                      /* first character */
        {"SELECT 1 FROM\r\nnope;", 0, 16, "nope", 2},                    /* after CRLF */
        {"SELECT 1 FROM\rnope;", 0, 15, "nope", 2},                      /* after a lone CR */
        {"SELECT '\xc3\xa9\xe2\x82\xac' FROM\nnope;", 0, 18, "nope", 2}, /* after é and € */
        {"SELECT '\xc3\xa9' nope", 0, 12, "nope", 1},
        {"SELECT 1;\r\n-- \xc3\xa9\r\nSELECT *\r\nFROM nope;", 9, 24, "nope", 4},
        {"SELECT 1;\nSELECT 1 FROM\nnope;", 9, 16, "nope", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sql = cases[i].sql;
        size_t len = strlen(sql), off = cases[i].stmt_offset;
        size_t at = off + pge_sqlsplit_char_offset(sql + off, len - off, cases[i].position);
        cr_assert_eq(strncmp(sql + at, cases[i].token, strlen(cases[i].token)), 0,
                     "case %zu: position %lu is not at %s", i, cases[i].position, cases[i].token);
        cr_assert_eq(pge_sqlsplit_position_line(sql, len, off, len - off, cases[i].position),
                     cases[i].line, "case %zu", i);
    }
    /* Out of range: clamped, never past the text. */
    cr_assert_eq(pge_sqlsplit_position_line("a\nb", 3, 9, 9, 5), 2);
    cr_assert_eq(pge_sqlsplit_position_line(NULL, 0, 0, 0, 3), 1);
}
