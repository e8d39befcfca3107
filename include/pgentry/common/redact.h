/* Hide passwords in connection strings and URLs before they reach a log line or a response. */
#ifndef PGENTRY_COMMON_REDACT_H
#define PGENTRY_COMMON_REDACT_H

#include <stddef.h>

/* Copy a URL ("scheme://user:pass@host/...?password=x") or a libpq key=value conninfo into
 * out with every password replaced by "***". Works on malformed input too (best effort, never
 * reveals more than the input's non-password parts). Always NUL-terminates when size > 0;
 * output longer than size is truncated. Returns out. Pure; safe from any thread. */
char *pge_redact(const char *in, char *out, size_t size);

/* Find the password(s) in a URL or conninfo so the logger can scrub them anywhere. Calls
 * cb(password, arg) for each one found, in raw and (for URLs) percent-decoded form. */
void pge_redact_each_password(const char *in, void (*cb)(const char *password, void *arg),
                              void *arg);

#endif
