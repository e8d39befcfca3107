/* Unit tests for what a migration's text asks for: header directives and ${NAME} placeholders. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/migfile.h"

/* ---- Directives ------------------------------------------------------------------------ */

Test(migtext, directives_in_the_header, .timeout = 10)
{
    static const struct {
        const char *text;
        int rc;
        unsigned flags;
        unsigned line;    /* rc -1 */
        const char *word; /* rc -1 */
    } cases[] = {
        {"", 0, 0, 0, NULL},
        {"SELECT 1;", 0, 0, 0, NULL},
        {"-- pgentry:no-transaction\n", 0, PGE_MIGFILE_DIR_NO_TX, 0, NULL},
        {"-- pgentry:envsubst\n", 0, PGE_MIGFILE_DIR_ENVSUBST, 0, NULL},
        {"-- pgentry:envsubst\r\n-- pgentry:no-transaction\r\nSELECT 1;\r\n", 0,
         PGE_MIGFILE_DIR_NO_TX | PGE_MIGFILE_DIR_ENVSUBST, 0, NULL},
        {"\xEF\xBB\xBF-- pgentry:envsubst", 0, PGE_MIGFILE_DIR_ENVSUBST, 0, NULL},
        {"-- grants for the app\n\n  -- pgentry:envsubst  \t\nGRANT x;\n", 0,
         PGE_MIGFILE_DIR_ENVSUBST, 0, NULL},
        {"--\tPGentry:envsubst\n", 0, PGE_MIGFILE_DIR_ENVSUBST, 0, NULL},
        {"-- pgentry is great\n-- not a directive: pgentry:foo\n", 0, 0, 0, NULL},
        /* Past the header, everything is a plain comment. */
        {"SELECT 1;\n-- pgentry:foo\n", 0, 0, 0, NULL},
        {"/* block */\n-- pgentry:foo\n", 0, 0, 0, NULL},
        {"-- a\nCREATE TABLE t (x int); -- pgentry:foo\n", 0, 0, 0, NULL},
        /* Unknown words: typos, other case, extra text, a newer release's directive. */
        {"-- pgentry:no-transactoin\n", -1, 0, 1, "no-transactoin"},
        {"-- comment\n\n-- pgentry:envsubst\n-- pgentry:repeatable \r\n", -1, 0, 4, "repeatable"},
        {"-- pgentry:NO-TRANSACTION", -1, 0, 1, "NO-TRANSACTION"},
        {"-- pgentry:no-transaction;\n", -1, 0, 1, "no-transaction;"},
        {"-- pgentry: envsubst\n", -1, 0, 1, " envsubst"},
        {"-- pgentry:\n", -1, 0, 1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pge_migfile_directives d;
        const char *t = cases[i].text;
        int rc = pge_migfile_directives(t, strlen(t), &d);
        cr_assert_eq(rc, cases[i].rc, "case %zu \"%s\"", i, t);
        if (rc == 0) {
            cr_assert_eq(d.flags, cases[i].flags, "case %zu", i);
            continue;
        }
        cr_assert_eq(d.line, cases[i].line, "case %zu", i);
        cr_assert_eq(d.word_len, strlen(cases[i].word), "case %zu", i);
        cr_assert_eq(memcmp(d.word, cases[i].word, d.word_len), 0, "case %zu", i);
    }
}

Test(migtext, directives_every_truncated_prefix, .timeout = 10)
{
    static const char text[] = "-- pgentry:envsubst\n-- pgentry:no-transaction\nSELECT 1;\n";
    size_t len = strlen(text);
    for (size_t n = 0; n <= len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan sees any read past n */
        memcpy(copy, text, n);
        struct pge_migfile_directives d;
        int rc = pge_migfile_directives(copy, n, &d);
        /* A cut inside a known word leaves a shorter, unknown word. */
        int cut_in_word = (n >= 11 && n < 19) || (n >= 20 + 11 && n < 20 + 25);
        cr_assert_eq(rc, cut_in_word ? -1 : 0, "prefix %zu", n);
        if (rc == 0 && n >= 19)
            cr_assert(d.flags & PGE_MIGFILE_DIR_ENVSUBST, "prefix %zu", n);
        if (rc == 0 && n >= 45)
            cr_assert(d.flags & PGE_MIGFILE_DIR_NO_TX, "prefix %zu", n);
        free(copy);
    }
}

/* ---- Placeholders ---------------------------------------------------------------------- */

static const char *const env[][2] = {
    {"APP_ROLE", "app"}, {"EMPTY", ""}, {"_x1", "X"}, {"SECRET", "hunter2-s3cr3t"}, {"NL", "a\nb"},
};

static const char *lookup(void *arg, const char *name, size_t len)
{
    (void)arg;
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (strlen(env[i][0]) == len && memcmp(env[i][0], name, len) == 0)
            return env[i][1];
    return NULL;
}

Test(migtext, envsubst_replaces_everywhere, .timeout = 10)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"SELECT 1;", "SELECT 1;"},
        {"GRANT SELECT ON t TO ${APP_ROLE};", "GRANT SELECT ON t TO app;"},
        {"SELECT '${APP_ROLE}', \"${APP_ROLE}\";", "SELECT 'app', \"app\";"},
        {"DO $$ BEGIN EXECUTE 'GRANT x TO ${APP_ROLE}'; END $$;",
         "DO $$ BEGIN EXECUTE 'GRANT x TO app'; END $$;"},
        {"-- for ${APP_ROLE}\n", "-- for app\n"},
        {"${EMPTY}${_x1}${APP_ROLE}", "Xapp"},
        {"$1 $a $ {APP_ROLE} $$ $", "$1 $a $ {APP_ROLE} $$ $"},
        {"$${APP_ROLE}", "$app"},
        {"${NL}", "a\nb"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pge_migfile_subst s;
        const char *in = cases[i].in;
        cr_assert_eq(pge_migfile_envsubst(in, strlen(in), lookup, NULL, 1, &s), PGE_MIGFILE_OK,
                     "case %zu", i);
        cr_assert_str_eq(s.text, cases[i].out, "case %zu", i);
        cr_assert_eq(s.len, strlen(cases[i].out));
        free(s.text);
        cr_assert_eq(pge_migfile_envsubst(in, strlen(in), lookup, NULL, 0, &s), PGE_MIGFILE_OK);
        cr_assert_null(s.text);
    }
}

