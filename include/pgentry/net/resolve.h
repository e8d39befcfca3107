/* Resolve HOST:PORT for TCP on a work-queue thread (getaddrinfo blocks); answer on the loop. */
#ifndef PGENTRY_NET_RESOLVE_H
#define PGENTRY_NET_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

#include "pgentry/common/workqueue.h"

#define PGE_RESOLVE_MAX_ADDRS 8

/* One TCP address, ready for socket() and connect(). */
struct pge_resolve_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

struct pge_resolve;

/* Called once on the loop thread, unless the resolution was cancelled first. On success addrs
 * holds n >= 1 addresses (at most PGE_RESOLVE_MAX_ADDRS, in getaddrinfo's order) and error is
 * NULL; on failure n is 0 and error is one line: could not resolve host "db": <reason>. Both
 * are valid during the call only. The handle is gone once the callback runs: do not cancel it
 * from there or later. */
typedef void (*pge_resolve_cb)(void *arg, const struct pge_resolve_addr *addrs, size_t n,
                               const char *error);

/* Without blocking or a thread: when host is an IP literal, fill out with up to max addresses
 * and return how many (out may be NULL when max is 0); return -1 when host is a name (start a
 * resolution for it). port is a decimal port number. */
int pge_resolve_numeric(const char *host, const char *port, struct pge_resolve_addr *out,
                        size_t max);

/* Start resolving host (a name or an IP literal, no brackets) and port (decimal) on a thread
 * of wq. host and port are copied: the caller's strings may go at once. Returns the handle, or
 * NULL with a one-line message in err (out of memory, no thread could be started); the
 * callback is never called from inside this function. wq must outlive the resolution. */
struct pge_resolve *pge_resolve_start(struct pge_workqueue *wq, const char *host, const char *port,
                                      pge_resolve_cb cb, void *arg, char *err, size_t errsize);

/* From the loop thread, before the callback has run: no callback will come, and arg may be
 * freed right away; the thread's answer is discarded and freed when it arrives. NULL-safe. */
void pge_resolve_cancel(struct pge_resolve *r);

#endif
