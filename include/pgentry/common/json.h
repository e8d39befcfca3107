/* Bounded text building and JSON string escaping, shared by the logger and the health endpoint. */
#ifndef PGENTRY_COMMON_JSON_H
#define PGENTRY_COMMON_JSON_H

#include <stddef.h>

/* Text built into a caller's buffer p[0..cap). Plain data the caller owns; nothing allocates.
 * Each append is all or nothing: one that does not fit sets overflow, and every later append
 * is dropped, so a caller checks once at the end. Never NUL-terminated: len says how much. */
struct pge_json_buf {
    char *p;
    size_t cap, len;
    int overflow;
};

/* A buffer over p[0..cap), empty. */
#define PGE_JSON_BUF(p, cap) ((struct pge_json_buf){(p), (cap), 0, 0})

/* Append n bytes of s / the string s / printf-formatted text (all or nothing, see above;
 * printf needs room for one byte more than its text, where vsnprintf puts its NUL). */
void pge_json_put(struct pge_json_buf *b, const char *s, size_t n);
void pge_json_puts(struct pge_json_buf *b, const char *s);
void pge_json_printf(struct pge_json_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append s as a quoted JSON string (RFC 8259): '"' and '\\' escaped, \t \n \r as themselves,
 * other control bytes and DEL as \u00XX, well-formed UTF-8 copied, and every byte that does
 * not start a well-formed sequence replaced by \ufffd, so that any C string gives valid JSON.
 * Each piece is all or nothing: on overflow the string is cut, so the caller must discard the
 * text (overflow is set). */
void pge_json_string(struct pge_json_buf *b, const char *s);

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF): 1 for ASCII (including NUL), 2 to 4, or 0 when p does not start
 * one. Reads no further than the first byte that breaks the sequence, so a NUL-terminated
 * string is never over-read. Pure. */
size_t pge_json_utf8_len(const char *p);

#endif
