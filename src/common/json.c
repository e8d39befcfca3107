/* Bounded text building and JSON string escaping, shared by the logger and the health endpoint. */
#include "pgentry/common/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void pge_json_put(struct pge_json_buf *b, const char *s, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void pge_json_puts(struct pge_json_buf *b, const char *s)
{
    pge_json_put(b, s, strlen(s));
}

void pge_json_printf(struct pge_json_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->overflow)
        return;
    /* vsnprintf needs room for its NUL, which is not part of the text. */
    if (b->cap - b->len < 1) {
        b->overflow = 1;
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    b->len += (size_t)n;
}

size_t pge_json_utf8_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range, narrowed below */
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (p[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (p[0] == 0xf0)
        lo = 0x90; /* overlong */
    else if (p[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) /* also stops at the NUL */
            return 0;
    return n;
}

void pge_json_string(struct pge_json_buf *b, const char *s)
{
    const char *p = s;
    pge_json_put(b, "\"", 1);
    while (*p) {
        unsigned char c = (unsigned char)*p;
        size_t n = 1;
        if (c == '"' || c == '\\') {
            pge_json_put(b, "\\", 1);
            pge_json_put(b, p, 1);
        } else if (c == '\n') {
            pge_json_puts(b, "\\n");
        } else if (c == '\r') {
            pge_json_puts(b, "\\r");
        } else if (c == '\t') {
            pge_json_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            pge_json_printf(b, "\\u%04x", c);
        } else if ((n = pge_json_utf8_len(p)) > 0) {
            pge_json_put(b, p, n);
        } else {
            /* Server messages may come in LATIN1 and values may be cut: JSON must stay
             * UTF-8, so a byte that starts no valid sequence becomes U+FFFD. */
            pge_json_puts(b, "\\ufffd");
            n = 1;
        }
        p += n;
    }
    pge_json_put(b, "\"", 1);
}
