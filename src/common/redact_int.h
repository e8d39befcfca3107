/* What redact.c and redactmsg.c share: the mask and a bounded output buffer; private. */
#ifndef PGENTRY_COMMON_REDACT_INT_H
#define PGENTRY_COMMON_REDACT_INT_H

#include <stddef.h>

#define PGE_REDACT_MASK "***"

/* The caller's output buffer: b[0..size), n bytes written so far. */
struct pge_redact_out {
    char *b;
    size_t size;
    size_t n;
};

/* Append s[0..len) as far as it fits, leaving room for the NUL the caller writes at b[n]. */
void pge_redact_emit(struct pge_redact_out *o, const char *s, size_t len);

/* Undo %XX escapes in place (invalid ones are kept as they are), as libpq reads a URL. */
void pge_redact_percent_decode(char *raw);

#endif
