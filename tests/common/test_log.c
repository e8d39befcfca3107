/* Unit tests for the logger: text and JSON lines, levels, quoting, escaping, truncation, secrets.
 */
#include <criterion/criterion.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logcap.h"
#include "pgentry/common/log.h"

/* ---- A strict JSON checker: one object per line, valid UTF-8, no raw control bytes ---- */

struct js {
    const unsigned char *p;
    int depth;
};

static void ws(struct js *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static int js_string(struct js *j)
{
    if (*j->p != '"')
        return 0;
    j->p++;
    while (*j->p != '"') {
        if (*j->p < 0x20)
            return 0;
        if (*j->p == '\\') {
            j->p++;
            if (*j->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i])
                        return 0;
                j->p += 5;
            } else if (*j->p && strchr("\"\\/bfnrt", *j->p)) {
                j->p++;
            } else {
                return 0;
            }
            continue;
        }
        j->p++; /* UTF-8 validity is checked on the whole line */
    }
    j->p++;
    return 1;
}

static int js_value(struct js *j);

static int js_object(struct js *j)
{
    j->p++;
    ws(j);
    if (*j->p == '}') {
        j->p++;
        return 1;
    }
    for (;;) {
        ws(j);
        if (!js_string(j))
            return 0;
        ws(j);
        if (*j->p++ != ':')
            return 0;
        if (!js_value(j))
            return 0;
        ws(j);
        if (*j->p == '}') {
            j->p++;
            return 1;
        }
        if (*j->p++ != ',')
            return 0;
    }
}

