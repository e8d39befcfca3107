/* A bounded queue of whole log lines: a fixed byte ring that takes a line whole or drops it. */
#include "pgentry/common/logbuf.h"

#include <string.h>

void pge_logbuf_init(struct pge_logbuf *b, char *storage, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->data = storage;
    b->cap = cap;
}

int pge_logbuf_put(struct pge_logbuf *b, const char *line, size_t n)
{
    if (n > b->cap - b->len) {
        /* Never a part of a line: a reader would glue it to the next one. */
        b->dropped_total++;
        b->dropped_unreported++;
        return -1;
    }
    size_t tail = (b->head + b->len) % b->cap;
    size_t first = b->cap - tail < n ? b->cap - tail : n;
    memcpy(b->data + tail, line, first);
    memcpy(b->data, line + first, n - first);
    b->len += n;
    return 0;
}

/* The byte at logical offset i of the queue. */
static char at(const struct pge_logbuf *b, size_t i)
{
    return b->data[(b->head + i) % b->cap];
}

size_t pge_logbuf_chunk(const struct pge_logbuf *b, size_t max, struct iovec iov[2], int *niov)
{
    size_t n = 0;
    size_t limit = b->len < max ? b->len : max;

    for (size_t i = limit; i > 0; i--)
        if (at(b, i - 1) == '\n') {
            n = i;
            break;
        }
    if (n == 0) {
        /* One line longer than max (or the rest of one): all of it, then. */
        n = b->len;
        for (size_t i = 0; i < b->len; i++)
            if (at(b, i) == '\n') {
                n = i + 1;
                break;
            }
    }
    size_t first = b->cap - b->head < n ? b->cap - b->head : n;
    iov[0].iov_base = b->data + b->head;
    iov[0].iov_len = first;
    iov[1].iov_base = b->data;
    iov[1].iov_len = n - first;
    *niov = n == 0 ? 0 : n > first ? 2 : 1;
    return n;
}

void pge_logbuf_consume(struct pge_logbuf *b, size_t n)
{
    if (n > b->len)
        n = b->len;
    b->head = (b->head + n) % b->cap;
    b->len -= n;
    if (b->len == 0)
        b->head = 0; /* the next chunk starts contiguous */
}

unsigned long long pge_logbuf_discard(struct pge_logbuf *b)
{
    unsigned long long lines = 0;
    for (size_t i = 0; i < b->len; i++)
        if (at(b, i) == '\n')
            lines++;
    if (b->len > 0 && at(b, b->len - 1) != '\n')
        lines++;
    /* Counted, not reported: a notice could not be written either. */
    b->dropped_total += lines;
    pge_logbuf_clear(b);
    return lines;
}

void pge_logbuf_clear(struct pge_logbuf *b)
{
    b->head = 0;
    b->len = 0;
}

unsigned long long pge_logbuf_notice_due(struct pge_logbuf *b)
{
    if (b->len > 0)
        return 0;
    unsigned long long n = b->dropped_unreported;
    b->dropped_unreported = 0;
    return n;
}
