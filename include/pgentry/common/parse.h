/* Small pure parsers for option values: durations, signal names, HOST:PORT, booleans. */
#ifndef PGENTRY_COMMON_PARSE_H
#define PGENTRY_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* "250ms", "10s", "2m", "1h", "1m30s", "1.5s"; a bare number is seconds. Result in ms,
 * rounded to the nearest millisecond, at most 100 days. Returns 0, or -1 (bad text, negative,
 * unknown unit, overflow). Pure. */
int pge_parse_duration(const char *s, int64_t *ms);

/* "TERM", "SIGTERM", "term", "15", "RTMIN+3"; with allow_zero, "0" means "no signal".
 * Returns 0 and sets *signo, or -1. Pure. */
int pge_parse_signal(const char *s, int allow_zero, int *signo);

/* The short name of a signal ("TERM"), or NULL when unknown. Static storage; pure. */
const char *pge_parse_signal_name(int signo);

/* "host:port", "[v6addr]:port", ":port" (host becomes ""), "v6addr" is not accepted without
 * brackets when a port follows. Copies the host (unbracketed) into host[hostsize].
 * Returns 0, or -1 (missing port, port out of 1..65535, host too long, bad brackets). */
int pge_parse_hostport(const char *s, char *host, size_t hostsize, int *port);

/* "1/true/yes/on" → 1, "0/false/no/off/" (empty) → 0, case-insensitive; else -1. */
int pge_parse_bool(const char *s, int *out);

#endif
