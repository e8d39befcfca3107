/* Unit tests for password redaction in URLs and conninfo strings, checked against libpq. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/redact.h"

struct redact_case {
    const char *in;
    const char *out;
    /* Passwords in in, as a client would use them (decoded): never in the output, and each
     * one reported by pge_redact_each_password() so the logger can scrub it anywhere. */
    const char *secrets[2];
};

static const struct redact_case cases[] = {
    /* URLs */
    {"postgres://app:s3cretpw@db:5432/app", "postgres://app:***@db:5432/app", {"s3cretpw"}},
    {"postgresql://app:s3cretpw@db/app?sslmode=require",
     "postgresql://app:***@db/app?sslmode=require",
     {"s3cretpw"}},
    {"postgres://app:p%40ss%2Fw0rd@db/app", "postgres://app:***@db/app", {"p@ss/w0rd"}},
    {"postgres://app@db/app?password=qu3ryPw&sslmode=disable",
     "postgres://app@db/app?password=***&sslmode=disable",
     {"qu3ryPw"}},
    {"postgres://db/app?sslmode=disable&password=qu3ryPw",
     "postgres://db/app?sslmode=disable&password=***",
     {"qu3ryPw"}},
    {"postgres://db?password=qu3ryPw", "postgres://db?password=***", {"qu3ryPw"}},
    {"postgres://app@db/app?password=a%26b", "postgres://app@db/app?password=***", {"a&b"}},
    {"postgres://u:userinfoPw@db/app?password=qu3ryPw",
     "postgres://u:***@db/app?password=***",
     {"userinfoPw", "qu3ryPw"}},
    {"postgres://:onlyPw1@db/app", "postgres://:***@db/app", {"onlyPw1"}},
    {"postgres://app:@db/app", "postgres://app:***@db/app", {NULL}},
    {"postgres://app@db/app", "postgres://app@db/app", {NULL}},
    {"postgres://db:5432/app", "postgres://db:5432/app", {NULL}},
    {"postgres://app:pw@h1:5432,h2:5433/app", "postgres://app:***@h1:5432,h2:5433/app", {"pw"}},
    {"postgres://app:pw@[::1]:5432/app", "postgres://app:***@[::1]:5432/app", {"pw"}},
    /* Everything up to the last '@' is the user part, wherever it is. */
    {"postgres://db/app?application_name=a@b", "postgres://***@b", {NULL}},
    /* libpq ends the user part at the first '/' only: '?', '#' and ':' belong to the password;
     * with two '@' everything up to the last is hidden (libpq takes the first), and so is an
     * unencoded '/' before the last '@' (libpq would read a host, a port and a database). */
    {"postgres://app:qm?rk@db/app", "postgres://app:***@db/app", {"qm?rk"}},
    {"postgres://app:ha#sh@db/app", "postgres://app:***@db/app", {"ha#sh"}},
    {"postgres://app:co:lon@db/app", "postgres://app:***@db/app", {"co:lon"}},
    {"postgres://app:ats@at@db/app", "postgres://app:***@db/app", {"ats@at"}},
    {"postgres://app:ab/SECRET@host/db", "postgres://app:***@host/db", {"ab/SECRET"}},
    {"postgres://app:5432/SECRET@host/db", "postgres://app:***@host/db", {"5432/SECRET"}},
    {"postgres://app:a/b?c#d@e@host:5432/db", "postgres://app:***@host:5432/db", {"a/b?c#d@e"}},
    {"postgres://ab/SECRET@host/db", "postgres://***@host/db", {"ab/SECRET"}},
    {"postgresql+asyncpg://app:drvPw1@db/app", "postgresql+asyncpg://app:***@db/app", {"drvPw1"}},
    {"mysql://app:my5qlPw@db/app", "mysql://app:***@db/app", {"my5qlPw"}},
    /* A user part that is not plainly a name is hidden whole. */
    {"postgres://h?application_name=x:y@z", "postgres://***@z", {"y"}},
    /* Both readings at once: the query (libpq's) overlaps the user part up to the last '@'. */
    {"postgres://a@b?password=x:y@h", "postgres://***", {"x:y@h"}},
    {"postgres://a@b:@c?password=x&sslmode=s:@d", "postgres://***@d", {"x"}},
    /* A '?' inside the password does not hide a later query's password. */
    {"postgres://app:qm?rk@db/app?password=later1",
     "postgres://app:***@db/app?password=***",
     {"qm?rk", "later1"}},
    /* A query value runs to the next '&' (libpq knows no fragments); keys are decoded. */
    {"postgres://db/app?password=ha#sh&sslmode=disable",
     "postgres://db/app?password=***&sslmode=disable",
     {"ha#sh"}},
    {"postgres://db/app?pass%77ord=encKey1", "postgres://db/app?pass%77ord=***", {"encKey1"}},
    {"http://user:httpPw1@health:8080/ready", "http://user:***@health:8080/ready", {"httpPw1"}},
    {"https://health/ready?password=httpQ", "https://health/ready?password=***", {"httpQ"}},
    /* conninfo */
    {"host=db password=s3cretpw dbname=app", "host=db password=*** dbname=app", {"s3cretpw"}},
    {"password=s3cretpw", "password=***", {"s3cretpw"}},
    {"host=db password = 'a b\\'c' user=x", "host=db password = *** user=x", {"a b'c"}},
    {"host=db password='unterminated", "host=db password=***", {"unterminated"}},
    {"host=db password=bare\\ space user=x", "host=db password=*** user=x", {"bare space"}},
    {"host=db password= user=x", "host=db password= ***", {"user=x"}},
    {"host=db password=trail\\", "host=db password=***", {"trail"}},
    {"host=db PASSWORD=upperPw", "host=db PASSWORD=***", {"upperPw"}},
    /* Words after a password that are not a "key=" are its tail (libpq refuses them). */
    {"host=db password=ab cdef dbname=x", "host=db password=*** dbname=x", {"ab cdef"}},
    {"host=db password='ab'cd' ef' dbname=x", "host=db password=*** dbname=x", {"ab"}},
    {"password=sp ace", "password=***", {"sp ace"}},
    /* A stray quote before it does not hide a password from the redactor. */
    {"host='db password=hidden1", "host='db password=***", {"hidden1"}},
    {"host=\"db password=hidden2 user=x", "host=\"db password=*** user=x", {"hidden2"}},
    {"host=db user=app", "host=db user=app", {NULL}},
    {"", "", {NULL}},
    /* malformed */
    {"postgres://", "postgres://", {NULL}},
    {"postgres://@", "postgres://@", {NULL}},
    {"postgres://:@", "postgres://:***@", {NULL}},
    {"password", "password", {NULL}},
    {"=password=x", "=password=x", {NULL}},
    {"just some text", "just some text", {NULL}},
};

