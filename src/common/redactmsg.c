/* Scrub libpq's messages about a connection string: no more of it than pge_redact() shows. */
#include "pgentry/common/redact.h"

#include <stdlib.h>
#include <string.h>

#include "redact_int.h"

/* Shorter passwords are replaced in a message only where libpq quotes them whole: anywhere
 * else they would mangle innocent words (the logger draws the same line). */
#define MESSAGE_FORM_MIN 3

/* The password forms of a connection string, for pge_redact_message(). */
struct forms {
    char **v;
    size_t n;
    int oom;
};

static void add_form(const char *password, void *arg)
{
    struct forms *f = arg;
    char *copy = password[0] ? strdup(password) : NULL;
    char **v = copy ? realloc(f->v, (f->n + 1) * sizeof *v) : NULL;
    if (!v) {
        f->oom |= password[0] != '\0';
        free(copy);
        return;
    }
    f->v = v;
    f->v[f->n++] = copy;
}

/* Length of the longest password form at p (short ones only as a whole quoted piece). */
static size_t form_at(const struct forms *f, const char *p, int quoted_whole)
{
    size_t hit = 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t n = strlen(f->v[i]);
        if (n > hit && strncmp(p, f->v[i], n) == 0 &&
            (n >= MESSAGE_FORM_MIN || (quoted_whole && p[n] == '"')))
            hit = n;
    }
    return hit;
}

/* Length of the longest start of s that is a piece of conn, raw or percent-decoded. */
static size_t piece_len(const char *s, const char *conn, const char *decoded)
{
    size_t n = 0, clen = strlen(conn), dlen = strlen(decoded);
    while (s[n] && (memmem(conn, clen, s, n + 1) || memmem(decoded, dlen, s, n + 1)))
        n++;
    return n;
}

char *pge_redact_message(const char *msg, const char *conn, char *out, size_t size)
{
    struct pge_redact_out o = {out, size, 0};
    struct forms f = {NULL, 0, 0};
    size_t clen = strlen(conn);
    char *shown = malloc(4 * clen + 4), *decoded = strdup(conn);
    if (size == 0)
        goto done;
    if (!shown || !decoded)
        goto hide_all;
    pge_redact_percent_decode(decoded);
    pge_redact(conn, shown, 4 * clen + 4);
    pge_redact_each_password(conn, add_form, &f);
    if (f.oom)
        goto hide_all;
    const char *close = NULL; /* the closing quote of a piece being shown */
    for (const char *p = msg; *p && o.n + 1 < o.size;) {
        size_t hit;
        if (close && close < p)
            close = NULL; /* a mask took it */
        if (clen && strncmp(p, conn, clen) == 0) {
            pge_redact_emit(&o, shown, strlen(shown));
            if (p > msg && p[-1] == '"' && p[clen] == '"')
                close = p + clen;
            p += clen;
        } else if ((hit = form_at(&f, p, p > msg && p[-1] == '"')) > 0) {
            pge_redact_emit(&o, PGE_REDACT_MASK, strlen(PGE_REDACT_MASK));
            p += hit;
        } else if (p == close) {
            pge_redact_emit(&o, p, 1);
            p++;
            close = NULL;
        } else if (*p == '"' && !(clen && strncmp(p + 1, conn, clen) == 0)) {
            /* A quoted piece of the input shows nothing the redacted input does not. The
             * piece is the longest text that is one (a password may hold a '"'); libpq's own
             * words ("=", "]") are none. */
            size_t qlen = piece_len(p + 1, conn, decoded);
            char *piece = strndup(p + 1, qlen);
            int keep = piece && strstr(shown, piece);
            free(piece);
            if (keep) {
                pge_redact_emit(&o, p, 1);
                close = p[1 + qlen] == '"' ? p + 1 + qlen : NULL;
                p++;
            } else {
                pge_redact_emit(&o, "\"" PGE_REDACT_MASK, strlen(PGE_REDACT_MASK) + 1);
                p += 1 + qlen;
                close = *p == '"' ? p : NULL;
            }
        } else {
            pge_redact_emit(&o, p, 1);
            p++;
        }
    }
    goto done;
hide_all:
    /* Without memory to tell the pieces apart, show none of the message. */
    pge_redact_emit(&o, PGE_REDACT_MASK, strlen(PGE_REDACT_MASK));
done:
    if (size > 0)
        out[o.n] = '\0';
    for (size_t i = 0; i < f.n; i++)
        free(f.v[i]);
    free(f.v);
    free(shown);
    free(decoded);
    return out;
}
