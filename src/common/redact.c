/* Hide passwords in connection strings and URLs before they reach a log line or a response. */
#include "pgentry/common/redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MASK "***"

struct out {
    char *b;
    size_t size;
    size_t n;
};

static void emit(struct out *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len && o->n + 1 < o->size; i++)
        o->b[o->n++] = s[i];
}

/* "scheme://": letters, digits, + - . then "://". Returns the length up to after "//". */
static size_t scheme_len(const char *s)
{
    size_t i = 0;
    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    if (strncmp(s + i, "://", 3) != 0)
        return 0;
    return i + 3;
}

/* Length of a key=value conninfo value starting at s (quoted or bare). */
static size_t conninfo_value_len(const char *s)
{
    size_t i = 0;
    if (s[0] == '\'') {
        i = 1;
        while (s[i] && s[i] != '\'') {
            if (s[i] == '\\' && s[i + 1])
                i++;
            i++;
        }
        if (s[i] == '\'')
            i++;
        return i;
    }
    /* libpq honours backslash escapes in bare values too: "a\\ b" is one value. */
    while (s[i] && !isspace((unsigned char)s[i])) {
        if (s[i] == '\\' && s[i + 1])
            i++;
        i++;
    }
    return i;
}

static int is_password_key(const char *k, size_t n)
{
    return n == 8 && strncasecmp(k, "password", 8) == 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A URL query key, percent-decoded as libpq does ("pass%77ord" is "password"). */
static int is_url_password_key(const char *k, size_t n)
{
    char key[9];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (o == sizeof key - 1)
            return 0;
        if (k[i] == '%' && i + 2 < n && (h = hexval(k[i + 1])) >= 0 &&
            (l = hexval(k[i + 2])) >= 0) {
            key[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            key[o++] = k[i];
        }
    }
    return is_password_key(key, o);
}

/* Walk a URL, reporting the span of each password: userinfo after ':' and query
 * parameters named password. in_url: 0 conninfo value, 1 URL text (percent-encoded). */
typedef void (*span_fn)(const char *start, size_t len, int in_url, void *arg);

#define SPAN_REPORT_ONLY 2 /* in_url value: a password to report, inside a span already masked */

static void url_spans(const char *in, size_t slen, span_fn fn, void *arg)
{
    const char *auth = in + slen;
    /* libpq looks for the user part up to the first '/' only: '?', '#' and ':' before the
     * '@' belong to the password. Userinfo ends at the last '@' (libpq takes the first; hiding
     * up to the last covers both readings). */
    size_t alen = strcspn(auth, "/");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *first_at = memchr(auth, '@', alen);
        if (colon)
            fn(colon + 1, (size_t)(at - colon - 1), 1, arg);
        /* libpq's own reading, for the scrubber only (the mask above already covers it). */
        if (colon && colon < first_at && first_at != at)
            fn(colon + 1, (size_t)(first_at - colon - 1), SPAN_REPORT_ONLY, arg);
    }
    /* The query starts after libpq's user part (up to the first '@'), so it may overlap the
     * span above; a value runs to the next '&' (no fragments). */
    const char *first_at = at ? memchr(auth, '@', alen) : NULL;
    const char *q = strchr(first_at ? first_at + 1 : auth, '?');
    while (q) {
        const char *k = q + 1;
        size_t klen = strcspn(k, "=&");
        const char *end = k + strcspn(k, "&");
        if (k[klen] == '=' && is_url_password_key(k, klen))
            fn(k + klen + 1, (size_t)(end - (k + klen + 1)), 1, arg);
        q = *end == '&' ? end : NULL;
    }
}

static void conninfo_spans(const char *in, span_fn fn, void *arg)
{
    const char *p = in;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        const char *k = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - k);
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=') {
            if (klen == 0 && *p)
                p++;
            continue;
        }
        p++;
        while (isspace((unsigned char)*p))
            p++;
        size_t vlen = conninfo_value_len(p);
        if (is_password_key(k, klen))
            fn(p, vlen, 0, arg);
        p += vlen;
    }
}

