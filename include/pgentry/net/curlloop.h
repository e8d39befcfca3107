/* libcurl's multi interface driven by the libev loop: HTTP without blocking or threads of ours. */
#ifndef PGENTRY_NET_CURLLOOP_H
#define PGENTRY_NET_CURLLOOP_H

#include <curl/curl.h>
#include <ev.h>

struct pge_curlloop;

/* Called once when a transfer ends: rc is libcurl's result, status the HTTP code (0 when no
 * response). The easy handle is no longer attached; the callee owns (and cleans up) it. */
typedef void (*pge_curlloop_cb)(void *arg, CURL *easy, CURLcode rc, long status);

/* NULL when out of memory. curl_global_init() must have been called (main does it). libcurl's
 * multi handle is made on the first transfer, and every descriptor libcurl makes is marked
 * close-on-exec: children inherit none of them. */
struct pge_curlloop *pge_curlloop_new(struct ev_loop *loop);

/* Start a configured transfer. CURLOPT_PRIVATE is used by this module. Returns 0 or -1. */
int pge_curlloop_add(struct pge_curlloop *c, CURL *easy, pge_curlloop_cb cb, void *arg);

/* Abort a transfer: no callback; the caller still owns easy. */
void pge_curlloop_remove(struct pge_curlloop *c, CURL *easy);

/* Stop everything (running transfers are aborted, their easy handles cleaned up, no
 * callbacks). NULL-safe. */
void pge_curlloop_free(struct pge_curlloop *c);

#endif
