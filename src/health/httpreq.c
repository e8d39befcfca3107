/* HTTP/1.x request-head parser: pure, bounded, never allocates; results point into the input. */
#include "pgentry/health/httpreq.h"

#include <string.h>
#include <strings.h>

/* A cursor over the input with the byte limit of the section being read. */
struct cursor {
    const unsigned char *b;
    size_t len;
    size_t i;
    size_t limit;
};

/* The byte at the cursor, or PARTIAL when the input ends first, or TOO_LARGE when the section
 * needs a byte beyond its limit (known before that byte arrives, so the caller answers early). */
static int peek(const struct cursor *c)
{
    if (c->i >= c->limit)
        return PGE_HTTPREQ_TOO_LARGE;
    if (c->i >= c->len)
        return PGE_HTTPREQ_PARTIAL;
    return c->b[c->i];
}

/* RFC 9110 tchar. */
static int is_tchar(int ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Consume a line ending at the cursor: CRLF or a bare LF. Returns 1 when one was consumed,
 * 0 when the byte is something else, or a negative parse result. */
static int eat_eol(struct cursor *c)
{
    int ch = peek(c);
    if (ch < 0)
        return ch;
    if (ch == '\n') {
        c->i++;
        return 1;
    }
    if (ch != '\r')
        return 0;
    c->i++;
    ch = peek(c);
    if (ch < 0)
        return ch;
    if (ch != '\n')
        return PGE_HTTPREQ_BAD; /* a bare CR smuggles line breaks past lenient peers */
    c->i++;
    return 1;
}

/* Consume the fixed string s, byte by byte, so that its prefixes are PARTIAL. */
static int expect(struct cursor *c, const char *s)
{
    for (; *s; s++) {
        int ch = peek(c);
        if (ch < 0)
            return ch;
        if (ch != (unsigned char)*s)
            return PGE_HTTPREQ_BAD;
        c->i++;
    }
    return 0;
}

static struct pge_httpreq_str slice(const struct cursor *c, size_t from, size_t to)
{
    struct pge_httpreq_str s = {(const char *)c->b + from, to - from};
    return s;
}

static int ieq(struct pge_httpreq_str a, const char *s)
{
    return a.n == strlen(s) && strncasecmp(a.p, s, a.n) == 0;
}

int pge_httpreq_str_eq(struct pge_httpreq_str a, const char *s)
{
    return a.p != NULL && a.n == strlen(s) && memcmp(a.p, s, a.n) == 0;
}

static int parse_request_line(struct cursor *c, struct pge_httpreq *req)
{
    size_t start;
    int ch, r;

    /* RFC 9112 2.2: ignore empty lines before the request line (they count toward its limit). */
    while ((r = eat_eol(c)) == 1)
        ;
    if (r < 0)
        return r;

    start = c->i;
    while ((ch = peek(c)) >= 0 && is_tchar(ch))
        c->i++;
    if (ch < 0)
        return ch;
    if (ch != ' ' || c->i == start)
        return PGE_HTTPREQ_BAD;
    req->method = slice(c, start, c->i);
    c->i++;

    start = c->i;
    ch = peek(c);
    if (ch < 0)
        return ch;
    if (ch == '*') {
        c->i++;
    } else if (ch == '/') {
        size_t qmark = 0;
        /* Visible ASCII only; a fragment is never sent on the wire. */
        while ((ch = peek(c)) > ' ' && ch < 0x7f && ch != '#') {
            if (ch == '?' && qmark == 0)
                qmark = c->i;
            c->i++;
        }
        if (ch < 0)
            return ch;
        req->path = slice(c, start, qmark ? qmark : c->i);
        if (qmark)
            req->query = slice(c, qmark + 1, c->i);
    } else {
        return PGE_HTTPREQ_BAD;
    }
    req->target = slice(c, start, c->i);
    if (req->path.p == NULL)
        req->path = req->target;

    if ((r = expect(c, " HTTP/1.")) < 0)
        return r;
    ch = peek(c);
    if (ch < 0)
        return ch;
    if (ch != '0' && ch != '1')
        return PGE_HTTPREQ_BAD;
    req->minor_version = ch - '0';
    c->i++;
    r = eat_eol(c);
    if (r < 0)
        return r;
    return r == 1 ? 0 : PGE_HTTPREQ_BAD;
}

/* Content-Length: digits only, bounded; a repeat must agree (RFC 9112 6.3). */
static int set_content_length(struct pge_httpreq_str v, struct pge_httpreq *req)
{
    long long n = 0;
    if (v.n == 0 || v.n > 18)
        return PGE_HTTPREQ_BAD;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return PGE_HTTPREQ_BAD;
        n = n * 10 + (v.p[i] - '0');
    }
    if (req->content_length >= 0 && req->content_length != n)
        return PGE_HTTPREQ_BAD;
    req->content_length = n;
    return 0;
}

