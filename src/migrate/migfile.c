/* Migration files: name parsing, normalised text, checksums, reading one file. */
#include "pgentry/migrate/migfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* SHA256_Init() and its kin: see sha256_hex(). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "pgentry/common/errbuf.h"
#include "migfile_int.h"

#define BOM     "\xEF\xBB\xBF"
#define BOM_LEN 3

enum pge_outcome_kind pge_migfile_outcome(enum pge_migfile_result st)
{
    switch (st) {
    case PGE_MIGFILE_OK:
        return PGE_OUT_OK;
    case PGE_MIGFILE_NO_DIR:
    case PGE_MIGFILE_NOT_DIR:
    case PGE_MIGFILE_UNREADABLE:
    case PGE_MIGFILE_TOO_BIG:
    case PGE_MIGFILE_EXISTS:
        return PGE_OUT_CONFIG;
    case PGE_MIGFILE_BAD_NAME:
    case PGE_MIGFILE_BAD_DIRECTIVE:
    case PGE_MIGFILE_BAD_PLACEHOLDER:
    case PGE_MIGFILE_UNSET:
    case PGE_MIGFILE_DUPLICATE:
    case PGE_MIGFILE_ORPHAN_DOWN:
    case PGE_MIGFILE_MISMATCH:
    case PGE_MIGFILE_FULL:
        return PGE_OUT_MIGRATION_FAILED;
    case PGE_MIGFILE_BAD_MESSAGE:
        return PGE_OUT_USAGE;
    case PGE_MIGFILE_SYSTEM:
        break;
    }
    return PGE_OUT_INTERNAL;
}

/* ---- File names ------------------------------------------------------------------------ */

