/* What a migration's text asks for: header directives and ${NAME} environment placeholders. */
#include "pgentry/migrate/migfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BOM     "\xEF\xBB\xBF"
#define BOM_LEN 3
#define PREFIX  "pgentry:"

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Look at one header line s[0..n) (no '\n'). Returns 1 when it is a directive (its word in
 * word and wlen), 0 when it is blank or a plain comment, -1 when it ends the header. */
static int header_line(const char *s, size_t n, const char **word, size_t *wlen)
{
    size_t i = 0, plen = strlen(PREFIX);
    while (i < n && is_blank(s[i]))
        i++;
    if (i == n)
        return 0;
    if (n - i < 2 || s[i] != '-' || s[i + 1] != '-')
        return -1;
    i += 2;
    while (i < n && is_blank(s[i]))
        i++;
    if (n - i < plen || strncasecmp(s + i, PREFIX, plen) != 0)
        return 0;
    i += plen;
    while (n > i && is_blank(s[n - 1]))
        n--;
    *word = s + i;
    *wlen = n - i;
    return 1;
}

static int word_is(const char *w, size_t n, const char *known)
{
    return n == strlen(known) && memcmp(w, known, n) == 0;
}

int pge_migfile_directives(const char *text, size_t len, struct pge_migfile_directives *out)
{
    size_t pos = 0;
    unsigned line = 1;

    memset(out, 0, sizeof *out);
    if (len >= BOM_LEN && memcmp(text, BOM, BOM_LEN) == 0)
        pos = BOM_LEN;
    for (; pos < len; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *w = NULL;
        size_t wn = 0;
        int kind = header_line(text + pos, n, &w, &wn);
        if (kind < 0)
            break;
        if (kind == 1) {
            if (word_is(w, wn, "no-transaction")) {
                out->flags |= PGE_MIGFILE_DIR_NO_TX;
            } else if (word_is(w, wn, "envsubst")) {
                out->flags |= PGE_MIGFILE_DIR_ENVSUBST;
            } else {
                out->line = line;
                out->word = w;
                out->word_len = wn;
                return -1;
            }
        }
        pos += n + 1;
    }
    return 0;
}

int pge_migfile_no_transaction(const char *text, size_t len)
{
    struct pge_migfile_directives d;
    return pge_migfile_directives(text, len, &d) == 0 && (d.flags & PGE_MIGFILE_DIR_NO_TX);
}

const char *pge_migfile_getenv(void *arg, const char *name, size_t len)
{
    char buf[PGE_MIGFILE_VAR_MAX + 1];
    (void)arg;
    if (len > PGE_MIGFILE_VAR_MAX)
        return NULL;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return getenv(buf);
}

static int name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* A placeholder starting at text[i] == '$' with text[i+1] == '{': 1 with the name's place and
 * the length of the whole "${NAME}", or 0 when it is malformed (name and name_len: what of the
 * name there is). */
static int placeholder(const char *text, size_t len, size_t i, size_t *name, size_t *name_len,
                       size_t *total)
{
    size_t j = i + 2;
    *name = j;
    if (j < len && name_start(text[j]))
        while (j < len && name_char(text[j]) && j - *name < PGE_MIGFILE_VAR_MAX + 1)
            j++;
    *name_len = j - *name;
    if (*name_len == 0 || *name_len > PGE_MIGFILE_VAR_MAX || j >= len || text[j] != '}')
        return 0;
    *total = j + 1 - i;
    return 1;
}

static unsigned line_of(const char *text, size_t off)
{
    unsigned line = 1;
    for (size_t k = 0; k < off; k++)
        line += text[k] == '\n';
    return line;
}

/* One pass over text: check every placeholder and, when dst is not NULL, write the result
 * there. Returns OK (with *outlen), BAD_PLACEHOLDER, UNSET or TOO_BIG. */
