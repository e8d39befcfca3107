/* Unit tests for the HTTP request-head parser: every field, every prefix, every limit. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/health/httpreq.h"

#define NOPE ((const char *)0) /* an absent slice */

struct good_case {
    const char *in;
    const char *method, *target, *path, *query;
    int minor, keep_alive, chunked;
    long long content_length;
    const char *host;
    size_t nheaders;
    const char *hdr[8]; /* name, value, name, value… for the first four headers */
};

static const struct good_case good[] = {
    {"GET /livez HTTP/1.1\r\nHost: localhost:8081\r\nUser-Agent: kube-probe/1.29\r\n"
     "Accept: */*\r\nConnection: close\r\n\r\n",
     "GET",
     "/livez",
     "/livez",
     NOPE,
     1,
     0,
     0,
     -1,
     "localhost:8081",
     4,
     {"Host", "localhost:8081", "User-Agent", "kube-probe/1.29", "Accept", "*/*", "Connection",
      "close"}},
    {"HEAD /readyz?verbose HTTP/1.0\r\n\r\n",
     "HEAD",
     "/readyz?verbose",
     "/readyz",
     "verbose",
     0,
     0,
     0,
     -1,
     NOPE,
     0,
     {0}},
    {"GET /status HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     "GET",
     "/status",
     "/status",
     NOPE,
     0,
     1,
     0,
     -1,
     NOPE,
     1,
     {"Connection", "Keep-Alive"}},
    {"GET / HTTP/1.1\n\n", "GET", "/", "/", NOPE, 1, 1, 0, -1, NOPE, 0, {0}},
    {"\r\n\nGET /metrics? HTTP/1.1\r\nX-Empty:\r\nX-Pad: \t  a b \t\r\nhost:h\n\r\n",
     "GET",
     "/metrics?",
     "/metrics",
     "",
     1,
     1,
     0,
     -1,
     "h",
     3,
     {"X-Empty", "", "X-Pad", "a b", "host", "h"}},
    {"OPTIONS * HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
     "OPTIONS",
     "*",
     "*",
     NOPE,
     1,
     1,
     0,
     0,
     NOPE,
     1,
     {"Content-Length", "0"}},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, Upgrade\r\n\r\n",
     "POST",
     "/x",
     "/x",
     NOPE,
     1,
     1,
     1,
     -1,
     NOPE,
     2,
     {"Transfer-Encoding", "chunked", "Connection", "keep-alive, Upgrade"}},
    {"GET /a?b=c&d?e HTTP/1.1\r\nX: caf\xc3\xa9\r\nContent-Length: 12\r\ncontent-length: "
     "12\r\n\r\n",
     "GET",
     "/a?b=c&d?e",
     "/a",
     "b=c&d?e",
     1,
     1,
     0,
     12,
     NOPE,
     3,
     {"X", "caf\xc3\xa9", "Content-Length", "12", "content-length", "12"}},
    {"GET /livez HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
     "GET",
     "/livez",
     "/livez",
     NOPE,
     1,
     0,
     0,
     -1,
     NOPE,
     2,
     {"Connection", "keep-alive", "Connection", "close"}},
    {"M-SEARCH! /%7e~x HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n",
     "M-SEARCH!",
     "/%7e~x",
     "/%7e~x",
     NOPE,
     0,
     0,
     0,
     -1,
     NOPE,
     1,
     {"Connection", "close, keep-alive"}},
};

static void assert_slice(struct pge_httpreq_str s, const char *want, const char *what,
                         const char *in)
{
    if (want == NOPE) {
        cr_assert_null(s.p, "%s present in %s", what, in);
        return;
    }
    cr_assert_not_null(s.p, "%s absent in %s", what, in);
    cr_assert_eq(s.n, strlen(want), "%s length %zu in %s", what, s.n, in);
    cr_assert(memcmp(s.p, want, s.n) == 0, "%s is \"%.*s\" in %s", what, (int)s.n, s.p, in);
}