int pge_migfile_parse_version(const char *s, size_t len, int64_t *version)
{
    int64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *version = v;
    return 0;
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static enum pge_migfile_name_result malformed(struct pge_migfile_name *out, const char *why)
{
    out->why = why;
    return PGE_MIGFILE_NAME_MALFORMED;
}

enum pge_migfile_name_result pge_migfile_parse_name(const char *name, size_t len,
                                                    struct pge_migfile_name *out)
{
    size_t stem, digits = 0;
    int down;

    if (len == 0 || name[0] < '0' || name[0] > '9' || memchr(name, '\0', len))
        return PGE_MIGFILE_NAME_OTHER;
    if (ends_with(name, len, ".up.sql"))
        down = 0;
    else if (ends_with(name, len, ".down.sql"))
        down = 1;
    else
        return PGE_MIGFILE_NAME_OTHER;
    stem = len - (down ? strlen(".down.sql") : strlen(".up.sql"));
    while (digits < stem && name[digits] >= '0' && name[digits] <= '9')
        digits++;
    if (digits == stem || name[digits] != '_')
        return malformed(out, "the version must be followed by '_' and a name");
    if (digits + 1 == stem)
        return malformed(out, "the name after the version is empty");
    for (size_t i = digits + 1; i < stem; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return malformed(out, "the name has a control character or a '/'");
    }
    int64_t version;
    if (pge_migfile_parse_version(name, digits, &version) < 0)
        return malformed(out, "the version is larger than 9223372036854775807");
    out->version = version;
    out->version_text = name;
    out->version_len = digits;
    out->slug = name + digits + 1;
    out->slug_len = stem - digits - 1;
    out->down = down;
    out->why = NULL;
    return PGE_MIGFILE_NAME_OK;
}

enum pge_migfile_name_result pge_migfile_parse_repeatable(const char *name, size_t len,
                                                          const char **slug, size_t *slug_len)
{
    size_t pre = strlen("R__"), suf = strlen(".sql");
    if (len < pre + suf || memcmp(name, "R__", pre) != 0 || !ends_with(name, len, ".sql") ||
        memchr(name, '\0', len))
        return PGE_MIGFILE_NAME_OTHER;
    if (len == pre + suf)
        return PGE_MIGFILE_NAME_MALFORMED;
    for (size_t i = pre; i < len - suf; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return PGE_MIGFILE_NAME_MALFORMED;
    }
    *slug = name + pre;
    *slug_len = len - pre - suf;
    return PGE_MIGFILE_NAME_OK;
}

/* ---- Text ------------------------------------------------------------------------------ */

size_t pge_migfile_normalize(char *buf, size_t len)
{
    size_t r = 0, w = 0;
    if (len >= BOM_LEN && memcmp(buf, BOM, BOM_LEN) == 0)
        r = BOM_LEN;
    for (; r < len; r++) {
        if (buf[r] == '\r' && r + 1 < len && buf[r + 1] == '\n')
            continue;
        buf[w++] = buf[r];
    }
    return w;
}

/* SHA-256 of text as pge_migfile_normalize() would leave it when normalise is set, else of text
 * as is. Hashing the runs between dropped bytes avoids copying a file of up to 64 MiB.
 * OpenSSL's low-level SHA-256 (deprecated in OpenSSL 3 in favour of EVP, still built and
 * supported): the same assembly as EVP's, without the provider machinery that EVP's first use
 * starts, milliseconds of every start that a run without TLS would spend on nothing else.
 * These functions only work on the context given and cannot fail. */
static void sha256_hex(const char *text, size_t len, int normalise, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    size_t i = 0, start;
    SHA256_CTX ctx;

    SHA256_Init(&ctx);
    if (normalise && len >= BOM_LEN && memcmp(text, BOM, BOM_LEN) == 0)
        i = BOM_LEN;
    start = i;
    for (; normalise && i + 1 < len; i++) {
        if (text[i] == '\r' && text[i + 1] == '\n') {
            SHA256_Update(&ctx, text + start, i - start);
            start = i + 1;
        }
    }
    SHA256_Update(&ctx, text + start, len - start);
    SHA256_Final(md, &ctx);
    for (unsigned int k = 0; k < SHA256_DIGEST_LENGTH; k++) {
        hex[2 * k] = digits[md[k] >> 4];
        hex[2 * k + 1] = digits[md[k] & 0xf];
    }
    hex[PGE_MIGFILE_CHECKSUM_LEN] = '\0';
}

void pge_migfile_checksum(const char *text, size_t len, char hex[PGE_MIGFILE_CHECKSUM_LEN + 1])
{
    sha256_hex(text, len, 1, hex);
}

static enum pge_migfile_result too_big(const char *path, char *err, size_t errsize)
{
    pge_errbuf_set(err, errsize, "%s is larger than %u MiB: split it into smaller migrations", path,
                   PGE_MIGFILE_MAX_BYTES >> 20);
    return PGE_MIGFILE_TOO_BIG;
}

enum pge_migfile_result pge_migfile_read(const char *path, char **text, size_t *len, char *checksum,
                                         char *err, size_t errsize)
{
    enum pge_migfile_result rc = PGE_MIGFILE_SYSTEM;
    char *buf = NULL;
    size_t cap, used = 0;
    struct stat st;
    /* O_NONBLOCK: a FIFO named like a migration must be refused, not waited on. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    *text = NULL;
    if (fd < 0 || fstat(fd, &st) < 0) {
        pge_errbuf_set(err, errsize, "cannot read %s: %s: fix its permissions or remove it", path,
                       strerror(errno));
        rc = PGE_MIGFILE_UNREADABLE;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        pge_errbuf_set(err, errsize,
                       "%s is not a regular file: move it out of the migrations directory", path);
        rc = PGE_MIGFILE_UNREADABLE;
        goto out;
    }
    if ((uint64_t)st.st_size > PGE_MIGFILE_MAX_BYTES) {
        rc = too_big(path, err, errsize);
        goto out;
    }
    /* The size is a hint only: the file may grow while we read. Room for one byte more than
     * announced shows growth, and one more holds the NUL. */
    cap = (size_t)st.st_size + 2;
    buf = malloc(cap);
    for (;;) {
        if (!buf) {
            pge_errbuf_set(err, errsize, "%s: out of memory", path);
            goto out;
        }
        if (used > PGE_MIGFILE_MAX_BYTES) {
            rc = too_big(path, err, errsize);
            goto out;
        }
        if (used + 1 == cap) {
            size_t ncap =
                cap > (PGE_MIGFILE_MAX_BYTES + 2) / 2 ? PGE_MIGFILE_MAX_BYTES + 2 : cap * 2;
            char *grown = realloc(buf, ncap);
            if (!grown) {
                pge_errbuf_set(err, errsize, "%s: out of memory", path);
                goto out;
            }
            buf = grown;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + used, cap - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pge_errbuf_set(err, errsize, "cannot read %s: %s: fix its permissions or remove it",
                           path, strerror(errno));
            rc = PGE_MIGFILE_UNREADABLE;
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    used = pge_migfile_normalize(buf, used);
    buf[used] = '\0';
    if (checksum)
        sha256_hex(buf, used, 0, checksum);
    *text = buf;
    *len = used;
    buf = NULL;
    rc = PGE_MIGFILE_OK;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- Paths ----------------------------------------------------------------------------- */

char *pge_migfile_fmt(const char *f, ...)
{
    va_list ap;
    char *p;
    va_start(ap, f);
    int n = vasprintf(&p, f, ap);
    va_end(ap);
    return n < 0 ? NULL : p;
}

char *pge_migfile_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    return pge_migfile_fmt("%s%s%s", dir, dl > 0 && dir[dl - 1] == '/' ? "" : "/", name);
}
