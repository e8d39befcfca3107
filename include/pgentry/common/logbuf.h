/* A bounded queue of whole log lines: a fixed byte ring that takes a line whole or drops it. */
#ifndef PGENTRY_COMMON_LOGBUF_H
#define PGENTRY_COMMON_LOGBUF_H

#include <stddef.h>
#include <sys/uio.h>

/* What the logger keeps while stderr is full: about 400 lines of 160 bytes. */
#define PGE_LOGBUF_SIZE (64 * 1024)

/* Plain data, owned by the caller, storage included (no allocation, ever). Not thread-safe:
 * the caller serialises. */
struct pge_logbuf {
    char *data;
    size_t cap;
    size_t head;                           /* offset of the oldest byte */
    size_t len;                            /* bytes queued */
    unsigned long long dropped_total;      /* lines dropped since init, for the metric */
    unsigned long long dropped_unreported; /* dropped since the last notice */
};

/* Use storage (cap > 0 bytes, owned by the caller, outliving b) as an empty queue. */
void pge_logbuf_init(struct pge_logbuf *b, char *storage, size_t cap);

/* Queue the n bytes of line (one or more whole lines, n > 0), or drop them all and count one
 * dropped line when they do not fit. Returns 0 when queued, -1 when dropped. */
int pge_logbuf_put(struct pge_logbuf *b, const char *line, size_t n);

/* The next bytes to write, as 1 or 2 iovecs pointing into the ring (valid until the next put
 * or consume): the longest prefix that ends a line and is at most max bytes, so a pipe gets
 * whole lines in one atomic write (max = PIPE_BUF); when the first line alone is longer, that
 * line. Returns the byte count (0: empty) and sets *niov. */
size_t pge_logbuf_chunk(const struct pge_logbuf *b, size_t max, struct iovec iov[2], int *niov);

/* Forget the first n bytes (n <= len): they were written (a write may be partial). */
void pge_logbuf_consume(struct pge_logbuf *b, size_t n);

/* Throw away everything queued because it can never be written (the reader is gone): the
 * lines count in dropped_total but not as unreported (no notice could be written either).
 * Returns how many lines that was. */
unsigned long long pge_logbuf_discard(struct pge_logbuf *b);

/* Empty the queue without counting anything (a forked child must not repeat the parent's
 * lines). */
void pge_logbuf_clear(struct pge_logbuf *b);

/* Once the queue has drained: the number of lines dropped since the last notice, which the
 * caller now reports (the count restarts). 0 while lines are queued or none were dropped. */
unsigned long long pge_logbuf_notice_due(struct pge_logbuf *b);

#endif