static void assert_good(const struct good_case *g, const char *buf, size_t len, size_t headlen)
{
    struct pge_httpreq req;
    int r = pge_httpreq_parse(buf, len, &req);
    cr_assert_eq(r, (int)headlen, "parse(%s) = %d", g->in, r);
    assert_slice(req.method, g->method, "method", g->in);
    assert_slice(req.target, g->target, "target", g->in);
    assert_slice(req.path, g->path, "path", g->in);
    assert_slice(req.query, g->query, "query", g->in);
    assert_slice(req.host, g->host, "host", g->in);
    cr_assert_eq(req.minor_version, g->minor, "%s", g->in);
    cr_assert_eq(req.keep_alive, g->keep_alive, "keep_alive of %s", g->in);
    cr_assert_eq(req.chunked, g->chunked, "%s", g->in);
    cr_assert_eq(req.content_length, g->content_length, "%s", g->in);
    cr_assert_eq(req.nheaders, g->nheaders, "nheaders %zu of %s", req.nheaders, g->in);
    for (size_t h = 0; h < g->nheaders && h < 4; h++) {
        assert_slice(req.headers[h].name, g->hdr[2 * h], "header name", g->in);
        assert_slice(req.headers[h].value, g->hdr[2 * h + 1], "header value", g->in);
    }
    /* Slices point into the caller's buffer, not into a copy. */
    cr_assert(req.method.p >= buf && req.method.p < buf + len);
}

Test(httpreq, good_requests_every_field, .timeout = 10)
{
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = strlen(good[i].in);
        assert_good(&good[i], good[i].in, n, n);
    }
}

Test(httpreq, pipelined_bytes_after_the_head_are_not_consumed, .timeout = 10)
{
    char buf[2048];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = strlen(good[i].in);
        memcpy(buf, good[i].in, n);
        memcpy(buf + n, "GET /next HTTP/1.1\r\n", 20);
        assert_good(&good[i], buf, n + 20, n);
    }
}

Test(httpreq, every_truncated_prefix_is_partial, .timeout = 10)
{
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = strlen(good[i].in);
        /* A heap copy of exactly len bytes: ASan catches any read past the prefix. */
        for (size_t len = 0; len < n; len++) {
            struct pge_httpreq req;
            char *p = malloc(len ? len : 1);
            memcpy(p, good[i].in, len);
            int r = pge_httpreq_parse(p, len, &req);
            free(p);
            cr_assert_eq(r, PGE_HTTPREQ_PARTIAL, "prefix %zu of %s gave %d", len, good[i].in, r);
        }
    }
}

struct bad_case {
    const char *in;
    size_t len; /* 0: strlen */
};

#define BIN(s)                                                                                     \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }

static const struct bad_case bad[] = {
    {"GET  /x HTTP/1.1\r\n\r\n", 0},
    {"GET /x HTTP/1.2\r\n\r\n", 0},
    {"GET /x HTTP/2.0\r\n\r\n", 0},
    {"GET /x HTTP/1.1 \r\n\r\n", 0},
    {"GET /x http/1.1\r\n\r\n", 0},
    {"GET http://a/x HTTP/1.1\r\n\r\n", 0},
    {"GET x HTTP/1.1\r\n\r\n", 0},
    {"GET /x#frag HTTP/1.1\r\n\r\n", 0},
    {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 0},
    {"G\tET /x HTTP/1.1\r\n\r\n", 0},
    {" GET /x HTTP/1.1\r\n\r\n", 0},
    {"GET /x\x7f HTTP/1.1\r\n\r\n", 0},
    BIN("GET /x\0y HTTP/1.1\r\n\r\n"),
    BIN("GET /x HTTP/1.1\r\nX: a\0b\r\n\r\n"),
    BIN("\0"),
    {"GET /x HTTP/1.1\r\nX : a\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\n\tfolded: a\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\n: a\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nX\r\n\r\n", 0},
    {"GET /x HTTP/1.1\rX: a\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nX: a\rb\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\n\r\r\n", 0},
    {"GET /x HTTP/1.1\r\nX: \x7f\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nX: \x01\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\n\x01\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: \r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
    {"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11},
    {"\r\r\n", 0},
};

Test(httpreq, malformed_requests_are_bad, .timeout = 10)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pge_httpreq req;
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].in);
        int r = pge_httpreq_parse(bad[i].in, n, &req);
        cr_assert_eq(r, PGE_HTTPREQ_BAD, "case %zu (%s) gave %d", i, bad[i].in, r);
    }
}

