/* Hide passwords in connection strings and URLs before they reach a log line or a response. */
#include "pgentry/common/redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "redact_int.h"

/* What a span of the input is to the two readers of the spans. */
#define SPAN_MASK   1 /* hidden by pge_redact() */
#define SPAN_REPORT 2 /* reported by pge_redact_each_password() */
#define SPAN_URL    4 /* URL text: also reported percent-decoded */
#define SPAN_VALUE  8 /* a conninfo value: reported as libpq reads it (quotes, escapes undone) */

void pge_redact_emit(struct pge_redact_out *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len && o->n + 1 < o->size; i++)
        o->b[o->n++] = s[i];
}

size_t pge_redact_url_scheme(const char *s)
{
    size_t i = 0;
    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    if (strncmp(s + i, "://", 3) != 0)
        return 0;
    return i;
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

/* libpq's connection keywords (up to PostgreSQL 17): after a password, only one of these
 * starts the next setting; any other word is the password's tail, and libpq refuses it. */
static const char *const keywords[] = {
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "dbname",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "host",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "krbsrvname",
    "load_balance_hosts",
    "options",
    "passfile",
    "password",
    "port",
    "replication",
    "require_auth",
    "requiressl",
    "requirepeer",
    "service",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslkeylogfile",
    "sslmode",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "target_session_attrs",
    "tcp_user_timeout",
    "user",
};

/* "keyword =" ahead: the start of the next setting. */
static int keyword_ahead(const char *s)
{
    size_t i = 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '_')
        i++;
    size_t n = i;
    while (isspace((unsigned char)s[i]))
        i++;
    if (n == 0 || s[i] != '=')
        return 0;
    for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
        if (strlen(keywords[k]) == n && strncasecmp(s, keywords[k], n) == 0)
            return 1;
    return 0;
}

/* Length of a URL query password value at v: to the next '&' that starts a known setting
 * (an empty value takes the next piece too: the password itself began with '&'). */
static size_t url_value_len(const char *v)
{
    size_t n = strcspn(v, "&");
    while (v[n] == '&' && (strspn(v, "&") == n || !keyword_ahead(v + n + 1)))
        n += 1 + strcspn(v + n + 1, "&");
    return n;
}

typedef void (*span_fn)(const char *start, size_t len, int kind, void *arg);

/* The user part of a URL is everything between "://" and the last '@': a password with an
 * unencoded '/', '?', '#' or '@' is still inside it, whatever libpq makes of the text. The
 * user name before the first ':' stays visible only when it is plainly a name. */
static void url_userinfo_spans(const char *auth, span_fn fn, void *arg)
{
    const char *last_at = strrchr(auth, '@');
    if (!last_at)
        return;
    size_t ulen = (size_t)(last_at - auth);
    const char *colon = memchr(auth, ':', ulen);
    size_t name_len = colon ? (size_t)(colon - auth) : ulen;
    int plain_name = strcspn(auth, "/?#@") >= name_len;
    if (colon)
        fn(colon + 1, (size_t)(last_at - colon - 1),
           (plain_name ? SPAN_MASK : 0) | SPAN_REPORT | SPAN_URL, arg);
    if (!plain_name)
        fn(auth, ulen, SPAN_MASK | (colon ? 0 : SPAN_REPORT | SPAN_URL), arg);
    /* libpq's own reading, for the scrubber only (the mask above covers it): the user part
     * ends at the first '@' unless a '/' comes first. */
    size_t alen = strcspn(auth, "/");
    const char *first_at = memchr(auth, '@', alen);
    if (first_at && first_at != last_at) {
        const char *c1 = memchr(auth, ':', (size_t)(first_at - auth));
        if (c1)
            fn(c1 + 1, (size_t)(first_at - c1 - 1), SPAN_REPORT | SPAN_URL, arg);
    }
}

static void url_spans(const char *in, size_t slen, span_fn fn, void *arg)
{
    const char *auth = in + slen;
    url_userinfo_spans(auth, fn, arg);
    /* Query parameters: libpq's query starts at a '?' that may sit inside a password, so
     * every '?' and '&' is taken to start a key; a value runs to the next '&' (libpq knows
     * no fragments). */
    for (const char *k = auth; (k = strpbrk(k, "?&")) != NULL;) {
        k++;
        size_t klen = strcspn(k, "=&?");
        if (k[klen] == '=' && is_url_password_key(k, klen)) {
            const char *v = k + klen + 1;
            size_t vlen = strcspn(v, "&"), tail = url_value_len(v);
            fn(v, vlen, SPAN_REPORT | SPAN_URL, arg);
            fn(v, tail, SPAN_MASK | (tail != vlen ? SPAN_REPORT | SPAN_URL : 0), arg);
        }
    }
}

