/* libFuzzer target for pge_redact: bounded output, whatever libpq reads as the password is
 * hidden and reported to the logger, and libpq's own message about the input shows it no
 * more than pge_redact() does. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/redact.h"

struct found {
    const char *want;
    int seen;
};

static void check_reported(const char *password, void *arg)
{
    struct found *f = arg;
    if (strcmp(password, f->want) == 0)
        f->seen = 1;
}

struct hidden {
    const char *redacted; /* pge_redact() of the input */
    const char *message;  /* pge_redact_message() of libpq's message about it */
};

/* A password the redacted input hides is not in the scrubbed message either. */
static void check_hidden(const char *password, void *arg)
{
    const struct hidden *h = arg;
    if (strlen(password) >= 3 && !strchr(password, '*') && !strstr(h->redacted, password) &&
        strstr(h->message, password))
        abort();
}

/* libpq's password for s (owned), or NULL when it has none or cannot parse s. */
static char *libpq_password(const char *s)
{
    char *err = NULL, *pw = NULL;
    PQconninfoOption *opts = PQconninfoParse(s, &err);
    PQfreemem(err);
    if (!opts)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            pw = strdup(o->val);
    PQconninfoFree(opts);
    return pw;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048 || memchr(data, '\0', size))
        return 0;
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';

    /* Room for a mask per input byte at most. */
    size_t cap = 4 * size + 1;
    char *full = malloc(cap), *part = malloc(cap + 1);
    if (!full || !part)
        abort();
    pge_redact(in, full, cap);
    size_t flen = strlen(full);
    if (flen >= cap - 1 && size > 0)
        abort(); /* the bound above is never reached */

    /* A smaller buffer gives a prefix of the same output, NUL-terminated, never past size. */
    size_t small = size % 37 + 1;
    part[small] = 'Z';
    pge_redact(in, part, small);
    if (part[small] != 'Z' || strlen(part) >= small || strncmp(part, full, strlen(part)) != 0)
        abort();

    /* libpq's message may quote the input whole or in pieces: scrubbed, it holds no password
     * of 3 bytes or more that the redacted input hides. */
    char *perr = NULL;
    PQconninfoFree(PQconninfoParse(in, &perr));
    if (perr) {
        char *msg = malloc(strlen(perr) * 4 + 64);
        if (!msg)
            abort();
        pge_redact_message(perr, in, msg, strlen(perr) * 4 + 64);
        struct hidden h = {full, msg};
        pge_redact_each_password(in, check_hidden, &h);
        free(msg);
        PQfreemem(perr);
    }

    char *pw = libpq_password(in);
    if (pw) {
        struct found f = {pw, 0};
        pge_redact_each_password(in, check_reported, &f);
        if (!f.seen)
            abort(); /* the logger would not scrub what libpq sends */
        char *again = libpq_password(full);
        if (again && strcmp(again, pw) == 0 && strcmp(pw, "***") != 0)
            abort(); /* libpq still reads the password in the redacted text */
        free(again);
        /* Without escapes the password is written as is: if it occurs once in the input,
         * that occurrence is the password, and it must be gone. */
        if (!strpbrk(in, "%\\'") && !strchr(pw, '*') && count(in, pw) == 1 && strstr(full, pw))
            abort();
        free(pw);
    }
    free(in);
    free(full);
    free(part);
    return 0;
}