static int js_value(struct js *j)
{
    ws(j);
    if (*j->p == '{')
        return ++j->depth < 32 && js_object(j);
    if (*j->p == '"')
        return js_string(j);
    if (strncmp((const char *)j->p, "true", 4) == 0 ||
        strncmp((const char *)j->p, "null", 4) == 0) {
        j->p += 4;
        return 1;
    }
    if (strncmp((const char *)j->p, "false", 5) == 0) {
        j->p += 5;
        return 1;
    }
    const unsigned char *start = j->p;
    if (*j->p == '-')
        j->p++;
    while (*j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start && j->p[-1] != '-';
}

/* Whether s is well-formed UTF-8, by glibc's converter (which refuses overlong forms and
 * surrogates): an oracle independent of the logger's own check. */
static int utf8_valid(const char *s)
{
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    cr_assert_neq(cd, (iconv_t)-1, "iconv_open");
    size_t inleft = strlen(s), outleft = 4 * inleft + 4;
    char *out = malloc(outleft), *o = out, *in = (char *)s;
    size_t rc = iconv(cd, &in, &inleft, &o, &outleft);
    iconv_close(cd);
    free(out);
    return rc != (size_t)-1 && inleft == 0;
}

/* Whether line (without its '\n') is exactly one valid JSON object. */
static int json_valid(const char *line)
{
    struct js j = {(const unsigned char *)line, 0};
    if (!utf8_valid(line))
        return 0;
    ws(&j);
    if (*j.p != '{' || !js_value(&j))
        return 0;
    ws(&j);
    return *j.p == '\0';
}

/* ---- Helpers -------------------------------------------------------------------------- */

/* The single line captured so far, without its newline; fails unless exactly one was written. */
static char *one_line(void)
{
    char *s = pgt_logcap_take();
    size_t n = strlen(s);
    cr_assert(n > 0 && s[n - 1] == '\n', "no complete line written: \"%s\"", s);
    s[n - 1] = '\0';
    cr_assert_null(strchr(s, '\n'), "more than one line: \"%s\"", s);
    return s;
}

static void assert_contains(const char *hay, const char *needle)
{
    cr_assert_not_null(strstr(hay, needle), "\"%s\" not in:\n%s", needle, hay);
}

/* Take the one line written, check it holds needle (and is valid JSON when it is JSON),
 * and end the capture. */
static void expect_line_with(const char *needle)
{
    char *s = one_line();
    assert_contains(s, needle);
    if (s[0] == '{')
        cr_assert(json_valid(s), "invalid JSON: %s", s);
    free(s);
    pgt_logcap_stop();
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- Tests ---------------------------------------------------------------------------- */

Test(log, text_line_shape, .timeout = 10)
{
    char expect[64];
    pgt_logcap_start(PGE_LOG_DEBUG, PGE_LOG_TEXT);
    pge_info("database is ready", PGE_STR("host", "db"), PGE_INT("attempt", 3),
             PGE_MS("after", 1500));
    char *s = one_line();
    /* "2024-05-01T12:00:00.123Z info  pgentry[42] database is ready host=db ..." */
    cr_assert_eq(strlen(s) > 25 && s[4] == '-' && s[10] == 'T' && s[23] == 'Z' && s[24] == ' ', 1,
                 "timestamp: %s", s);
    snprintf(expect, sizeof expect, " info  pgentry[%ld] database is ready", (long)getpid());
    cr_assert_eq(strncmp(s + 24, expect, strlen(expect)), 0, "%s", s);
    cr_assert_str_eq(s + 24 + strlen(expect), " host=db attempt=3 after=1.5s");
    free(s);
    pgt_logcap_stop();
}

Test(log, json_line_fields, .timeout = 10)
{
    char expect[128];
    pgt_logcap_start(PGE_LOG_DEBUG, PGE_LOG_JSON);
    pge_warn("still waiting", PGE_STR("dep", "tcp"), PGE_INT("n", -7), PGE_MS("next", 40));
    char *s = one_line();
    cr_assert(json_valid(s), "invalid JSON: %s", s);
    cr_assert_eq(strncmp(s, "{\"ts\":\"", 7), 0, "%s", s);
    snprintf(expect, sizeof expect, "Z\",\"level\":\"warn\",\"pid\":%ld,\"msg\":\"still waiting\"",
             (long)getpid());
    assert_contains(s, expect);
    assert_contains(s, ",\"dep\":\"tcp\",\"n\":-7,\"next\":\"40ms\",\"next_ms\":40}");
    free(s);
    pgt_logcap_stop();
}

Test(log, levels_filter_before_formatting, .timeout = 10)
{
    static const struct {
        enum pge_log_level setup;
        int written[4]; /* debug, info, warn, error */
    } cases[] = {
        {PGE_LOG_DEBUG, {1, 1, 1, 1}},
        {PGE_LOG_INFO, {0, 1, 1, 1}},
        {PGE_LOG_WARN, {0, 0, 1, 1}},
        {PGE_LOG_ERROR, {0, 0, 0, 1}},
    };
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgt_logcap_start(cases[i].setup, PGE_LOG_TEXT);
        for (int lvl = PGE_LOG_DEBUG; lvl <= PGE_LOG_ERROR; lvl++) {
            cr_assert_eq(pge_log_enabled((enum pge_log_level)lvl), cases[i].written[lvl]);
            pge_log((enum pge_log_level)lvl, names[lvl]);
            char *s = pgt_logcap_take();
            if (cases[i].written[lvl]) {
                char want[32];
                snprintf(want, sizeof want, " %s", names[lvl]);
                assert_contains(s, want);
            } else {
                cr_assert_str_empty(s, "level %s written at setup %s: %s", names[lvl],
                                    names[cases[i].setup], s);
            }
            free(s);
        }
        pgt_logcap_stop();
    }
}

Test(log, parse_level_and_format, .timeout = 10)
{
    static const struct {
        const char *in;
        int rc;
        enum pge_log_level level;
    } levels[] = {
        {"debug", 0, PGE_LOG_DEBUG},
        {"info", 0, PGE_LOG_INFO},
        {"warn", 0, PGE_LOG_WARN},
        {"warning", 0, PGE_LOG_WARN},
        {"error", 0, PGE_LOG_ERROR},
        {"", -1, 0},
        {"INFO ", -1, 0},
        {"verbose", -1, 0},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        enum pge_log_level l = PGE_LOG_ERROR;
        cr_assert_eq(pge_log_parse_level(levels[i].in, &l), levels[i].rc, "%s", levels[i].in);
        if (levels[i].rc == 0)
            cr_assert_eq(l, levels[i].level, "%s", levels[i].in);
    }
    enum pge_log_format f = PGE_LOG_TEXT;
    cr_assert_eq(pge_log_parse_format("json", &f), 0);
    cr_assert_eq(f, PGE_LOG_JSON);
    cr_assert_eq(pge_log_parse_format("text", &f), 0);
    cr_assert_eq(f, PGE_LOG_TEXT);
    cr_assert_eq(pge_log_parse_format("logfmt", &f), -1);
    cr_assert_eq(pge_log_parse_format("", &f), -1);
}

Test(log, text_values_quoted_when_needed, .timeout = 10)
{
    static const struct {
        const char *value;
        const char *printed;
    } cases[] = {
        {"plain", " k=plain"},
        {"", " k=\"\""},
        {"two words", " k=\"two words\""},
        {"a=b", " k=\"a=b\""},
        {"say \"hi\"", " k=\"say \\\"hi\\\"\""},
        {"back\\slash", " k=\"back\\\\slash\""},
        {"line\nbreak", " k=\"line\\nbreak\""},
        {"tab\there", " k=\"tab\\there\""},
        {"bell\a", " k=\"bell\\u0007\""},
        {"del\x7f", " k=\"del\\u007f\""},
        {"caf\xc3\xa9", " k=caf\xc3\xa9"},
        {"postgres://db:5432/app?x=1", " k=\"postgres://db:5432/app?x=1\""},
    };
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_TEXT);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pge_info("m", PGE_STR("k", cases[i].value));
        char *s = one_line();
        cr_assert(ends_with(s, cases[i].printed), "value \"%s\": %s", cases[i].value, s);
        free(s);
    }
    pge_info("m", PGE_STR("k", NULL));
    char *s = one_line();
    cr_assert(ends_with(s, " k=\"\""), "NULL value: %s", s);
    free(s);
    pgt_logcap_stop();
}

