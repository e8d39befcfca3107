/* Hide passwords in connection strings and URLs before they reach a log line or a response. */
#include "pgentry/redact.h"

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
    while (s[i] && !isspace((unsigned char)s[i]))
        i++;
    return i;
}

static int is_password_key(const char *k, size_t n)
{
    return n == 8 && strncasecmp(k, "password", 8) == 0;
}

/* Walk a URL, reporting the span of each password: userinfo after ':' and query
 * parameters named password. span(start, len, kind): kind 0 = raw URL text. */
typedef void (*span_fn)(const char *start, size_t len, int in_url, void *arg);

static void url_spans(const char *in, size_t slen, span_fn fn, void *arg)
{
    const char *auth = in + slen;
    /* The authority ends at the first '/', '?' or '#'; userinfo ends at its last '@'. */
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon)
            fn(colon + 1, (size_t)(at - colon - 1), 1, arg);
    }
    const char *q = strchr(auth + alen, '?');
    while (q) {
        const char *k = q + 1;
        size_t klen = strcspn(k, "=&#");
        const char *end = k + strcspn(k, "&#");
        if (k[klen] == '=' && is_password_key(k, klen))
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

struct redact_ctx {
    const char *in;
    const char *cursor;
    struct out *o;
};

static void redact_span(const char *start, size_t len, int in_url, void *arg)
{
    struct redact_ctx *c = arg;
    (void)in_url;
    (void)len;
    emit(c->o, c->cursor, (size_t)(start - c->cursor));
    emit(c->o, MASK, strlen(MASK));
    c->cursor = start + len;
}

char *pge_redact(const char *in, char *out, size_t size)
{
    struct out o = {out, size, 0};
    struct redact_ctx c = {in, in, &o};
    if (size == 0)
        return out;
    for_each_span(in, redact_span, &c);
    emit(&o, c.cursor, strlen(c.cursor));
    out[o.n] = '\0';
    return out;
}

struct each_ctx {
    void (*cb)(const char *, void *);
    void *arg;
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void each_span(const char *start, size_t len, int in_url, void *arg)
{
    struct each_ctx *c = arg;
    char *raw = malloc(len + 1);
    if (!raw)
        return;
    memcpy(raw, start, len);
    raw[len] = '\0';
    if (!in_url && len >= 2 && raw[0] == '\'') {
        /* Quoted conninfo value: drop the quotes and backslash escapes. */
        size_t o = 0;
        for (size_t i = 1; i < len && raw[i] != '\''; i++) {
            if (raw[i] == '\\' && i + 1 < len)
                i++;
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
