/* Unit tests for classifying PostgreSQL connection failures from libpq's verbose messages. */
#include <criterion/criterion.h>
#include <string.h>

#include "pgentry/common/runstate.h"
#include "pgentry/db/sqlstate.h"

#define AT "connection to server at \"127.0.0.1\", port 5432 failed: "

struct sqlstate_case {
    const char *message;
    int needs_password;
    const char *sqlstate;          /* "" when the message carries none */
    enum pge_outcome_kind verdict; /* PGE_OUT_NOT_READY: retry */
    enum pge_attempt_outcome outcome;
    const char *short_form;
};

static const struct sqlstate_case cases[] = {
    /* Refused for good. */
    {AT "FATAL:  28P01: password authentication failed for user \"app\"\n"
        "LOCATION:  auth_failed, auth.c:323\n",
     0, "28P01", PGE_OUT_REFUSED, PGE_ATTEMPT_FATAL,
     "password authentication failed for user \"app\""},
    {AT "FATAL:  28000: no pg_hba.conf entry for host \"10.0.0.5\", user \"app\", database "
        "\"app\", no encryption\n",
     0, "28000", PGE_OUT_REFUSED, PGE_ATTEMPT_FATAL,
     "no pg_hba.conf entry for host \"10.0.0.5\", user \"app\", database \"app\", no encryption"},
    {AT "FATAL:  28000: role \"ghost\" does not exist\n", 0, "28000", PGE_OUT_REFUSED,
     PGE_ATTEMPT_FATAL, "role \"ghost\" does not exist"},
    {AT "FATAL:  3D000: database \"nope\" does not exist\nLOCATION:  InitPostgres, postinit.c:1\n",
     0, "3D000", PGE_OUT_REFUSED, PGE_ATTEMPT_FATAL, "database \"nope\" does not exist"},
    {AT "FATAL:  42501: permission denied for database \"app\"\n"
        "DETAIL:  User does not have CONNECT privilege.\n",
     0, "42501", PGE_OUT_REFUSED, PGE_ATTEMPT_FATAL, "permission denied for database \"app\""},
    {AT "fe_sendauth: no password supplied\n", 1, "", PGE_OUT_REFUSED, PGE_ATTEMPT_FATAL,
     "fe_sendauth: no password supplied"},
    /* Transient: the server is there but not ready for us. */
    {AT "FATAL:  57P03: the database system is starting up\n", 0, "57P03", PGE_OUT_NOT_READY,
     PGE_ATTEMPT_STARTING, "the database system is starting up"},
    {AT "FATAL:  57P03: the database system is not yet accepting connections\n"
        "DETAIL:  Consistent recovery state has not been yet reached.\n",
     0, "57P03", PGE_OUT_NOT_READY, PGE_ATTEMPT_STARTING,
     "the database system is not yet accepting connections"},
    {AT "FATAL:  57P01: terminating connection due to administrator command\n", 0, "57P01",
     PGE_OUT_NOT_READY, PGE_ATTEMPT_STARTING,
     "terminating connection due to administrator command"},
    {AT "FATAL:  53300: sorry, too many clients already\n", 0, "53300", PGE_OUT_NOT_READY,
     PGE_ATTEMPT_TOO_MANY, "sorry, too many clients already"},
    {"ERROR:  25006: cannot execute CREATE TABLE in a read-only transaction\n", 0, "25006",
     PGE_OUT_NOT_READY, PGE_ATTEMPT_STANDBY,
     "cannot execute CREATE TABLE in a read-only transaction"},
    /* Localized severity: the two spaces and the code do not change. */
    {AT "\xd0\x92\xd0\x90\xd0\x96\xd0\x9d\xd0\x9e:  28P01: password authentication failed\n", 0,
     "28P01", PGE_OUT_REFUSED, PGE_ATTEMPT_FATAL, "password authentication failed"},
    /* Client side: no SQLSTATE, classified by libpq's text. */
    {AT "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
        "connections?\n",
     0, "", PGE_OUT_NOT_READY, PGE_ATTEMPT_REFUSED, "Connection refused"},
    {"connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: No such file or "
     "directory\n\tIs the server running locally and accepting connections on that socket?\n",
     0, "", PGE_OUT_NOT_READY, PGE_ATTEMPT_REFUSED, "No such file or directory"},
    {AT "server closed the connection unexpectedly\n\tThis probably means the server terminated "
        "abnormally\n",
     0, "", PGE_OUT_NOT_READY, PGE_ATTEMPT_REFUSED, "server closed the connection unexpectedly"},
    {"connection to server at \"10.9.9.9\", port 5432 failed: No route to host\n", 0, "",
     PGE_OUT_NOT_READY, PGE_ATTEMPT_REFUSED, "No route to host"},
    {"could not translate host name \"db.invalid\" to address: Name or service not known\n", 0, "",
     PGE_OUT_NOT_READY, PGE_ATTEMPT_DNS,
     "could not translate host name \"db.invalid\" to address: Name or service not known"},
    {"could not translate host name \"db\" to address: Temporary failure in name resolution\n", 0,
     "", PGE_OUT_NOT_READY, PGE_ATTEMPT_DNS,
     "could not translate host name \"db\" to address: Temporary failure in name resolution"},
    {AT "timeout expired\n", 0, "", PGE_OUT_NOT_READY, PGE_ATTEMPT_TIMEOUT, "timeout expired"},
    /* Configuration that waiting cannot fix. */
    {"invalid sslmode value: \"bogus\"\n", 0, "", PGE_OUT_CONFIG, PGE_ATTEMPT_FATAL,
     "invalid sslmode value: \"bogus\""},
    {"invalid integer value \"x\" for connection option \"port\"\n", 0, "", PGE_OUT_CONFIG,
     PGE_ATTEMPT_FATAL, "invalid integer value \"x\" for connection option \"port\""},
    {AT "server does not support SSL, but SSL was required\n", 0, "", PGE_OUT_CONFIG,
     PGE_ATTEMPT_FATAL, "server does not support SSL, but SSL was required"},
    {"invalid connection option \"colour\"\n", 0, "", PGE_OUT_CONFIG, PGE_ATTEMPT_FATAL,
     "invalid connection option \"colour\""},
    /* Unknown: retried, labelled other. */
    {AT "FATAL:  XX000: something odd\n", 0, "XX000", PGE_OUT_NOT_READY, PGE_ATTEMPT_OTHER,
     "something odd"},
    {AT "FATAL:  password authentication failed for user \"app\"\n", 0, "", PGE_OUT_NOT_READY,
     PGE_ATTEMPT_OTHER, "password authentication failed for user \"app\""},
    {"", 0, "", PGE_OUT_NOT_READY, PGE_ATTEMPT_OTHER, ""},
};