#define NCASES (sizeof cases / sizeof cases[0])

struct found {
    char list[8][128];
    size_t n;
};

static void collect(const char *password, void *arg)
{
    struct found *f = arg;
    if (f->n < 8)
        snprintf(f->list[f->n++], sizeof f->list[0], "%s", password);
}

static int reported(const struct found *f, const char *password)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->list[i], password) == 0)
            return 1;
    return 0;
}

/* libpq's own reading of in: the password it would send, or NULL. Owned by the caller. */
static char *libpq_password(const char *in)
{
    char *err = NULL, *pw = NULL;
    PQconninfoOption *opts = PQconninfoParse(in, &err);
    PQfreemem(err);
    if (!opts)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            pw = strdup(o->val);
    PQconninfoFree(opts);
    return pw;
}

Test(redact, table, .timeout = 10)
{
    for (size_t i = 0; i < NCASES; i++) {
        char out[256];
        cr_assert_eq(pge_redact(cases[i].in, out, sizeof out), out);
        cr_assert_str_eq(out, cases[i].out, "in: %s", cases[i].in);
        for (size_t k = 0; k < 2 && cases[i].secrets[k]; k++)
            cr_assert_null(strstr(out, cases[i].secrets[k]), "%s leaked from %s",
                           cases[i].secrets[k], cases[i].in);
    }
}

Test(redact, each_password_reports_decoded_forms, .timeout = 10)
{
    for (size_t i = 0; i < NCASES; i++) {
        struct found f = {.n = 0};
        pge_redact_each_password(cases[i].in, collect, &f);
        for (size_t k = 0; k < 2 && cases[i].secrets[k]; k++)
            cr_assert(reported(&f, cases[i].secrets[k]), "%s: \"%s\" not reported (%zu found)",
                      cases[i].in, cases[i].secrets[k], f.n);
        if (!cases[i].secrets[0] && strstr(cases[i].out, "***") == NULL)
            cr_assert_eq(f.n, 0, "%s: reported \"%s\"", cases[i].in, f.list[0]);
    }
}

Test(redact, agrees_with_libpq, .timeout = 10)
{
    /* Whatever libpq would send as the password is hidden and reported: the ground truth. */
    for (size_t i = 0; i < NCASES; i++) {
        char out[256];
        char *pw = libpq_password(cases[i].in);
        if (!pw)
            continue;
        struct found f = {.n = 0};
        pge_redact(cases[i].in, out, sizeof out);
        pge_redact_each_password(cases[i].in, collect, &f);
        cr_assert(reported(&f, pw), "%s: libpq's password \"%s\" not reported", cases[i].in, pw);
        char *again = libpq_password(out);
        cr_assert(again == NULL || strcmp(again, "***") == 0, "%s: libpq reads \"%s\" from %s",
                  cases[i].in, again, out);
        free(again);
        free(pw);
    }
}

Test(redact, truncated_output_is_a_prefix, .timeout = 10)
{
    for (size_t i = 0; i < NCASES; i++) {
        size_t full = strlen(cases[i].out);
        for (size_t size = 1; size <= full + 2; size++) {
            char out[256];
            memset(out, 'Z', sizeof out);
            pge_redact(cases[i].in, out, size);
            size_t want = size - 1 < full ? size - 1 : full;
            cr_assert_eq(strlen(out), want, "%s size %zu: \"%s\"", cases[i].in, size, out);
            cr_assert_eq(strncmp(out, cases[i].out, want), 0, "%s size %zu: \"%s\"", cases[i].in,
                         size, out);
            cr_assert_eq(out[size], 'Z', "wrote past size %zu", size);
        }
    }
    char untouched = 'Z';
    pge_redact("password=x", &untouched, 0);
    cr_assert_eq(untouched, 'Z', "size 0 wrote a byte");
}