Test(httpreq, garbage_is_bad_before_the_head_ends, .timeout = 10)
{
    struct pge_httpreq req;
    /* A TLS hello, a NUL in the path, a folded line: judged at the offending byte. */
    cr_assert_eq(pge_httpreq_parse("\x16\x03", 2, &req), PGE_HTTPREQ_BAD);
    cr_assert_eq(pge_httpreq_parse("GET /x\0", 7, &req), PGE_HTTPREQ_BAD);
    cr_assert_eq(pge_httpreq_parse("GET /x HTTP/1.1\r\n ", 18, &req), PGE_HTTPREQ_BAD);
    cr_assert_eq(pge_httpreq_parse("GET /x HTTP/3", 13, &req), PGE_HTTPREQ_BAD);
}

/* A request line exactly `total` bytes long (CRLF included), followed by the empty line. */
static char *line_of(size_t total)
{
    const char *pre = "GET /", *post = " HTTP/1.1\r\n";
    size_t fill = total - strlen(pre) - strlen(post);
    char *s = malloc(total + 3);
    strcpy(s, pre);
    memset(s + strlen(pre), 'a', fill);
    strcpy(s + strlen(pre) + fill, post);
    strcat(s, "\r\n");
    return s;
}

/* A head whose header section (one header plus the empty line) is exactly `total` bytes. */
static char *headers_of(size_t total)
{
    const char *line = "GET / HTTP/1.1\r\n";
    size_t fill = total - strlen("X: \r\n\r\n");
    char *s = malloc(strlen(line) + total + 1);
    strcpy(s, line);
    strcat(s, "X: ");
    size_t n = strlen(s);
    memset(s + n, 'v', fill);
    strcpy(s + n + fill, "\r\n\r\n");
    return s;
}

static void assert_all_prefixes_partial(const char *s, size_t n)
{
    struct pge_httpreq req;
    for (size_t len = 0; len < n; len++)
        cr_assert_eq(pge_httpreq_parse(s, len, &req), PGE_HTTPREQ_PARTIAL, "prefix %zu", len);
}

Test(httpreq, request_line_limit, .timeout = 10)
{
    struct pge_httpreq req;
    char *ok = line_of(PGE_HTTPREQ_LINE_MAX);
    char *big = line_of(PGE_HTTPREQ_LINE_MAX + 1);
    cr_assert_eq(pge_httpreq_parse(ok, strlen(ok), &req), (int)strlen(ok));
    cr_assert_eq(req.path.n, PGE_HTTPREQ_LINE_MAX - strlen("GET  HTTP/1.1\r\n"));
    assert_all_prefixes_partial(ok, strlen(ok));
    cr_assert_eq(pge_httpreq_parse(big, strlen(big), &req), PGE_HTTPREQ_TOO_LARGE);
    /* Known as soon as the limit is reached, before the line ends. */
    cr_assert_eq(pge_httpreq_parse(big, PGE_HTTPREQ_LINE_MAX, &req), PGE_HTTPREQ_TOO_LARGE);
    cr_assert_eq(pge_httpreq_parse(big, PGE_HTTPREQ_LINE_MAX - 1, &req), PGE_HTTPREQ_PARTIAL);
    free(ok);
    free(big);
}

Test(httpreq, header_section_limit, .timeout = 10)
{
    struct pge_httpreq req;
    char *ok = headers_of(PGE_HTTPREQ_HEADERS_MAX);
    char *big = headers_of(PGE_HTTPREQ_HEADERS_MAX + 1);
    size_t line = strlen("GET / HTTP/1.1\r\n");
    cr_assert_eq(pge_httpreq_parse(ok, strlen(ok), &req), (int)strlen(ok));
    cr_assert_eq(req.headers[0].value.n, PGE_HTTPREQ_HEADERS_MAX - 7);
    assert_all_prefixes_partial(ok, strlen(ok));
    cr_assert_eq(pge_httpreq_parse(big, strlen(big), &req), PGE_HTTPREQ_TOO_LARGE);
    cr_assert_eq(pge_httpreq_parse(big, line + PGE_HTTPREQ_HEADERS_MAX, &req),
                 PGE_HTTPREQ_TOO_LARGE);
    free(ok);
    free(big);
}