/* Connection: a comma-separated token list; only "close" and "keep-alive" matter. */
static void scan_connection(struct pge_httpreq_str v, int *close_seen, int *ka_seen)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ',' || v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        size_t start = i;
        while (i < v.n && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        struct pge_httpreq_str tok = {v.p + start, i - start};
        if (ieq(tok, "close"))
            *close_seen = 1;
        else if (ieq(tok, "keep-alive"))
            *ka_seen = 1;
    }
}

/* One header line (the cursor is on its first byte, which is not a line ending). */
static int parse_header(struct cursor *c, struct pge_httpreq *req)
{
    struct pge_httpreq_header *h;
    size_t start, last;
    int ch, r;

    ch = peek(c);
    if (ch < 0)
        return ch;
    if (ch == ' ' || ch == '\t')
        return PGE_HTTPREQ_BAD; /* obs-fold (RFC 9112 5.2) */
    if (req->nheaders == PGE_HTTPREQ_NHEADERS_MAX)
        return PGE_HTTPREQ_TOO_LARGE;
    h = &req->headers[req->nheaders];

    start = c->i;
    while ((ch = peek(c)) >= 0 && is_tchar(ch))
        c->i++;
    if (ch < 0)
        return ch;
    if (ch != ':' || c->i == start)
        return PGE_HTTPREQ_BAD; /* includes whitespace before the colon (RFC 9112 5.1) */
    h->name = slice(c, start, c->i);
    c->i++;

    while ((ch = peek(c)) == ' ' || ch == '\t')
        c->i++;
    start = last = c->i;
    /* Field content: visible bytes, obs-text, blanks; never NUL, CR alone or other controls. */
    while ((ch = peek(c)) >= 0 && (ch == '\t' || (ch >= ' ' && ch != 0x7f))) {
        c->i++;
        if (ch != ' ' && ch != '\t')
            last = c->i;
    }
    if (ch < 0)
        return ch;
    h->value = slice(c, start, last);
    r = eat_eol(c);
    if (r < 0)
        return r;
    if (r == 0)
        return PGE_HTTPREQ_BAD;
    req->nheaders++;
    return 0;
}

/* Apply the headers the server acts on, after the whole head is known to be well-formed. */
static int apply_headers(struct pge_httpreq *req)
{
    int close_seen = 0, ka_seen = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct pge_httpreq_header *h = &req->headers[i];
        if (ieq(h->name, "connection")) {
            scan_connection(h->value, &close_seen, &ka_seen);
        } else if (ieq(h->name, "content-length")) {
            if (set_content_length(h->value, req) < 0)
                return PGE_HTTPREQ_BAD;
        } else if (ieq(h->name, "transfer-encoding")) {
            req->chunked = 1;
        } else if (ieq(h->name, "host")) {
            if (req->host.p != NULL)
                return PGE_HTTPREQ_BAD;
            req->host = h->value;
        }
    }
    /* Both framings at once is the classic request-smuggling shape (RFC 9112 6.1). */
    if (req->chunked && req->content_length >= 0)
        return PGE_HTTPREQ_BAD;
    if (req->minor_version == 1)
        req->keep_alive = !close_seen;
    else
        req->keep_alive = ka_seen && !close_seen;
    return 0;
}

int pge_httpreq_parse(const char *buf, size_t len, struct pge_httpreq *req)
{
    struct cursor c = {(const unsigned char *)buf, len, 0, PGE_HTTPREQ_LINE_MAX};
    int r;

    memset(req, 0, sizeof *req);
    req->content_length = -1;
    if ((r = parse_request_line(&c, req)) < 0)
        return r;
    c.limit = c.i + PGE_HTTPREQ_HEADERS_MAX;
    while ((r = eat_eol(&c)) == 0) {
        if ((r = parse_header(&c, req)) < 0)
            return r;
    }
    if (r < 0)
        return r;
    if ((r = apply_headers(req)) < 0)
        return r;
    return (int)c.i;
}

/* Whether the bytes from `from` on can turn a PARTIAL head into a verdict: the end of the head
 * ("\n\n" or "\n\r\n", which may start in the two bytes before), a byte never allowed in a
 * head, or a length limit passed. */
static int decisive(const unsigned char *b, size_t from, size_t len)
{
    if ((from <= PGE_HTTPREQ_LINE_MAX && len > PGE_HTTPREQ_LINE_MAX) || len > PGE_HTTPREQ_HEAD_MAX)
        return 1;
    for (size_t i = from >= 2 ? from - 2 : 0; i < len; i++) {
        if (i >= from &&
            ((b[i] < ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n') || b[i] == 0x7f))
            return 1;
        if (b[i] == '\n' && i + 1 < len &&
            (b[i + 1] == '\n' || (b[i + 1] == '\r' && i + 2 < len && b[i + 2] == '\n')))
            return 1;
    }
    return 0;
}

int pge_httpreq_parse_next(const char *buf, size_t len, size_t *scanned, struct pge_httpreq *req)
{
    size_t from = *scanned;
    *scanned = len;
    if (from == 0 || from >= len || decisive((const unsigned char *)buf, from, len))
        return pge_httpreq_parse(buf, len, req);
    return PGE_HTTPREQ_PARTIAL;
}
