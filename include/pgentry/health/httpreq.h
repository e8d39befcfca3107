/* HTTP/1.x request-head parser: pure, bounded, never allocates; results point into the input. */
#ifndef PGENTRY_HEALTH_HTTPREQ_H
#define PGENTRY_HEALTH_HTTPREQ_H

#include <stddef.h>

/* Limits. The request line counts its line ending; the header section counts every header
 * line and the empty line that ends the head. */
#define PGE_HTTPREQ_LINE_MAX     1024
#define PGE_HTTPREQ_HEADERS_MAX  8192
#define PGE_HTTPREQ_NHEADERS_MAX 32
/* The longest complete head: a buffer this big always holds one request or a verdict. */
#define PGE_HTTPREQ_HEAD_MAX (PGE_HTTPREQ_LINE_MAX + PGE_HTTPREQ_HEADERS_MAX)

/* Negative results of pge_httpreq_parse(); a positive result is the head's length. */
#define PGE_HTTPREQ_PARTIAL   (-1) /* valid so far: read more and call again */
#define PGE_HTTPREQ_BAD       (-2) /* malformed: answer 400 and close */
#define PGE_HTTPREQ_TOO_LARGE (-3) /* over a limit: answer 431 and close */

/* A slice of the caller's buffer (not NUL-terminated). p is NULL when absent. */
struct pge_httpreq_str {
    const char *p;
    size_t n;
};

struct pge_httpreq_header {
    struct pge_httpreq_str name;  /* as sent; compare case-insensitively */
    struct pge_httpreq_str value; /* surrounding blanks trimmed; may be empty */
};

/* A parsed request head: plain data owned by the caller. Every slice points into the buffer
 * given to pge_httpreq_parse() and lives as long as that buffer is neither freed nor moved. */
struct pge_httpreq {
    struct pge_httpreq_str method; /* a token, case-sensitive ("GET") */
    struct pge_httpreq_str target; /* the whole request-target ("/readyz?verbose") */
    struct pge_httpreq_str path;   /* target up to '?' */
    struct pge_httpreq_str query;  /* after '?' (p NULL when there is no '?') */
    int minor_version;             /* HTTP/1.<minor_version>: 0 or 1 */
    struct pge_httpreq_header headers[PGE_HTTPREQ_NHEADERS_MAX];
    size_t nheaders;
    struct pge_httpreq_str host; /* the Host header (p NULL when absent) */
    int keep_alive;              /* the connection stays open after the response */
    long long content_length;    /* -1 when there is no Content-Length */
    int chunked;                 /* a Transfer-Encoding header is present */
};

/* Parse the request head at the start of buf[0..len). Returns the head's length in bytes
 * (the body, if any, and any pipelined request follow it) and fills *req, or one of
 * PGE_HTTPREQ_PARTIAL / _BAD / _TOO_LARGE (then *req is unspecified). Every proper prefix of
 * a valid head is PARTIAL; input is judged BAD as soon as a byte makes it invalid, and
 * TOO_LARGE as soon as a limit is passed, without waiting for the rest.
 *
 * Accepted: origin-form targets ("/path?query") and "*"; HTTP/1.0 and HTTP/1.1; CRLF or bare
 * LF line endings (RFC 9112 2.2 allows LF; picky clients are not ours to punish). Refused with
 * BAD: absolute-form targets, other versions, NUL or other control bytes outside header
 * values' tabs, bytes >= 0x80 in the request line, a bare CR, whitespace before a header's
 * colon, obs-fold (a line starting with a blank), a malformed or conflicting Content-Length,
 * Content-Length together with Transfer-Encoding, two Host headers. Host is optional, also
 * for HTTP/1.1 (local probes often omit it). Keep-alive: HTTP/1.1 unless "Connection: close";
 * HTTP/1.0 only with "Connection: keep-alive". Pure; safe from any thread. */
int pge_httpreq_parse(const char *buf, size_t len, struct pge_httpreq *req);

/* pge_httpreq_parse() for a buffer that grows as bytes arrive, without re-reading the whole
 * head for every byte of a slow client (as picohttpparser's last_len): *scanned holds how much
 * of buf earlier calls saw (0 for a new buffer: then this is exactly pge_httpreq_parse; set it
 * back to 0 after consuming a request). While the head was PARTIAL, only the new bytes are
 * looked at, and the head is parsed again only when they can decide it: the end of the head,
 * a control byte, a length limit passed. Any verdict it returns is pge_httpreq_parse()'s for
 * buf[0..len); a BAD or TOO_LARGE that other bytes would show (a bad token, a 33rd header)
 * comes at the end of the head or at a length limit instead of at once. Pure. */
int pge_httpreq_parse_next(const char *buf, size_t len, size_t *scanned, struct pge_httpreq *req);

/* Whether a slice equals the NUL-terminated s, exactly (case-sensitive). Pure. */
int pge_httpreq_str_eq(struct pge_httpreq_str a, const char *s);

#endif