Test(log, text_message_stays_one_line, .timeout = 10)
{
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_TEXT);
    pge_info("first\nsecond\rthird\x01");
    char *s = one_line();
    cr_assert(ends_with(s, "] first\\nsecond?third?"), "%s", s);
    free(s);
    pgt_logcap_stop();
}

Test(log, json_escapes_every_control_character, .timeout = 10)
{
    char value[40];
    for (int c = 1; c < 0x20; c++)
        value[c - 1] = (char)c;
    value[31] = '"';
    value[32] = '\\';
    value[33] = 0x7f;
    value[34] = '/';
    value[35] = '\0';
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_JSON);
    pge_info("quote \" and \\ and \n", PGE_STR("k", value), PGE_STR("key \"q\"", "v"));
    char *s = one_line();
    cr_assert(json_valid(s), "invalid JSON: %s", s);
    assert_contains(s, "\"msg\":\"quote \\\" and \\\\ and \\n\"");
    assert_contains(s, "\"k\":\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008\\t\\n"
                       "\\u000b\\u000c\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014"
                       "\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e"
                       "\\u001f\\\"\\\\\\u007f/\"");
    assert_contains(s, "\"key \\\"q\\\"\":\"v\"");
    free(s);
    pgt_logcap_stop();
}

Test(log, json_stays_valid_utf8_with_foreign_bytes, .timeout = 10)
{
    /* A server message in LATIN1 ("für" as 0xfc), a lone continuation byte, a cut sequence,
     * an overlong '/' and a surrogate: none may make the line invalid JSON. */
    static const char *const values[] = {
        "Passwort f\xfcr Benutzer", "x\x80y", "end\xe2\x82", "\xc0\xaf", "\xed\xa0\x80",
        "ok \xe2\x82\xac"};
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_JSON);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        pge_info(values[i], PGE_STR("k", values[i]));
        char *s = one_line();
        cr_assert(json_valid(s), "invalid JSON for value %zu: %s", i, s);
        free(s);
    }
    pge_info("m", PGE_STR("k", "ok \xe2\x82\xac"), PGE_STR("bad", "x\x80y"));
    expect_line_with("\"k\":\"ok \xe2\x82\xac\",\"bad\":\"x\\ufffdy\"");
}

