/* What the health endpoints answer: routes, readiness checks, /status JSON, /metrics text. */
#ifndef PGENTRY_HEALTH_RENDER_H
#define PGENTRY_HEALTH_RENDER_H

#include "pgentry/common/json.h"
#include "pgentry/common/runstate.h"
#include "pgentry/health/httpreq.h"

enum pge_render_route {
    PGE_RENDER_LIVEZ = 0,
    PGE_RENDER_READYZ,
    PGE_RENDER_HEALTHZ,
    PGE_RENDER_STATUS,
    PGE_RENDER_METRICS,
    PGE_RENDER_OTHER, /* unknown paths and unparsable requests: keeps the label set bounded */
    PGE_RENDER_ROUTES_,
};

#define PGE_RENDER_NCODES 7 /* the status codes counted: 200 400 404 405 431 500 503 */

/* What the server counts, shown by /metrics. Plain data the server owns. */
struct pge_render_stats {
    unsigned long long requests[PGE_RENDER_ROUTES_][PGE_RENDER_NCODES];
    unsigned long long evicted, timed_out, shed; /* connections dropped, by reason */
    unsigned nconns;                             /* open connections */
};

/* One answer's status line and headers beyond the body. */
struct pge_render_answer {
    enum pge_render_route route; /* for the request counter */
    int code;
    const char *ctype; /* static string */
    int allow;         /* 405: the Allow header is due */
};

/* Count one answered request (codes outside the counted set are not counted). */
void pge_render_count(struct pge_render_stats *s, enum pge_render_route route, int code);

/* Answer a parsed request (GET or HEAD of /livez, /readyz, /healthz, /status, /metrics; 404 and
 * 405 otherwise; ?verbose lists the checks) from state *st and *stats: the body goes to *body,
 * the rest to *out. A body that does not fit becomes a 500 "response too large". Pure: reads
 * st, stats and req (which points into the caller's input) only. */
void pge_render_answer(const struct pge_httpreq *req, const struct pge_runstate *st,
                       const struct pge_render_stats *stats, struct pge_json_buf *body,
                       struct pge_render_answer *out);

#endif