Test(httpreq, header_count_limit, .timeout = 10)
{
    struct pge_httpreq req;
    char buf[4096];
    strcpy(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < PGE_HTTPREQ_NHEADERS_MAX; i++)
        sprintf(buf + strlen(buf), "H%d: %d\r\n", i, i);
    size_t n = strlen(buf);
    strcpy(buf + n, "\r\n");
    cr_assert_eq(pge_httpreq_parse(buf, n + 2, &req), (int)(n + 2));
    cr_assert_eq(req.nheaders, PGE_HTTPREQ_NHEADERS_MAX);
    assert_slice(req.headers[31].name, "H31", "last name", buf);
    assert_slice(req.headers[31].value, "31", "last value", buf);
    strcpy(buf + n, "One-More: x\r\n\r\n");
    cr_assert_eq(pge_httpreq_parse(buf, strlen(buf), &req), PGE_HTTPREQ_TOO_LARGE);
    cr_assert_eq(pge_httpreq_parse(buf, n + 1, &req), PGE_HTTPREQ_TOO_LARGE);
}

Test(httpreq, megabyte_header_is_too_large, .timeout = 10)
{
    struct pge_httpreq req;
    size_t n = 1 << 20;
    char *s = malloc(n);
    memcpy(s, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memset(s + 23, 'x', n - 23);
    cr_assert_eq(pge_httpreq_parse(s, n, &req), PGE_HTTPREQ_TOO_LARGE);
    free(s);
}

Test(httpreq, str_eq, .timeout = 5)
{
    struct pge_httpreq_str a = {"GETX", 3}, none = {NULL, 0};
    cr_assert(pge_httpreq_str_eq(a, "GET"));
    cr_assert_not(pge_httpreq_str_eq(a, "GETX"));
    cr_assert_not(pge_httpreq_str_eq(a, "get"));
    cr_assert_not(pge_httpreq_str_eq(none, ""));
}

/* Feed s one byte at a time through pge_httpreq_parse_next: every verdict it gives must be the
 * one-shot parser's for that prefix. Returns the last result. */
static int trickle(const char *s, size_t n)
{
    struct pge_httpreq inc, once;
    size_t scanned = 0;
    int r = PGE_HTTPREQ_PARTIAL;
    for (size_t k = 1; k <= n; k++) {
        r = pge_httpreq_parse_next(s, k, &scanned, &inc);
        cr_assert_eq(scanned, k);
        if (r == PGE_HTTPREQ_PARTIAL)
            continue;
        int want = pge_httpreq_parse(s, k, &once);
        cr_assert_eq(r, want, "prefix %zu of %.40s: %d, one-shot %d", k, s, r, want);
        if (r > 0)
            cr_assert_eq(memcmp(&inc, &once, sizeof inc), 0, "prefix %zu: other fields", k);
        return r;
    }
    return r;
}

Test(httpreq, trickled_heads_end_as_the_one_shot_parse, .timeout = 10)
{
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = strlen(good[i].in);
        struct pge_httpreq req;
        int want = pge_httpreq_parse(good[i].in, n, &req);
        cr_assert_gt(want, 0);
        cr_assert_eq(trickle(good[i].in, n), want, "case %zu", i);
    }
    /* Every malformed head is still refused by the time it ends. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].in);
        char buf[2048];
        cr_assert_lt(n + 4, sizeof buf);
        memcpy(buf, bad[i].in, n);
        memcpy(buf + n, "\r\n\r\n", 4);
        int r = trickle(buf, n + 4);
        cr_assert(r == PGE_HTTPREQ_BAD || r == PGE_HTTPREQ_TOO_LARGE, "case %zu gave %d", i, r);
    }
}

Test(httpreq, trickled_limits_and_garbage_are_judged_without_the_end, .timeout = 10)
{
    char *line = line_of(PGE_HTTPREQ_LINE_MAX + 1);
    char *hdrs = headers_of(PGE_HTTPREQ_HEADERS_MAX + 1);
    cr_assert_eq(trickle(line, PGE_HTTPREQ_LINE_MAX + 1), PGE_HTTPREQ_TOO_LARGE);
    cr_assert_eq(trickle(hdrs, strlen(hdrs)), PGE_HTTPREQ_TOO_LARGE);
    cr_assert_eq(trickle("\x16\x03\x01", 3), PGE_HTTPREQ_BAD);
    cr_assert_eq(trickle("GET /x\0", 7), PGE_HTTPREQ_BAD);
    free(line);
    free(hdrs);
    /* After a consumed request the caller starts again from 0: a full parse. */
    struct pge_httpreq req;
    size_t scanned = 0;
    const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    cr_assert_eq(pge_httpreq_parse_next(two, strlen(two), &scanned, &req), 19);
    scanned = 0;
    cr_assert_eq(pge_httpreq_parse_next(two + 19, 19, &scanned, &req), 19);
    assert_slice(req.path, "/b", "path", two + 19);
}
