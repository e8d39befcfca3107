/* `pgentry healthcheck`: probe the health endpoint once with libcurl, for Docker HEALTHCHECK. */
#ifndef PGENTRY_HEALTH_HEALTHCHECK_H
#define PGENTRY_HEALTH_HEALTHCHECK_H

#include <stddef.h>

#define PGE_HEALTHCHECK_CONNECT_TIMEOUT_MS 1000
#define PGE_HEALTHCHECK_TIMEOUT_MS         2500 /* the whole probe, well inside Docker's 30 s */

/* The URL probed by default for a --health-addr value: "http://HOST:PORT/healthz", with a
 * wildcard host (empty, 0.0.0.0, ::) replaced by the loopback address of its family, and an
 * IPv6 host bracketed. Writes url[size]; returns 0, or -1 when health_addr is NULL or
 * malformed, or the URL does not fit. Pure. */
int pge_healthcheck_default_url(const char *health_addr, char *url, size_t size);

/* Probe url_or_null (NULL: the default URL for health_addr) with one GET: no proxy, no
 * redirects, http/https only, connect timeout PGE_HEALTHCHECK_CONNECT_TIMEOUT_MS, total
 * PGE_HEALTHCHECK_TIMEOUT_MS. Fills line[linesize] with one line for the user, without a newline
 * and with any password in the URL shown as *** ("healthy: 200 http://127.0.0.1:8081/healthz",
 * "unhealthy: Failed to connect … (http://…)"). Returns 0 when the answer is 2xx, 1 for any
 * other outcome — never another value (Docker reserves 2). Blocks for at most the timeout;
 * meant for the short-lived `pgentry healthcheck` process, never for the loop. */
int pge_healthcheck_run(const char *url_or_null, const char *health_addr, char *line,
                        size_t linesize);

#endif