Test(log, long_value_cut_on_a_character_boundary, .timeout = 10)
{
    /* 2000 bytes of "é" (2 bytes each): the value is cut below 1 KiB, never mid-character. */
    char value[2001];
    for (int i = 0; i < 2000; i += 2) {
        value[i] = (char)0xc3;
        value[i + 1] = (char)0xa9;
    }
    value[2000] = '\0';
    static const enum pge_log_format formats[] = {PGE_LOG_JSON, PGE_LOG_TEXT};
    for (size_t f = 0; f < 2; f++) {
        pgt_logcap_start(PGE_LOG_INFO, formats[f]);
        pge_info("m", PGE_STR("k", value), PGE_STR("after", "kept"));
        char *s = one_line();
        const char *v = strstr(s, formats[f] == PGE_LOG_JSON ? "\"k\":\"" : " k=");
        cr_assert_not_null(v, "%s", s);
        v += formats[f] == PGE_LOG_JSON ? 5 : 3;
        size_t len = strspn(v, "\xc3\xa9");
        cr_assert(len > 900 && len < 1024, "value length %zu", len);
        cr_assert_eq(len % 2, 0, "cut inside a character");
        if (formats[f] == PGE_LOG_JSON)
            cr_assert(json_valid(s), "invalid JSON: %.200s", s);
        assert_contains(s, formats[f] == PGE_LOG_JSON ? "\"after\":\"kept\"" : " after=kept");
        free(s);
        pgt_logcap_stop();
    }
}

Test(log, truncated_line_is_marked_and_valid_json, .timeout = 10)
{
    /* Each value is 1000 quotes (2000 bytes escaped): the 16 KiB line fills up after a few. */
    char value[1001];
    memset(value, '"', 1000);
    value[1000] = '\0';
    static const enum pge_log_format formats[] = {PGE_LOG_JSON, PGE_LOG_TEXT};
    for (size_t f = 0; f < 2; f++) {
        pgt_logcap_start(PGE_LOG_INFO, formats[f]);
        pge_info("big", PGE_STR("a", value), PGE_STR("b", value), PGE_STR("c", value),
                 PGE_STR("d", value), PGE_STR("e", value), PGE_STR("f", value), PGE_STR("g", value),
                 PGE_STR("h", value), PGE_STR("i", value), PGE_STR("j", value), PGE_INT("last", 1));
        char *s = one_line();
        cr_assert(strlen(s) <= 16384, "line of %zu bytes", strlen(s));
        if (formats[f] == PGE_LOG_JSON) {
            cr_assert(json_valid(s), "invalid JSON: ...%s", s + strlen(s) - 80);
            cr_assert(ends_with(s, ",\"truncated\":true}"), "...%s", s + strlen(s) - 40);
        } else {
            cr_assert(ends_with(s, " truncated=true"), "...%s", s + strlen(s) - 40);
        }
        /* Fields are dropped whole: the first ones survive, the last one is gone. */
        cr_assert_null(strstr(s, "last"), "a field after the cut was kept");
        assert_contains(s, formats[f] == PGE_LOG_JSON ? "\"a\":\"\\\"\\\"" : " a=\"\\\"\\\"");
        free(s);
        pgt_logcap_stop();
    }
}

Test(log, long_message_json_valid, .timeout = 10)
{
    char msg[5000];
    memset(msg, '\n', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_JSON);
    pge_info(msg, PGE_STR("k", "v"));
    expect_line_with("\"k\":\"v\"");
}

Test(log, secrets_never_printed, .timeout = 10)
{
    static const enum pge_log_format formats[] = {PGE_LOG_TEXT, PGE_LOG_JSON};
    cr_assert_eq(pge_log_add_secret("hunter2"), 0);
    cr_assert_eq(pge_log_add_secret("p@ss w\"rd"), 0);
    for (size_t f = 0; f < 2; f++) {
        pgt_logcap_start(PGE_LOG_DEBUG, formats[f]);
        pge_error("login hunter2 failed", PGE_STR("url", "postgres://u:hunter2@db/app"),
                  PGE_STR("raw", "p@ss w\"rd"), PGE_STR("twice", "hunter2hunter2"));
        char *s = one_line();
        cr_assert_null(strstr(s, "hunter2"), "secret printed: %s", s);
        cr_assert_null(strstr(s, "p@ss"), "secret printed: %s", s);
        cr_assert_null(strstr(s, "rd"), "part of a secret printed: %s", s);
        assert_contains(s, "login *** failed");
        assert_contains(s, "postgres://u:***@db/app");
        assert_contains(s, "******");
        free(s);
        pgt_logcap_stop();
    }
}

Test(log, secret_that_extends_another_is_hidden_whole, .timeout = 10)
{
    /* The raw and the decoded form of a password can share a prefix: "abc" must not leave
     * the "def" of "abcdef" behind. */
    cr_assert_eq(pge_log_add_secret("abc"), 0);
    cr_assert_eq(pge_log_add_secret("abcdef"), 0);
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_TEXT);
    pge_info("m", PGE_STR("k", "x-abcdef-y"), PGE_STR("j", "abcabc"));
    expect_line_with(" k=x-***-y j=******");
}

