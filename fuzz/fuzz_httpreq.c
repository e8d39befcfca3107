/* libFuzzer target: the HTTP request-head parser never crashes, and its verdicts agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/health/httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pge_httpreq req;
    const char *buf = (const char *)data;
    int r = pge_httpreq_parse(buf, size, &req);

    if (r > 0) {
        /* A complete head stays complete, with the same length, whatever follows it. */
        struct pge_httpreq again;
        if ((size_t)r > size || r > PGE_HTTPREQ_HEAD_MAX)
            abort();
        if (pge_httpreq_parse(buf, (size_t)r, &again) != r)
            abort();
        if (req.method.p != buf + (req.method.p - buf) || req.method.n == 0)
            abort();
        if (req.nheaders > PGE_HTTPREQ_NHEADERS_MAX)
            abort();
        for (size_t i = 0; i < req.nheaders; i++) {
            const struct pge_httpreq_header *h = &req.headers[i];
            if (h->name.p < buf || h->value.p + h->value.n > buf + r)
                abort();
        }
        /* Every proper prefix of a valid head must ask for more. */
        if (pge_httpreq_parse(buf, (size_t)r - 1, &again) != PGE_HTTPREQ_PARTIAL)
            abort();
    } else if (r != PGE_HTTPREQ_PARTIAL && r != PGE_HTTPREQ_BAD && r != PGE_HTTPREQ_TOO_LARGE) {
        abort();
    }
    if (r == PGE_HTTPREQ_BAD || r == PGE_HTTPREQ_TOO_LARGE) {
        /* A verdict never changes when more bytes arrive: appending a byte keeps it. */
        uint8_t *more = malloc(size + 1);
        if (!more)
            return 0;
        memcpy(more, data, size);
        more[size] = '\n';
        int r2 = pge_httpreq_parse((const char *)more, size + 1, &req);
        free(more);
        if (r2 != r)
            abort();
    }
    /* Trickled in pieces of 1..7 bytes, the incremental parser only ever gives the one-shot
     * verdict for the prefix it has; with the whole input, a complete head is always found. */
    size_t scanned = 0, k = 0;
    int ri = PGE_HTTPREQ_PARTIAL;
    while (k < size && ri == PGE_HTTPREQ_PARTIAL) {
        k += 1 + (size_t)(data[k] % 7);
        if (k > size)
            k = size;
        ri = pge_httpreq_parse_next(buf, k, &scanned, &req);
        if (ri != PGE_HTTPREQ_PARTIAL && ri != pge_httpreq_parse(buf, k, &req))
            abort();
    }
    if (r > 0 && ri != r)
        abort();
    return 0;
}