#define NCASES (sizeof cases / sizeof cases[0])

Test(sqlstate, sqlstate_extracted_from_verbose_messages, .timeout = 10)
{
    for (size_t i = 0; i < NCASES; i++) {
        char st[6] = "?????";
        int rc = pge_sqlstate_sqlstate(cases[i].message, st);
        if (cases[i].sqlstate[0]) {
            cr_assert_eq(rc, 0, "no SQLSTATE in %s", cases[i].message);
            cr_assert_str_eq(st, cases[i].sqlstate, "%s", cases[i].message);
        } else {
            cr_assert_eq(rc, -1, "SQLSTATE %s found in %s", st, cases[i].message);
        }
    }
}

Test(sqlstate, sqlstate_needs_the_exact_shape, .timeout = 10)
{
    static const char *const none[] = {
        "FATAL:  28P0: short code",
        "FATAL:  28p01: lower case",
        "FATAL: 28P01: one space",
        "FATAL:  28P01 no colon",
        "FATAL:  28P01:no space after",
        "FATAL:  ",
        "FATAL:  28P",
        ":  ",
        "host \"a:  b\" failed",
    };
    char st[6];
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        cr_assert_eq(pge_sqlstate_sqlstate(none[i], st), -1, "found one in \"%s\"", none[i]);
    cr_assert_eq(pge_sqlstate_sqlstate(NULL, st), -1);
    /* The first well-formed code wins when several servers answered. */
    cr_assert_eq(pge_sqlstate_sqlstate("x:  no\n" AT "FATAL:  57P03: starting\n" AT
                                       "FATAL:  28P01: bad password\n",
                                       st),
                 0);
    cr_assert_str_eq(st, "57P03");
}

