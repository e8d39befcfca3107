/* One HTTP GET that counts as ready on a 2xx answer (dependency waits, app health). */
#ifndef PGENTRY_NET_HTTPPROBE_H
#define PGENTRY_NET_HTTPPROBE_H

#include <stdint.h>

#include "pgentry/net/curlloop.h"
#include "pgentry/common/runstate.h"

struct pge_httpprobe;

/* Set up easy for one probe GET of url, the options every probe in pgentry shares: no proxy
 * whatever the environment says (NOPROXY "*": a probe of a local or dependency endpoint must
 * not turn into a request through http_proxy), http and https only, no redirects followed, no
 * signals (CURLOPT_NOSIGNAL: threads and the loop own them), a fresh connection, the body
 * discarded, connect_timeout_ms for the connection and timeout_ms in all, user_agent (copied by
 * libcurl), and curl's message for a failure written to errbuf (CURL_ERROR_SIZE bytes, which
 * must outlive the transfer). url is copied. Returns 0, or -1 when libcurl refuses an option
 * (the handle must then not be used for a probe). */
int pge_httpprobe_setup_easy(CURL *easy, const char *url, int64_t connect_timeout_ms,
                             int64_t timeout_ms, const char *user_agent, char *errbuf);

/* Called exactly once unless freed first. ok: answered 2xx. status: the HTTP code or 0.
 * message: one line, the URL redacted. May free the probe. */
typedef void (*pge_httpprobe_cb)(void *arg, int ok, long status, enum pge_attempt_outcome outcome,
                                 const char *message);

/* GET url (http/https only, no redirects followed, body discarded) bounded by timeout_ms. */
struct pge_httpprobe *pge_httpprobe_start(struct pge_curlloop *c, const char *url,
                                          int64_t timeout_ms, pge_httpprobe_cb cb, void *arg);

/* Abandon or release; no callback afterwards. NULL-safe. */
void pge_httpprobe_free(struct pge_httpprobe *p);

#endif