Test(redact, every_prefix_of_input, .timeout = 10)
{
    /* A cut connection string (a log line bound, a partial read) is still redacted: once a
     * prefix holds a whole password and what ends it, the password is hidden. */
    for (size_t i = 0; i < NCASES; i++) {
        const char *in = cases[i].in;
        size_t len = strlen(in);
        for (size_t cut = 0; cut <= len; cut++) {
            char prefix[256], out[512];
            memcpy(prefix, in, cut);
            prefix[cut] = '\0';
            pge_redact(prefix, out, sizeof out);
            size_t masks = 0;
            for (const char *m = strstr(out, "***"); m; m = strstr(m + 3, "***"))
                masks++;
            cr_assert(strlen(out) <= cut + 3 * masks, "%s: output grew: %s", prefix, out);
            char *pw = libpq_password(prefix);
            if (pw) {
                char *again = libpq_password(out);
                cr_assert(again == NULL || strcmp(again, "***") == 0,
                          "prefix %s: libpq reads \"%s\" from %s", prefix, again, out);
                free(again);
                free(pw);
            }
            /* Whole output = whole input once the cut is past the last password. */
            if (cut == len)
                cr_assert_str_eq(out, cases[i].out);
        }
    }
}

Test(redact, many_passwords_all_hidden, .timeout = 10)
{
    /* More password parameters than the redactor tracks one by one: the rest is masked. */
    char in[1024] = "postgres://db/app?sslmode=disable", out[2048];
    for (int i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof p, "&password=Pw%02d", i);
        strcat(in, p);
    }
    pge_redact(in, out, sizeof out);
    cr_assert_null(strstr(out, "Pw"), "%s", out);
    cr_assert_eq(strncmp(out, "postgres://db/app?sslmode=disable&password=***&password=***", 59), 0,
                 "%s", out);
}

struct message_case {
    const char *conn;
    const char *msg;
    const char *out;
};

static const struct message_case messages[] = {
    /* libpq quotes the whole URI: shown redacted, quotes and all. */
    {"postgres://app:pw\"9x@[::1/db",
     "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgres://app:pw\"9x@[::1/db\"",
     "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgres://app:***@[::1/db\""},
    /* ... or the raw password. */
    {"postgres://app:Se%zzcret@h/db", "invalid percent-encoded token: \"Se%zzcret\"",
     "invalid percent-encoded token: \"***\""},
    {"postgres://app:a%zz@h/db", "invalid percent-encoded token: \"a%zz\"",
     "invalid percent-encoded token: \"***\""},
    /* ... or a piece of a password that libpq split: hidden since the redacted URL hides it. */
    {"postgres://app:1/b?c@h/db",
     "missing key/value separator \"=\" in URI query parameter: \"c@h/db\"",
     "missing key/value separator \"=\" in URI query parameter: \"***\""},
    {"host=h password=ab cdef", "missing \"=\" after \"cdef\" in connection info string",
     "missing \"=\" after \"***\" in connection info string"},
    /* What the redacted text shows, and libpq's own words, stay. */
    {"host=h colour=red password=x", "invalid connection option \"colour\"",
     "invalid connection option \"colour\""},
    {"postgres://h/db?bogus=1", "invalid URI query parameter: \"bogus\"",
     "invalid URI query parameter: \"bogus\""},
    /* A password anywhere in the message, raw or decoded; a short one only quoted whole. */
    {"postgres://u:p%41ssword1@h/db", "auth for pAssword1 and p%41ssword1 failed",
     "auth for *** and *** failed"},
    {"postgres://u:ab@h/db", "tab \"ab\" about", "tab \"***\" about"},
    {"host=h", "nothing \"to\" hide", "nothing \"to\" hide"},
    {"", "no \"conn\" at all", "no \"conn\" at all"},
};

Test(redact, message_shows_no_more_than_the_redacted_input, .timeout = 10)
{
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        char out[512];
        cr_assert_eq(pge_redact_message(messages[i].msg, messages[i].conn, out, sizeof out), out);
        cr_assert_str_eq(out, messages[i].out, "conn %s", messages[i].conn);
        /* Truncated: a NUL-terminated prefix. */
        for (size_t size = 1; size < strlen(messages[i].out) + 2; size++) {
            char part[512];
            memset(part, 'Z', sizeof part);
            pge_redact_message(messages[i].msg, messages[i].conn, part, size);
            cr_assert_lt(strlen(part), size);
            cr_assert_eq(strncmp(part, messages[i].out, strlen(part)), 0, "size %zu: %s", size,
                         part);
            cr_assert_eq(part[size], 'Z', "wrote past size %zu", size);
        }
    }
    char untouched = 'Z';
    pge_redact_message("x", "password=x", &untouched, 0);
    cr_assert_eq(untouched, 'Z');
}
