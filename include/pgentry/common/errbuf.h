/* One-line error messages into a caller's buffer: how low-level modules report without logging. */
#ifndef PGENTRY_COMMON_ERRBUF_H
#define PGENTRY_COMMON_ERRBUF_H

#include <stddef.h>

/* Format into err[0..size) like snprintf (truncated, always NUL-terminated). Does nothing when
 * err is NULL or size is 0, so every message buffer in the project may be optional. errno is
 * preserved, so a caller can format strerror(errno) and still return -1 with errno kept. */
void pge_errbuf_set(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
