/* One HTTP GET that counts as ready on a 2xx answer (dependency waits, app health). */
#ifndef PGENTRY_NET_HTTPPROBE_H
#define PGENTRY_NET_HTTPPROBE_H

#include <stdint.h>

#include "pgentry/net/curlloop.h"
#include "pgentry/common/runstate.h"

struct pge_httpprobe;

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