static void for_each_span(const char *in, span_fn fn, void *arg)
{
    size_t slen = scheme_len(in);
    if (slen)
        url_spans(in, slen, fn, arg);
    else
        conninfo_spans(in, fn, arg);
}

#define MAX_SPANS 16

/* The spans to mask, in any order and possibly overlapping (a URL is read both ways). */
struct span {
    const char *start, *end;
};

struct redact_ctx {
    struct span spans[MAX_SPANS + 1];
    size_t n;
    const char *overflow; /* earliest span that did not fit: masked to the end of input */
};

static void collect_span(const char *start, size_t len, int in_url, void *arg)
{
    struct redact_ctx *c = arg;
    if (in_url == SPAN_REPORT_ONLY)
        return;
    if (c->n == MAX_SPANS) {
        if (!c->overflow || start < c->overflow)
            c->overflow = start;
        return;
    }
    c->spans[c->n++] = (struct span){start, start + len};
}

char *pge_redact(const char *in, char *out, size_t size)
{
    struct out o = {out, size, 0};
    struct redact_ctx c = {.n = 0, .overflow = NULL};
    const char *cursor = in;
    int masked = 0;
    if (size == 0)
        return out;
    for_each_span(in, collect_span, &c);
    if (c.overflow)
        c.spans[c.n++] = (struct span){c.overflow, in + strlen(in)};
    /* In order of start; a span that overlaps or touches the previous mask extends it. */
    for (size_t i = 1; i < c.n; i++)
        for (size_t k = i; k > 0 && c.spans[k].start < c.spans[k - 1].start; k--) {
            struct span t = c.spans[k];
            c.spans[k] = c.spans[k - 1];
            c.spans[k - 1] = t;
        }
    for (size_t i = 0; i < c.n; i++) {
        if (masked && c.spans[i].start <= cursor) {
            if (c.spans[i].end > cursor)
                cursor = c.spans[i].end;
            continue;
        }
        emit(&o, cursor, (size_t)(c.spans[i].start - cursor));
        emit(&o, MASK, strlen(MASK));
        cursor = c.spans[i].end;
        masked = 1;
    }
    emit(&o, cursor, strlen(cursor));
    out[o.n] = '\0';
    return out;
}

struct each_ctx {
    void (*cb)(const char *, void *);
    void *arg;
};

static void each_span(const char *start, size_t len, int in_url, void *arg)
{
    struct each_ctx *c = arg;
    char *raw = malloc(len + 1);
    if (!raw)
        return;
    memcpy(raw, start, len);
    raw[len] = '\0';
    if (!in_url) {
        /* A conninfo value as libpq reads it: quotes dropped, backslash escapes undone
         * (quoted or bare). */
        int quoted = raw[0] == '\'';
        size_t o = 0;
        for (size_t i = quoted; i < len && !(quoted && raw[i] == '\''); i++) {
            /* A backslash takes the next byte literally; a trailing one is dropped. */
            if (raw[i] == '\\' && ++i == len)
                break;
            raw[o++] = raw[i];
        }
        raw[o] = '\0';
    }
    c->cb(raw, c->arg);
    if (in_url && strchr(raw, '%')) {
        size_t o = 0;
        for (size_t i = 0; raw[i]; i++) {
            int h, l;
            if (raw[i] == '%' && (h = hexval(raw[i + 1])) >= 0 && (l = hexval(raw[i + 2])) >= 0) {
                raw[o++] = (char)(h * 16 + l);
                i += 2;
            } else {
                raw[o++] = raw[i];
            }
        }
        raw[o] = '\0';
        c->cb(raw, c->arg);
    }
    free(raw);
}

void pge_redact_each_password(const char *in, void (*cb)(const char *password, void *arg),
                              void *arg)
{
    struct each_ctx c = {cb, arg};
    for_each_span(in, each_span, &c);
}
