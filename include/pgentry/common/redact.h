/* Hide passwords in connection strings and URLs before they reach a log line or a response. */
#ifndef PGENTRY_COMMON_REDACT_H
#define PGENTRY_COMMON_REDACT_H

#include <stddef.h>

/* Length of "scheme" when s is "scheme://..." (a letter, then letters, digits, + - .), else 0:
 * what pge_redact() reads as a URL rather than a conninfo. Pure. */
size_t pge_redact_url_scheme(const char *s);

/* Copy a URL ("scheme://user:pass@host/...?password=x") or a libpq key=value conninfo into
 * out with every password replaced by "***". Whatever the text looks like (malformed, an
 * unencoded '/', '@', '?' or '#' in the password, an unterminated quote), nothing between
 * "://" and the last '@' but a plain user name, and no password= value (URL query or
 * conninfo, with any words after it that are not a "key=") is copied. Always NUL-terminates
 * when size > 0; output longer than size is truncated (a prefix still hides every password).
 * Returns out. Pure; safe from any thread. */
char *pge_redact(const char *in, char *out, size_t size);

/* Find the password(s) in a URL or conninfo so the logger can scrub them anywhere. Calls
 * cb(password, arg) for each one found - as libpq reads it and as pge_redact() hides it, raw
 * and (for URLs) percent-decoded. The string passed to cb is valid during the call only. */
void pge_redact_each_password(const char *in, void (*cb)(const char *password, void *arg),
                              void *arg);

/* Copy msg, a message about the connection string conn (libpq's, which may quote conn whole
 * or in pieces), into out so that it shows no more of conn than pge_redact(conn) does: conn
 * itself is shown redacted, its passwords (of 3 bytes or more, or quoted whole) become "***",
 * and so does every double-quoted piece that the redacted conn does not show. Always
 * NUL-terminates when size > 0; truncates like pge_redact(). Returns out. Safe from any
 * thread; allocates (on failure the whole message is "***"). */
char *pge_redact_message(const char *msg, const char *conn, char *out, size_t size);

#endif