/* Where a password value that ends at p is hidden up to: words that follow it and are not a
 * "key=" (a password with a space or a stray quote: libpq refuses the rest) belong to it. */
static const char *password_tail_end(const char *p)
{
    for (;;) {
        const char *t = p;
        while (isspace((unsigned char)*t))
            t++;
        if (!*t || keyword_ahead(t))
            return p;
        p = t + conninfo_value_len(t);
    }
}

/* One password value at v: libpq's reading, and the mask through any tail of it. */
static const char *password_value(const char *v, span_fn fn, void *arg)
{
    size_t vlen = conninfo_value_len(v);
    const char *end = password_tail_end(v + vlen);
    fn(v, vlen, SPAN_REPORT | SPAN_VALUE, arg);
    if (end != v + vlen)
        fn(v, (size_t)(end - v), SPAN_REPORT, arg);
    fn(v, (size_t)(end - v), SPAN_MASK, arg);
    return end;
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
        if (is_password_key(k, klen))
            p = password_value(p, fn, arg);
        else
            p += conninfo_value_len(p);
    }
    /* A value with a stray quote before it ("host='h password=x") swallows the rest in the
     * walk above: every "password =" that starts a word is a password too. */
    for (const char *w = in; (w = strpbrk(w, "pP")) != NULL; w++) {
        if (w > in && !isspace((unsigned char)w[-1]) && w[-1] != '\'' && w[-1] != '"')
            continue;
        const char *e = w;
        while (isalpha((unsigned char)*e))
            e++;
        if (!is_password_key(w, (size_t)(e - w)))
            continue;
        while (isspace((unsigned char)*e))
            e++;
        if (*e != '=')
            continue;
        e++;
        while (isspace((unsigned char)*e))
            e++;
        password_value(e, fn, arg);
    }
}

static void for_each_span(const char *in, span_fn fn, void *arg)
{
    size_t slen = pge_redact_url_scheme(in);
    if (slen)
        url_spans(in, slen + 3, fn, arg);
    else
        conninfo_spans(in, fn, arg);
}

#define MAX_SPANS 16

/* The spans to mask, in any order and possibly overlapping (a URL is read several ways). */
struct span {
    const char *start, *end;
};

struct redact_ctx {
    struct span spans[MAX_SPANS + 1];
    size_t n;
    const char *overflow; /* earliest span that did not fit: masked to the end of input */
};

static void collect_span(const char *start, size_t len, int kind, void *arg)
{
    struct redact_ctx *c = arg;
    if (!(kind & SPAN_MASK))
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
    struct pge_redact_out o = {out, size, 0};
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
        pge_redact_emit(&o, cursor, (size_t)(c.spans[i].start - cursor));
        pge_redact_emit(&o, PGE_REDACT_MASK, strlen(PGE_REDACT_MASK));
        cursor = c.spans[i].end;
        masked = 1;
    }
    pge_redact_emit(&o, cursor, strlen(cursor));
    out[o.n] = '\0';
    return out;
}

struct each_ctx {
    void (*cb)(const char *, void *);
    void *arg;
};

/* A conninfo value as libpq reads it, in place: quotes dropped, backslash escapes undone
 * (quoted or bare; a trailing backslash is dropped). */
static void unquote(char *raw, size_t len)
{
    int quoted = raw[0] == '\'';
    size_t o = 0;
    for (size_t i = (size_t)quoted; i < len && !(quoted && raw[i] == '\''); i++) {
        if (raw[i] == '\\' && ++i == len)
            break;
        raw[o++] = raw[i];
    }
    raw[o] = '\0';
}

void pge_redact_percent_decode(char *raw)
{
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
}

static void each_span(const char *start, size_t len, int kind, void *arg)
{
    struct each_ctx *c = arg;
    if (!(kind & SPAN_REPORT))
        return;
    char *raw = malloc(len + 1);
    if (!raw)
        return;
    memcpy(raw, start, len);
    raw[len] = '\0';
    if (kind & SPAN_VALUE)
        unquote(raw, len);
    c->cb(raw, c->arg);
    if ((kind & SPAN_URL) && strchr(raw, '%')) {
        pge_redact_percent_decode(raw);
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