Test(sqlstate, classification, .timeout = 10)
{
    for (size_t i = 0; i < NCASES; i++) {
        enum pge_attempt_outcome o = PGE_ATTEMPT_COUNT_;
        enum pge_outcome_kind c =
            pge_sqlstate_classify(cases[i].sqlstate, cases[i].message, cases[i].needs_password, &o);
        cr_assert_eq(c, cases[i].verdict, "verdict %d for %s", c, cases[i].message);
        cr_assert_eq(o, cases[i].outcome, "outcome %s for %s", pge_runstate_outcome_name(o),
                     cases[i].message);
        /* The sqlstate as main passes it: NULL for client-side failures. */
        enum pge_outcome_kind c2 =
            pge_sqlstate_classify(cases[i].sqlstate[0] ? cases[i].sqlstate : NULL, cases[i].message,
                                  cases[i].needs_password, NULL);
        cr_assert_eq(c2, cases[i].verdict, "NULL sqlstate/outcome: verdict %d for %s", c2,
                     cases[i].message);
    }
}

Test(sqlstate, sqlstate_beats_message_text, .timeout = 10)
{
    /* A server-side code decides even when the text mentions a client-side cause. */
    enum pge_attempt_outcome o;
    cr_assert_eq(pge_sqlstate_classify("28P01", "Connection refused", 0, &o), PGE_OUT_REFUSED);
    cr_assert_eq(o, PGE_ATTEMPT_FATAL);
    cr_assert_eq(pge_sqlstate_classify("57P03", "invalid sslmode value", 0, &o), PGE_OUT_NOT_READY);
    cr_assert_eq(o, PGE_ATTEMPT_STARTING);
    /* A missing password decides over everything. */
    cr_assert_eq(pge_sqlstate_classify("57P03", "starting", 1, &o), PGE_OUT_REFUSED);
    cr_assert_eq(o, PGE_ATTEMPT_FATAL);
    cr_assert_eq(pge_sqlstate_classify(NULL, NULL, 0, &o), PGE_OUT_NOT_READY);
    cr_assert_eq(o, PGE_ATTEMPT_OTHER);
}

Test(sqlstate, short_form, .timeout = 10)
{
    for (size_t i = 0; i < NCASES; i++) {
        char buf[256];
        cr_assert_eq(pge_sqlstate_short(cases[i].message, buf, sizeof buf), buf);
        cr_assert_str_eq(buf, cases[i].short_form, "from %s", cases[i].message);
    }
    char buf[32];
    cr_assert_str_eq(pge_sqlstate_short(NULL, buf, sizeof buf), "");
    cr_assert_str_eq(pge_sqlstate_short("\n\n  Connection refused  \r\nmore", buf, sizeof buf),
                     "Connection refused");
}

Test(sqlstate, short_form_truncates_to_the_buffer, .timeout = 10)
{
    const char *m = AT "FATAL:  28P01: password authentication failed for user \"app\"\n";
    const char *full = "password authentication failed for user \"app\"";
    for (size_t size = 1; size <= strlen(full) + 3; size++) {
        char buf[64];
        memset(buf, 'Z', sizeof buf);
        pge_sqlstate_short(m, buf, size);
        size_t want = size - 1 < strlen(full) ? size - 1 : strlen(full);
        cr_assert_eq(strlen(buf), want, "size %zu: \"%s\"", size, buf);
        cr_assert_eq(strncmp(buf, full, want), 0, "size %zu: \"%s\"", size, buf);
        cr_assert_eq(buf[size], 'Z', "wrote past size %zu", size);
    }
    char untouched = 'Z';
    pge_sqlstate_short(m, &untouched, 0);
    cr_assert_eq(untouched, 'Z');
}

Test(sqlstate, explanations_name_the_fix, .timeout = 10)
{
    static const struct {
        const char *sqlstate;
        int needs_password;
        const char *needle;
    } cases_[] = {
        {NULL, 1, "PGPASSWORD"},     {"28P01", 1, "PGPASSWORD"}, {"28P01", 0, "password"},
        {"28000", 0, "pg_hba.conf"}, {"3D000", 0, "createdb"},   {"42501", 0, "GRANT CONNECT"},
        {"XX000", 0, "refused"},     {NULL, 0, "refused"},
    };
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++) {
        const char *e = pge_sqlstate_explain(cases_[i].sqlstate, cases_[i].needs_password);
        cr_assert_not_null(strstr(e, cases_[i].needle), "%s/%d: %s", cases_[i].sqlstate,
                           cases_[i].needs_password, e);
        cr_assert_null(strchr(e, '\n'), "not one line: %s", e);
    }
}
