/* libcurl's multi interface driven by the libev loop: HTTP without blocking or threads of ours. */
#ifndef PGENTRY_CURLEV_H
#define PGENTRY_CURLEV_H

#include <curl/curl.h>
#include <ev.h>

struct pge_curlev;

/* Called once when a transfer ends: rc is libcurl's result, status the HTTP code (0 when no
 * response). The easy handle is no longer attached; the callee owns (and cleans up) it. */
typedef void (*pge_curlev_cb)(void *arg, CURL *easy, CURLcode rc, long status);

/* NULL when out of memory. curl_global_init() must have been called (main does it). */
struct pge_curlev *pge_curlev_new(struct ev_loop *loop);

/* Start a configured transfer. CURLOPT_PRIVATE is used by this module. Returns 0 or -1. */
int pge_curlev_add(struct pge_curlev *c, CURL *easy, pge_curlev_cb cb, void *arg);

/* Abort a transfer: no callback; the caller still owns easy. */
void pge_curlev_remove(struct pge_curlev *c, CURL *easy);

/* Stop everything (running transfers are aborted, their easy handles cleaned up, no
 * callbacks). NULL-safe. */
void pge_curlev_free(struct pge_curlev *c);

#endif
