/* One attempt to open a TCP connection to HOST:PORT (async DNS, non-blocking connect). */
#ifndef PGENTRY_NET_TCPPROBE_H
#define PGENTRY_NET_TCPPROBE_H

#include <ev.h>
#include <stdint.h>

#include "pgentry/common/outcome.h"
#include "pgentry/common/workqueue.h"

struct pge_tcpprobe;

/* Called exactly once unless the probe is freed first. ok: a connection was accepted (and
 * closed again). On failure, outcome and a one-line reason say why ("Connection refused", as
 * libpq words it; the caller knows the target). May free the probe. */
typedef void (*pge_tcpprobe_cb)(void *arg, int ok, enum pge_attempt_outcome outcome,
                                const char *message);

/* host: a name or IP literal (no brackets). Bounded by timeout_ms. NULL when out of memory. */
struct pge_tcpprobe *pge_tcpprobe_start(struct ev_loop *loop, struct pge_workqueue *off,
                                        const char *host, int port, int64_t timeout_ms,
                                        pge_tcpprobe_cb cb, void *arg);

/* Abandon or release a probe; no callback afterwards. NULL-safe. */
void pge_tcpprobe_free(struct pge_tcpprobe *p);

#endif
