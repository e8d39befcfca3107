/* Unit tests for the bounded builder and JSON string escaping: tables, every cut and bound. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/common/json.h"

/* s as a JSON string into out (NUL-terminated); the builder's overflow flag is returned. */
static int escape(const char *s, char *out, size_t cap)
{
    struct pge_json_buf b = PGE_JSON_BUF(out, cap - 1);
    pge_json_string(&b, s);
    out[b.len] = '\0';
    return b.overflow;
}

Test(json, escapes_table, .timeout = 5)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", "\"\""},
        {"plain", "\"plain\""},
        {"a\"b", "\"a\\\"b\""},
        {"a\\b", "\"a\\\\b\""},
        {"/", "\"/\""},
        {"\n\r\t", "\"\\n\\r\\t\""},
        {"\x01\x08\x0c\x1f", "\"\\u0001\\u0008\\u000c\\u001f\""},
        {"\x7f", "\"\\u007f\""},
        {" ~", "\" ~\""},
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},                       /* 2 bytes */
        {"\xe2\x82\xac", "\"\xe2\x82\xac\""},                     /* 3 bytes */
        {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},             /* 4 bytes */
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},             /* U+10FFFF */
        {"\xff", "\"\\ufffd\""},                                  /* never valid */
        {"x\x80y", "\"x\\ufffdy\""},                              /* lone continuation */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},            /* surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"\xf5\x80", "\"\\ufffd\\ufffd\""},
        {"f\xfcr", "\"f\\ufffdr\""},              /* LATIN1 */
        {"end\xe2\x82", "\"end\\ufffd\\ufffd\""}, /* cut sequence */
        {"\xc3(", "\"\\ufffd(\""},
    };
    char out[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(escape(cases[i].in, out, sizeof out), 0, "case %zu", i);
        cr_assert_str_eq(out, cases[i].out, "case %zu", i);
    }
}

Test(json, every_control_byte_is_escaped, .timeout = 5)
{
    char in[2] = {0}, out[16], want[16];
    for (int c = 1; c < 0x20; c++) {
        in[0] = (char)c;
        escape(in, out, sizeof out);
        if (c == '\n' || c == '\r' || c == '\t')
            continue;
        snprintf(want, sizeof want, "\"\\u%04x\"", c);
        cr_assert_str_eq(out, want, "byte %d", c);
    }
}

Test(json, utf8_len_table, .timeout = 5)
{
    static const struct {
        const char *in;
        size_t len;
    } cases[] = {
        {"", 1},
        {"a", 1},
        {"\x7f", 1},
        {"\xc2\x80", 2},
        {"\xdf\xbf", 2},
        {"\xc1\xbf", 0},
        {"\xe0\xa0\x80", 3},
        {"\xe0\x9f\xbf", 0},
        {"\xed\x9f\xbf", 3},
        {"\xed\xa0\x80", 0},
        {"\xef\xbf\xbf", 3},
        {"\xf0\x90\x80\x80", 4},
        {"\xf0\x8f\xbf\xbf", 0},
        {"\xf4\x8f\xbf\xbf", 4},
        {"\xf4\x90\x80\x80", 0},
        {"\xf8\x88\x80\x80\x80", 0},
        {"\x80", 0},
        {"\xc3", 0},
        {"\xe2\x82", 0},
        {"\xf0\x9f\x98", 0},
        {"\xe2(\xac", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(pge_json_utf8_len(cases[i].in), cases[i].len, "case %zu", i);
}

/* Every truncated prefix of a string with every kind of sequence: a cut multi-byte sequence
 * becomes U+FFFD per byte, the output is always the escape of what is left, and never reads
 * past the NUL (ASan would say so). */
Test(json, every_truncated_prefix, .timeout = 5)
{
    static const char full[] = "a\"\\\n\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    static const char *const pieces[] = {
        "a", "\\\"", "\\\\", "\\n", "\\u0001", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "z"};
    static const size_t piece_in[] = {1, 1, 1, 1, 1, 2, 3, 4, 1};
    char in[sizeof full], out[256], want[256];
    for (size_t n = 0; n < sizeof full; n++) {
        size_t used = 0, w = 0;
        memcpy(in, full, n);
        in[n] = '\0';
        want[w++] = '"';
        for (size_t k = 0; k < sizeof pieces / sizeof pieces[0] && used < n; k++) {
            if (used + piece_in[k] <= n) {
                w += (size_t)sprintf(want + w, "%s", pieces[k]);
            } else {
                for (size_t j = used; j < n; j++) /* the cut sequence */
                    w += (size_t)sprintf(want + w, "\\ufffd");
            }
            used += piece_in[k];
        }
        want[w++] = '"';
        want[w] = '\0';
        cr_assert_eq(escape(in, out, sizeof out), 0);
        cr_assert_str_eq(out, want, "prefix of %zu bytes", n);
    }
}

/* Every capacity below what the text needs overflows and stays inside the buffer; exactly
 * enough does not. */
Test(json, bounded_at_every_capacity, .timeout = 5)
{
    static const char s[] = "q\"\x01\xc3\xa9\xff";
    char want[64], buf[64];
    struct pge_json_buf b = PGE_JSON_BUF(want, sizeof want);
    pge_json_string(&b, s);
    cr_assert_eq(b.overflow, 0);
    size_t need = b.len;
    for (size_t cap = 0; cap <= need; cap++) {
        memset(buf, '#', sizeof buf);
        struct pge_json_buf c = PGE_JSON_BUF(buf, cap);
        pge_json_string(&c, s);
        cr_assert_eq(c.overflow, cap < need, "cap %zu", cap);
        cr_assert_leq(c.len, cap);
        for (size_t i = cap; i < sizeof buf; i++)
            cr_assert_eq(buf[i], '#', "cap %zu: byte %zu written", cap, i);
        if (cap == need)
            cr_assert_eq(memcmp(buf, want, need), 0);
    }
}

Test(json, appends_are_all_or_nothing_and_overflow_sticks, .timeout = 5)
{
    char buf[8];
    struct pge_json_buf b = PGE_JSON_BUF(buf, sizeof buf);
    pge_json_puts(&b, "abc");
    pge_json_printf(&b, "%d", 12);
    cr_assert_eq(b.len, 5);
    pge_json_puts(&b, "wxyz"); /* does not fit: nothing of it is kept */
    cr_assert(b.overflow);
    cr_assert_eq(b.len, 5);
    pge_json_put(&b, "z", 1); /* would fit, but the text is already broken */
    cr_assert_eq(b.len, 5);
    cr_assert_eq(memcmp(buf, "abc12", 5), 0);

    struct pge_json_buf p = PGE_JSON_BUF(buf, 4);
    /* printf needs one byte more than its text: vsnprintf writes a NUL. */
    pge_json_printf(&p, "%s", "abcd");
    cr_assert(p.overflow);
    struct pge_json_buf z = PGE_JSON_BUF(buf, 0);
    pge_json_printf(&z, "%s", "");
    cr_assert(z.overflow);
}