static enum pge_migfile_result subst_pass(const char *text, size_t len,
                                          pge_migfile_lookup_cb lookup, void *arg, char *dst,
                                          size_t *outlen, struct pge_migfile_subst *out)
{
    size_t w = 0, i = 0;
    while (i < len) {
        size_t name, nlen, total;
        if (text[i] != '$' || i + 1 >= len || text[i + 1] != '{') {
            if (dst)
                dst[w] = text[i];
            w++;
            i++;
            continue;
        }
        int ok = placeholder(text, len, i, &name, &nlen, &total);
        const char *v = ok ? lookup(arg, text + name, nlen) : NULL;
        if (!v) {
            out->line = line_of(text, i);
            out->name = text + name;
            out->name_len = nlen > PGE_MIGFILE_VAR_MAX ? PGE_MIGFILE_VAR_MAX : nlen;
            return ok ? PGE_MIGFILE_UNSET : PGE_MIGFILE_BAD_PLACEHOLDER;
        }
        size_t vl = strlen(v);
        if (vl > PGE_MIGFILE_MAX_BYTES || w > PGE_MIGFILE_MAX_BYTES - vl)
            return PGE_MIGFILE_TOO_BIG;
        if (dst)
            memcpy(dst + w, v, vl);
        w += vl;
        i += total;
    }
    if (w > PGE_MIGFILE_MAX_BYTES)
        return PGE_MIGFILE_TOO_BIG;
    *outlen = w;
    return PGE_MIGFILE_OK;
}

enum pge_migfile_result pge_migfile_envsubst(const char *text, size_t len,
                                             pge_migfile_lookup_cb lookup, void *arg, int want_text,
                                             struct pge_migfile_subst *out)
{
    size_t n = 0;
    memset(out, 0, sizeof *out);
    enum pge_migfile_result r = subst_pass(text, len, lookup, arg, NULL, &n, out);
    if (r != PGE_MIGFILE_OK || !want_text)
        return r;
    char *buf = malloc(n + 1);
    if (!buf)
        return PGE_MIGFILE_SYSTEM;
    /* The environment does not change between the passes (nothing here sets it). */
    r = subst_pass(text, len, lookup, arg, buf, &n, out);
    if (r != PGE_MIGFILE_OK) {
        free(buf);
        return r;
    }
    buf[n] = '\0';
    out->text = buf;
    out->len = n;
    return PGE_MIGFILE_OK;
}

/* Replace every occurrence of v in buf (room for cap bytes, enough for any growth) with "***". */
static void mask(char *buf, size_t cap, const char *v)
{
    size_t vl = strlen(v), w = 0;
    char *src;
    if (vl == 0 || !strstr(buf, v))
        return;
    src = strdup(buf);
    if (!src) {
        /* Better no message than one that may show a value. */
        snprintf(buf, cap, "***");
        return;
    }
    for (const char *p = src; *p && w + 1 < cap;) {
        if (strncmp(p, v, vl) == 0) {
            memcpy(buf + w, "***", 3);
            w += 3;
            p += vl;
        } else {
            buf[w++] = *p++;
        }
    }
    buf[w] = '\0';
    free(src);
}

char *pge_migfile_envsubst_redact(const char *text, size_t len, pge_migfile_lookup_cb lookup,
                                  void *arg, const char *msg, char *out, size_t size)
{
    size_t ml = msg ? strlen(msg) : 0;
    /* Masked first, cut to size after: a value cut in half would not be found any more. A
     * value of one byte becomes three, so three times the message always has room. */
    size_t cap = 3 * ml + 4;
    char *buf = malloc(cap);
    if (size == 0)
        goto out;
    if (!buf) {
        snprintf(out, size, "(message hidden: out of memory)");
        goto out;
    }
    snprintf(buf, cap, "%s", msg ? msg : "");
    for (size_t i = 0; i + 1 < len; i++) {
        size_t name, nlen, total;
        if (text[i] != '$' || text[i + 1] != '{' ||
            !placeholder(text, len, i, &name, &nlen, &total))
            continue;
        const char *v = lookup(arg, text + name, nlen);
        if (v)
            mask(buf, cap, v);
        i += total - 1;
    }
    snprintf(out, size, "%s", buf);
out:
    free(buf);
    return out;
}