Test(log, short_secret_hidden_where_it_stands_as_a_password, .timeout = 10)
{
    /* A 1- or 2-byte password: libpq's reading of "postgres://u:p@ss@h" registers "p". */
    static const enum pge_log_format formats[] = {PGE_LOG_TEXT, PGE_LOG_JSON};
    cr_assert_eq(pge_log_add_secret("pw"), 0);
    cr_assert_eq(pge_log_add_secret("p"), 0);
    for (size_t f = 0; f < 2; f++) {
        pgt_logcap_start(PGE_LOG_INFO, formats[f]);
        pge_info("pw p", PGE_STR("url", "postgres://u:pw@db/app"),
                 PGE_STR("one", "postgres://u:p@db/app"),
                 PGE_STR("query", "postgres://db/app?password=pw&sslmode=disable"),
                 PGE_STR("conninfo", "host=db PASSWORD=p port=1"),
                 PGE_STR("quoted", "host=db password='pw'"), PGE_STR("end", "password=p"),
                 PGE_STR("free", "pwd:pw popular"));
        char *s = one_line();
        assert_contains(s, "postgres://u:***@db/app");
        cr_assert_null(strstr(s, ":pw@"), "%s", s);
        cr_assert_null(strstr(s, ":p@"), "%s", s);
        assert_contains(s, "?password=***&sslmode=disable");
        assert_contains(s, "PASSWORD=*** port=1");
        assert_contains(s, "password='***'");
        assert_contains(s, "password=***");
        /* Free text keeps its short words: "pw" there may be anything. */
        assert_contains(s, "pwd:pw popular");
        assert_contains(s, formats[f] == PGE_LOG_JSON ? "\"msg\":\"pw p\"" : "] pw p ");
        free(s);
        pgt_logcap_stop();
    }
}

Test(log, secret_table_limits, .timeout = 10)
{
    char name[32];
    /* Too short to hide in free text (see below): accepted, and it takes a slot. */
    cr_assert_eq(pge_log_add_secret("ab"), 0);
    cr_assert_eq(pge_log_add_secret(""), 0, "the empty string is not a secret");
    for (int i = 0; i < 15; i++) {
        snprintf(name, sizeof name, "secret-%d", i);
        cr_assert_eq(pge_log_add_secret(name), 0, "%s", name);
    }
    cr_assert_eq(pge_log_add_secret("secret-3"), 0, "a duplicate takes no slot");
    cr_assert_eq(pge_log_add_secret("secret-15"), -1, "seventeenth secret accepted");
    pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_TEXT);
    pge_info("secret-0 secret-14 ab");
    expect_line_with("] *** *** ab");
}

Test(log, secret_at_value_cut_is_not_half_printed, .timeout = 10)
{
    /* The secret starts where the 1 KiB value bound cuts: only stars may come out. */
    char value[1100];
    cr_assert_eq(pge_log_add_secret("TopSecretValue"), 0);
    for (size_t at = 1010; at < 1024; at++) {
        memset(value, 'x', at);
        strcpy(value + at, "TopSecretValue");
        pgt_logcap_start(PGE_LOG_INFO, PGE_LOG_JSON);
        pge_info("m", PGE_STR("k", value));
        char *s = one_line();
        cr_assert_null(strstr(s, "Top"), "secret start printed at %zu", at);
        cr_assert(json_valid(s), "invalid JSON at %zu", at);
        free(s);
        pgt_logcap_stop();
    }
}

Test(log, fmt_ms, .timeout = 10)
{
    static const struct {
        long long ms;
        const char *out;
    } cases[] = {
        {-5, "0ms"},        {0, "0ms"},         {40, "40ms"},         {999, "999ms"},
        {1000, "1s"},       {1500, "1.5s"},     {1250, "1.25s"},      {1001, "1.001s"},
        {59999, "59.999s"}, {60000, "1m00s"},   {123000, "2m03s"},    {3599999, "59m59s"},
        {3600000, "1h00m"}, {5400000, "1h30m"}, {90061000, "25h01m"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        cr_assert_str_eq(pge_log_fmt_ms(cases[i].ms, buf, sizeof buf), cases[i].out, "%lld",
                         cases[i].ms);
    }
}