Test(migtext, envsubst_refuses_unset_and_malformed, .timeout = 10)
{
    static const struct {
        const char *in;
        enum pge_migfile_result rc;
        unsigned line;
        const char *name;
    } cases[] = {
        {"SELECT 1;\nGRANT x TO ${NOPE};", PGE_MIGFILE_UNSET, 2, "NOPE"},
        {"${APP_ROLE}\n\n${app_role}", PGE_MIGFILE_UNSET, 3, "app_role"},
        {"${", PGE_MIGFILE_BAD_PLACEHOLDER, 1, ""},
        {"${}", PGE_MIGFILE_BAD_PLACEHOLDER, 1, ""},
        {"${1A}", PGE_MIGFILE_BAD_PLACEHOLDER, 1, ""},
        {"a\n${APP-ROLE}", PGE_MIGFILE_BAD_PLACEHOLDER, 2, "APP"},
        {"${APP_ROLE", PGE_MIGFILE_BAD_PLACEHOLDER, 1, "APP_ROLE"},
        {"${ APP_ROLE}", PGE_MIGFILE_BAD_PLACEHOLDER, 1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pge_migfile_subst s;
        const char *in = cases[i].in;
        for (int want = 0; want < 2; want++) {
            cr_assert_eq(pge_migfile_envsubst(in, strlen(in), lookup, NULL, want, &s), cases[i].rc,
                         "case %zu", i);
            cr_assert_null(s.text);
            cr_assert_eq(s.line, cases[i].line, "case %zu", i);
            cr_assert_eq(s.name_len, strlen(cases[i].name), "case %zu", i);
            cr_assert_eq(memcmp(s.name, cases[i].name, s.name_len), 0, "case %zu", i);
        }
    }
}

Test(migtext, envsubst_name_length_is_bounded, .timeout = 10)
{
    char in[PGE_MIGFILE_VAR_MAX + 8];
    struct pge_migfile_subst s;
    memset(in, 'A', sizeof in);
    in[0] = '$';
    in[1] = '{';
    in[sizeof in - 1] = '}';
    cr_assert_eq(pge_migfile_envsubst(in, sizeof in, lookup, NULL, 1, &s),
                 PGE_MIGFILE_BAD_PLACEHOLDER);
    cr_assert_leq(s.name_len, PGE_MIGFILE_VAR_MAX);
}

/* Every truncated prefix of each placeholder form: a whole ${NAME} is replaced, a cut one is
 * refused, a lone "$" stays; never a read past the end. */
Test(migtext, envsubst_every_truncated_prefix, .timeout = 10)
{
    static const char *const forms[] = {"x ${APP_ROLE} y", "${_x1}", "'${EMPTY}'", "$$${NOPE}$$"};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        size_t len = strlen(forms[f]);
        for (size_t n = 0; n <= len; n++) {
            char *copy = malloc(n ? n : 1);
            memcpy(copy, forms[f], n);
            struct pge_migfile_subst s;
            enum pge_migfile_result rc = pge_migfile_envsubst(copy, n, lookup, NULL, 1, &s);
            const char *open = n ? memchr(copy, '{', n) : NULL;
            int closed = n && memchr(copy, '}', n) != NULL;
            enum pge_migfile_result want = PGE_MIGFILE_OK;
            if (open && !closed)
                want = PGE_MIGFILE_BAD_PLACEHOLDER;
            else if (closed && strstr(forms[f], "NOPE"))
                want = PGE_MIGFILE_UNSET;
            cr_assert_eq(rc, want, "form %zu prefix %zu", f, n);
            if (rc == PGE_MIGFILE_OK)
                cr_assert_null(memchr(s.text, '{', s.len), "form %zu prefix %zu", f, n);
            free(s.text);
            free(copy);
        }
    }
}

