/* Unit tests for the bounded log line queue: whole lines in or dropped, chunks, partial writes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/logbuf.h"

/* The chunk as one string (owned by the caller's buffer). */
static size_t take_chunk(struct pge_logbuf *b, size_t max, char *out, size_t outsize)
{
    struct iovec iov[2];
    int niov = -1;
    size_t n = pge_logbuf_chunk(b, max, iov, &niov);
    size_t o = 0;
    cr_assert(niov >= 0 && niov <= 2);
    for (int i = 0; i < niov; i++) {
        cr_assert(o + iov[i].iov_len < outsize);
        memcpy(out + o, iov[i].iov_base, iov[i].iov_len);
        o += iov[i].iov_len;
    }
    cr_assert_eq(o, n, "the iovecs hold exactly the chunk");
    out[o] = '\0';
    return n;
}

static void put(struct pge_logbuf *b, const char *s, int expect)
{
    cr_assert_eq(pge_logbuf_put(b, s, strlen(s)), expect, "put \"%s\"", s);
}

Test(logbuf, empty_queue_has_no_chunk, .timeout = 5)
{
    char st[16], out[32];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    cr_assert_eq(take_chunk(&b, 8, out, sizeof out), 0);
    cr_assert_eq(pge_logbuf_notice_due(&b), 0);
}

Test(logbuf, chunk_ends_at_the_last_line_that_fits, .timeout = 5)
{
    char st[64], out[64];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "aaa\n", 0);
    put(&b, "bbbb\n", 0);
    put(&b, "cc\n", 0);
    cr_assert_eq(take_chunk(&b, 9, out, sizeof out), 9);
    cr_assert_str_eq(out, "aaa\nbbbb\n");
    cr_assert_eq(take_chunk(&b, 8, out, sizeof out), 4, "cc\\n would make 12 > 8");
    cr_assert_str_eq(out, "aaa\n");
    cr_assert_eq(take_chunk(&b, 100, out, sizeof out), 12);
}

Test(logbuf, a_line_longer_than_max_is_one_chunk, .timeout = 5)
{
    char st[64], out[64];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "0123456789\n", 0);
    put(&b, "x\n", 0);
    cr_assert_eq(take_chunk(&b, 4, out, sizeof out), 11);
    cr_assert_str_eq(out, "0123456789\n");
}

Test(logbuf, a_full_queue_drops_the_whole_line_and_counts_it, .timeout = 5)
{
    char st[10], out[32];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "abcdef\n", 0);
    put(&b, "ghij\n", -1); /* 5 > 3 left */
    put(&b, "kl\n", 0);    /* exactly fills it */
    put(&b, "m\n", -1);
    cr_assert_eq(b.len, 10);
    cr_assert_eq(b.dropped_total, 2);
    cr_assert_eq(pge_logbuf_notice_due(&b), 0, "no notice while lines wait");
    cr_assert_eq(take_chunk(&b, 100, out, sizeof out), 10);
    cr_assert_str_eq(out, "abcdef\nkl\n", "nothing of a dropped line got in");
    pge_logbuf_consume(&b, 10);
    cr_assert_eq(pge_logbuf_notice_due(&b), 2, "drained: report the two");
    cr_assert_eq(pge_logbuf_notice_due(&b), 0, "once");
    cr_assert_eq(b.dropped_total, 2, "the total stays for the metric");
}

Test(logbuf, a_line_larger_than_the_queue_is_dropped, .timeout = 5)
{
    char st[8];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "123456789\n", -1);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(pge_logbuf_notice_due(&b), 1);
}

Test(logbuf, a_partial_write_resumes_mid_line, .timeout = 5)
{
    char st[64], out[64];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "hello\n", 0);
    put(&b, "world\n", 0);
    pge_logbuf_consume(&b, 3); /* the descriptor took "hel" */
    cr_assert_eq(take_chunk(&b, 4, out, sizeof out), 3);
    cr_assert_str_eq(out, "lo\n", "the rest of the line, alone when the next does not fit");
    cr_assert_eq(take_chunk(&b, 64, out, sizeof out), 9);
    cr_assert_str_eq(out, "lo\nworld\n");
}

Test(logbuf, lines_wrap_around_the_ring_in_two_iovecs, .timeout = 5)
{
    char st[12], out[32];
    struct pge_logbuf b;
    struct iovec iov[2];
    int niov;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "aaaaaaa\n", 0); /* 8 */
    put(&b, "bb\n", 0);      /* 11 */
    pge_logbuf_consume(&b, 8);
    put(&b, "cccc\n", 0); /* 3 + 5 = 8 bytes queued, wrapping */
    cr_assert_eq(pge_logbuf_chunk(&b, 100, iov, &niov), 8);
    cr_assert_eq(niov, 2);
    cr_assert_eq(take_chunk(&b, 100, out, sizeof out), 8);
    cr_assert_str_eq(out, "bb\ncccc\n");
}

Test(logbuf, discard_counts_lines_without_a_notice, .timeout = 5)
{
    char st[32];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "one\n", 0);
    put(&b, "two\n", 0);
    pge_logbuf_consume(&b, 1);
    cr_assert_eq(pge_logbuf_discard(&b), 2);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.dropped_total, 2);
    cr_assert_eq(pge_logbuf_notice_due(&b), 0, "nobody could read a notice");
}

Test(logbuf, clear_forgets_without_counting, .timeout = 5)
{
    char st[32];
    struct pge_logbuf b;
    pge_logbuf_init(&b, st, sizeof st);
    put(&b, "one\n", 0);
    pge_logbuf_clear(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.dropped_total, 0);
}

/* Random lines, random write sizes: what leaves is exactly the accepted lines, in order, and
 * every refused line is counted. */
Test(logbuf, random_traffic_matches_a_model, .timeout = 30)
{
    enum { CAP = 97, ROUNDS = 20000 };
    char st[CAP];
    static char sent[ROUNDS * 40], got[ROUNDS * 40];
    size_t nsent = 0, ngot = 0;
    unsigned long long refused = 0;
    struct pge_logbuf b;
    unsigned seed = 12345;
    pge_logbuf_init(&b, st, sizeof st);
    for (int r = 0; r < ROUNDS; r++) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 3 != 0) {
            char line[40];
            size_t n = 1 + (seed >> 8) % 30;
            for (size_t i = 0; i + 1 < n; i++)
                line[i] = (char)('a' + (r + i) % 26);
            line[n - 1] = '\n';
            if (pge_logbuf_put(&b, line, n) == 0) {
                memcpy(sent + nsent, line, n);
                nsent += n;
            } else {
                refused++;
            }
        } else {
            char out[CAP + 1];
            size_t n = take_chunk(&b, 1 + (seed >> 4) % 50, out, sizeof out);
            size_t w = n ? 1 + (seed >> 12) % n : 0; /* a partial write */
            memcpy(got + ngot, out, w);
            ngot += w;
            pge_logbuf_consume(&b, w);
        }
    }
    char out[CAP + 1];
    size_t n;
    while ((n = take_chunk(&b, 64, out, sizeof out)) > 0) {
        memcpy(got + ngot, out, n);
        ngot += n;
        pge_logbuf_consume(&b, n);
    }
    cr_assert_eq(ngot, nsent);
    cr_assert(memcmp(got, sent, nsent) == 0, "bytes out == accepted lines, in order");
    cr_assert_eq(b.dropped_total, refused);
    cr_assert(refused > 0, "the test filled the queue");
}