Test(migtext, redact_masks_every_value_used, .timeout = 10)
{
    static const char text[] = "CREATE ROLE ${APP_ROLE} PASSWORD '${SECRET}';";
    char out[128];
    pge_migfile_envsubst_redact(text, strlen(text), lookup, NULL,
                                "role \"app\" already exists (password hunter2-s3cr3t)", out,
                                sizeof out);
    cr_assert_str_eq(out, "role \"***\" already exists (password ***)");
    pge_migfile_envsubst_redact(text, strlen(text), lookup, NULL, "nothing to hide", out,
                                sizeof out);
    cr_assert_str_eq(out, "nothing to hide");
    /* A short buffer still never shows a value. */
    char tiny[12];
    pge_migfile_envsubst_redact(text, strlen(text), lookup, NULL, "hunter2-s3cr3t", tiny,
                                sizeof tiny);
    cr_assert_null(strstr(tiny, "hunter"));
    pge_migfile_envsubst_redact(text, strlen(text), lookup, NULL, NULL, out, sizeof out);
    cr_assert_str_eq(out, "");
}

/* ---- Repeatable names ------------------------------------------------------------------ */

Test(migtext, repeatable_names, .timeout = 10)
{
    static const struct {
        const char *in;
        enum pge_migfile_name_result rc;
        const char *slug;
    } cases[] = {
        {"R__task_counts.sql", PGE_MIGFILE_NAME_OK, "task_counts"},
        {"R__a.b.sql", PGE_MIGFILE_NAME_OK, "a.b"},
        {"R___.sql", PGE_MIGFILE_NAME_OK, "_"},
        {"R__.sql", PGE_MIGFILE_NAME_MALFORMED, NULL},
        {"R__a\tb.sql", PGE_MIGFILE_NAME_MALFORMED, NULL},
        {"R_x.sql", PGE_MIGFILE_NAME_OTHER, NULL},
        {"r__x.sql", PGE_MIGFILE_NAME_OTHER, NULL},
        {"R__x.sql~", PGE_MIGFILE_NAME_OTHER, NULL},
        {"R__x.SQL", PGE_MIGFILE_NAME_OTHER, NULL},
        {"README", PGE_MIGFILE_NAME_OTHER, NULL},
        {"", PGE_MIGFILE_NAME_OTHER, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *slug = NULL;
        size_t n = 0;
        enum pge_migfile_name_result rc =
            pge_migfile_parse_repeatable(cases[i].in, strlen(cases[i].in), &slug, &n);
        cr_assert_eq(rc, cases[i].rc, "%s", cases[i].in);
        if (rc == PGE_MIGFILE_NAME_OK) {
            cr_assert_eq(n, strlen(cases[i].slug), "%s", cases[i].in);
            cr_assert_eq(memcmp(slug, cases[i].slug, n), 0, "%s", cases[i].in);
        }
    }
    /* Every truncated prefix: never a read past the end, OK only for the whole name. */
    static const char full[] = "R__task_counts.sql";
    for (size_t n = 0; n < sizeof full - 1; n++) {
        char *copy = malloc(n ? n : 1);
        const char *slug;
        size_t sl;
        memcpy(copy, full, n);
        enum pge_migfile_name_result rc = pge_migfile_parse_repeatable(copy, n, &slug, &sl);
        cr_assert_neq(rc, PGE_MIGFILE_NAME_OK, "prefix %zu", n);
        free(copy);
    }
}
