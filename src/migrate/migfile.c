/* Migration files on disk: name parsing, directory scan, normalised text, checksums, revision. */
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

#include <openssl/evp.h>

#include "pgentry/common/errbuf.h"

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
 * as is. Hashing the runs between dropped bytes avoids copying a file of up to 64 MiB. */
static int sha256_hex(const char *text, size_t len, int normalise, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t i = 0, start;
    int rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
        goto out;
    if (normalise && len >= BOM_LEN && memcmp(text, BOM, BOM_LEN) == 0)
        i = BOM_LEN;
    start = i;
    for (; normalise && i + 1 < len; i++) {
        if (text[i] == '\r' && text[i + 1] == '\n') {
            if (!EVP_DigestUpdate(ctx, text + start, i - start))
                goto out;
            start = i + 1;
        }
    }
    if (!EVP_DigestUpdate(ctx, text + start, len - start) || !EVP_DigestFinal_ex(ctx, md, &mdlen) ||
        mdlen * 2 != PGE_MIGFILE_CHECKSUM_LEN)
        goto out;
    for (unsigned int k = 0; k < mdlen; k++) {
        hex[2 * k] = digits[md[k] >> 4];
        hex[2 * k + 1] = digits[md[k] & 0xf];
    }
    hex[PGE_MIGFILE_CHECKSUM_LEN] = '\0';
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int pge_migfile_checksum(const char *text, size_t len, char hex[PGE_MIGFILE_CHECKSUM_LEN + 1])
{
    return sha256_hex(text, len, 1, hex);
}

int pge_migfile_no_transaction(const char *text, size_t len)
{
    size_t mark = strlen(PGE_MIGFILE_NO_TX_MARK);
    size_t end;
    if (len >= BOM_LEN && memcmp(text, BOM, BOM_LEN) == 0) {
        text += BOM_LEN;
        len -= BOM_LEN;
    }
    end = 0;
    while (end < len && text[end] != '\n')
        end++;
    /* Editors and Windows checkouts leave blanks and CRs behind; they change nothing. */
    while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r'))
        end--;
    return end == mark && memcmp(text, PGE_MIGFILE_NO_TX_MARK, mark) == 0;
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
    if (checksum && sha256_hex(buf, used, 0, checksum) < 0) {
        pge_errbuf_set(err, errsize, "%s: SHA-256 failed in libcrypto", path);
        goto out;
    }
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

/* ---- Directory scan -------------------------------------------------------------------- */

/* A directory entry that parsed as a migration name; n points into fname. */
struct found {
    char *fname;
    struct pge_migfile_name n;
};

/* array with room for want elements (doubling), or NULL with array left as it was. */
static void *grow(void *array, size_t *cap, size_t want, size_t elem)
{
    size_t ncap = *cap ? *cap : 8;
    if (want <= *cap)
        return array;
    while (ncap < want)
        ncap *= 2;
    void *p = realloc(array, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

/* A malloc'd formatted string, or NULL (asprintf leaves its pointer undefined on failure). */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...)
{
    va_list ap;
    char *p;
    va_start(ap, f);
    int n = vasprintf(&p, f, ap);
    va_end(ap);
    return n < 0 ? NULL : p;
}

static char *join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    return fmt("%s%s%s", dir, dl > 0 && dir[dl - 1] == '/' ? "" : "/", name);
}

static int cmp_found(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    if (x->n.version != y->n.version)
        return x->n.version < y->n.version ? -1 : 1;
    if (x->n.down != y->n.down)
        return x->n.down - y->n.down;
    return strcmp(x->fname, y->fname);
}

void pge_migfile_set_free(struct pge_migset *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].version_text);
        free(set->items[i].name);
        free(set->items[i].up_path);
        free(set->items[i].down_path);
    }
    free(set->items);
    for (size_t i = 0; i < set->nignored; i++)
        free(set->ignored[i]);
    free(set->ignored);
    memset(set, 0, sizeof *set);
}

long pge_migfile_set_find(const struct pge_migset *set, int64_t version)
{
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->items[mid].version == version)
            return (long)mid;
        if (set->items[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Read the directory: migration names into *found, everything else into set->ignored. A
 * malformed name is remembered (the smallest, so the message does not depend on readdir order)
 * and reported once the directory is closed. */
static enum pge_migfile_result list_dir(const char *dir, struct pge_migset *set,
                                        struct found **found, size_t *nfound, char *err,
                                        size_t errsize)
{
    enum pge_migfile_result rc = PGE_MIGFILE_SYSTEM; /* a bare goto out: out of memory */
    size_t cap = 0, icap = 0;
    char *bad = NULL;
    const char *bad_why = NULL;
    struct dirent *de;
    DIR *d = opendir(dir);

    if (!d) {
        if (errno == ENOENT) {
            pge_errbuf_set(
                err, errsize,
                "migrations directory %s does not exist: create it or point --migrations "
                "(PGENTRY_MIGRATIONS) at it",
                dir);
            rc = PGE_MIGFILE_NO_DIR;
        } else if (errno == ENOTDIR) {
            pge_errbuf_set(err, errsize,
                           "%s is not a directory: point --migrations (PGENTRY_MIGRATIONS) at the "
                           "migrations directory",
                           dir);
            rc = PGE_MIGFILE_NOT_DIR;
        } else {
            pge_errbuf_set(err, errsize,
                           "cannot read migrations directory %s: %s: fix its permissions", dir,
                           strerror(errno));
            rc = PGE_MIGFILE_UNREADABLE;
        }
        goto out;
    }
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        struct pge_migfile_name n;
        enum pge_migfile_name_result pr = pge_migfile_parse_name(nm, strlen(nm), &n);
        if (pr == PGE_MIGFILE_NAME_MALFORMED) {
            if (!bad || strcmp(nm, bad) < 0) {
                free(bad);
                bad = strdup(nm);
                bad_why = n.why;
                if (!bad)
                    goto out;
            }
            continue;
        }
        if (pr == PGE_MIGFILE_NAME_OTHER) {
            char **ig = grow(set->ignored, &icap, set->nignored + 1, sizeof *ig);
            if (!ig)
                goto out;
            set->ignored = ig;
            set->ignored[set->nignored] = strdup(nm);
            if (!set->ignored[set->nignored])
                goto out;
            set->nignored++;
            continue;
        }
        struct found *fs = grow(*found, &cap, *nfound + 1, sizeof *fs);
        if (!fs)
            goto out;
        *found = fs;
        struct found *f = &(*found)[*nfound];
        f->fname = strdup(nm);
        if (!f->fname)
            goto out;
        (*nfound)++;
        /* Parse the copy again so the name's pointers point into memory we keep. */
        pge_migfile_parse_name(f->fname, strlen(f->fname), &f->n);
    }
    if (errno != 0) {
        pge_errbuf_set(err, errsize, "cannot read migrations directory %s: %s: fix its permissions",
                       dir, strerror(errno));
        rc = PGE_MIGFILE_UNREADABLE;
        goto out;
    }
    if (bad) {
        char *path = join(dir, bad);
        pge_errbuf_set(err, errsize,
                       "%s: %s: rename it to NNNN_name.up.sql / NNNN_name.down.sql (or remove it)",
                       path ? path : bad, bad_why);
        free(path);
        rc = PGE_MIGFILE_BAD_NAME;
        goto out;
    }
    rc = PGE_MIGFILE_OK;
out:
    /* Every other failure has said what it was; SYSTEM here can only be memory. */
    if (rc == PGE_MIGFILE_SYSTEM)
        pge_errbuf_set(err, errsize, "out of memory while reading %s", dir);
    free(bad);
    if (d)
        closedir(d);
    return rc;
}

/* Check one version's files, found[0..n) sorted ups first: exactly one .up.sql, at most one
 * .down.sql, named alike. */
static enum pge_migfile_result check_group(const char *dir, const struct found *g, size_t n,
                                           char *err, size_t errsize)
{
    enum pge_migfile_result rc = PGE_MIGFILE_OK;
    char *a = NULL, *b = NULL;
    size_t ups = 0;

    while (ups < n && !g[ups].n.down)
        ups++;
    if (ups >= 2 || n - ups >= 2) {
        size_t i = ups >= 2 ? 0 : ups;
        a = join(dir, g[i].fname);
        b = join(dir, g[i + 1].fname);
        pge_errbuf_set(err, errsize,
                       "%s and %s both have version %" PRId64 ": renumber or remove one of them",
                       a ? a : g[i].fname, b ? b : g[i + 1].fname, g[i].n.version);
        rc = PGE_MIGFILE_DUPLICATE;
    } else if (ups == 0) {
        a = join(dir, g[0].fname);
        pge_errbuf_set(
            err, errsize,
            "%s has no matching %.*s_%.*s.up.sql: add the .up.sql or remove the .down.sql",
            a ? a : g[0].fname, (int)g[0].n.version_len, g[0].n.version_text, (int)g[0].n.slug_len,
            g[0].n.slug);
        rc = PGE_MIGFILE_ORPHAN_DOWN;
    } else if (n == 2 && (g[0].n.version_len != g[1].n.version_len ||
                          memcmp(g[0].n.version_text, g[1].n.version_text, g[0].n.version_len) ||
                          g[0].n.slug_len != g[1].n.slug_len ||
                          memcmp(g[0].n.slug, g[1].n.slug, g[0].n.slug_len))) {
        a = join(dir, g[0].fname);
        b = join(dir, g[1].fname);
        pge_errbuf_set(
            err, errsize,
            "%s and %s have the same version but different names: rename the .down.sql to "
            "%.*s.down.sql",
            a ? a : g[0].fname, b ? b : g[1].fname, (int)(strlen(g[0].fname) - strlen(".up.sql")),
            g[0].fname);
        rc = PGE_MIGFILE_MISMATCH;
    }
    free(a);
    free(b);
    return rc;
}

/* Fill one item from its group: copies of the names, paths, checksum and transaction marks. */
static enum pge_migfile_result load_item(const char *dir, const struct found *g, size_t n,
                                         struct pge_migfile *m, char *err, size_t errsize)
{
    enum pge_migfile_result rc;
    char *text = NULL;
    size_t len;

    m->version = g[0].n.version;
    m->version_text = strndup(g[0].n.version_text, g[0].n.version_len);
    m->name = strndup(g[0].n.slug, g[0].n.slug_len);
    m->up_path = join(dir, g[0].fname);
    if (n == 2)
        m->down_path = join(dir, g[1].fname);
    if (!m->version_text || !m->name || !m->up_path || (n == 2 && !m->down_path)) {
        pge_errbuf_set(err, errsize, "out of memory while reading %s", dir);
        rc = PGE_MIGFILE_SYSTEM;
        goto out;
    }
    rc = pge_migfile_read(m->up_path, &text, &len, m->checksum, err, errsize);
    if (rc != PGE_MIGFILE_OK)
        goto out;
    m->no_transaction = pge_migfile_no_transaction(text, len);
    free(text);
    text = NULL;
    if (m->down_path) {
        rc = pge_migfile_read(m->down_path, &text, &len, NULL, err, errsize);
        if (rc != PGE_MIGFILE_OK)
            goto out;
        m->down_no_transaction = pge_migfile_no_transaction(text, len);
    }
out:
    free(text);
    return rc;
}

enum pge_migfile_result pge_migfile_scan(const char *dir, struct pge_migset *set, char *err,
                                         size_t errsize)
{
    enum pge_migfile_result rc;
    struct found *found = NULL;
    size_t nfound = 0, ngroups = 0;

    memset(set, 0, sizeof *set);
    rc = list_dir(dir, set, &found, &nfound, err, errsize);
    if (rc != PGE_MIGFILE_OK)
        goto out;
    if (nfound)
        qsort(found, nfound, sizeof *found, cmp_found);
    /* Every name is checked before any file is read: a naming mistake is the likelier one. */
    for (size_t i = 0, j; i < nfound; i = j) {
        for (j = i + 1; j < nfound && found[j].n.version == found[i].n.version; j++)
            ;
        rc = check_group(dir, found + i, j - i, err, errsize);
        if (rc != PGE_MIGFILE_OK)
            goto out;
        ngroups++;
    }
    if (ngroups) {
        set->items = calloc(ngroups, sizeof *set->items);
        if (!set->items) {
            pge_errbuf_set(err, errsize, "out of memory while reading %s", dir);
            rc = PGE_MIGFILE_SYSTEM;
            goto out;
        }
    }
    for (size_t i = 0, j; i < nfound; i = j) {
        for (j = i + 1; j < nfound && found[j].n.version == found[i].n.version; j++)
            ;
        /* Counted before loading so that a failure frees the partly filled item too. */
        set->count++;
        rc = load_item(dir, found + i, j - i, &set->items[set->count - 1], err, errsize);
        if (rc != PGE_MIGFILE_OK)
            goto out;
    }
out:
    for (size_t i = 0; i < nfound; i++)
        free(found[i].fname);
    free(found);
    if (rc != PGE_MIGFILE_OK)
        pge_migfile_set_free(set);
    return rc;
}

/* ---- Revision -------------------------------------------------------------------------- */

int pge_migfile_slugify(const char *message, char *out, size_t size)
{
    char tmp[PGE_MIGFILE_SLUG_MAX];
    size_t n = 0;
    int gap = 0;
    for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
        int c = *p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            gap = n > 0;
            continue;
        }
        if (gap && n < sizeof tmp)
            tmp[n++] = '_';
        gap = 0;
        if (n == sizeof tmp)
            break;
        tmp[n++] = (char)c;
    }
    /* The cut may have fallen just after a '_'. */
    while (n > 0 && tmp[n - 1] == '_')
        n--;
    if (n == 0 || n + 1 > size)
        return -1;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return (int)n;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Create path with O_EXCL and write text. Returns OK, EXISTS, UNREADABLE (cannot create or
 * write: the message says why); a file that was created but not written is removed. */
static enum pge_migfile_result create_file(const char *path, const char *text, char *err,
                                           size_t errsize)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0) {
        pge_errbuf_set(err, errsize, "cannot create %s: %s%s", path, strerror(errno),
                       errno == EEXIST ? ": it was not overwritten; run revision again"
                                       : ": fix the directory's permissions");
        return errno == EEXIST ? PGE_MIGFILE_EXISTS : PGE_MIGFILE_UNREADABLE;
    }
    if (write_all(fd, text, strlen(text)) < 0 || close(fd) < 0) {
        pge_errbuf_set(err, errsize, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return PGE_MIGFILE_UNREADABLE;
    }
    return PGE_MIGFILE_OK;
}

enum pge_migfile_result pge_migfile_create_pair(const char *dir, const char *version_text,
                                                const char *slug, const char *message,
                                                char **up_path, char **down_path, char *err,
                                                size_t errsize)
{
    enum pge_migfile_result rc = PGE_MIGFILE_SYSTEM; /* a bare goto out: out of memory */
    char *clean = strdup(message);
    char *up_text = NULL, *down_text = NULL, *upname = NULL, *downname = NULL;

    *up_path = NULL;
    *down_path = NULL;
    if (!clean)
        goto out;
    /* The message goes into a comment line: a newline in it would turn the rest into SQL. */
    for (char *p = clean; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    up_text = fmt("-- %s\n"
                  "-- Runs in one transaction with its history row. To run it statement by\n"
                  "-- statement outside a transaction (CREATE INDEX CONCURRENTLY...), make the\n"
                  "-- first line exactly: " PGE_MIGFILE_NO_TX_MARK "\n\n",
                  clean);
    down_text = fmt("-- %s\n-- Reverts %s_%s.up.sql.\n\n", clean, version_text, slug);
    upname = fmt("%s_%s.up.sql", version_text, slug);
    downname = fmt("%s_%s.down.sql", version_text, slug);
    if (!up_text || !down_text || !upname || !downname)
        goto out;
    *up_path = join(dir, upname);
    *down_path = join(dir, downname);
    if (!*up_path || !*down_path)
        goto out;
    rc = create_file(*up_path, up_text, err, errsize);
    if (rc != PGE_MIGFILE_OK)
        goto out;
    rc = create_file(*down_path, down_text, err, errsize);
    if (rc != PGE_MIGFILE_OK)
        unlink(*up_path); /* half a pair would be an upgrade without its way back */
out:
    if (rc == PGE_MIGFILE_SYSTEM)
        pge_errbuf_set(err, errsize, "out of memory");
    if (rc != PGE_MIGFILE_OK) {
        free(*up_path);
        free(*down_path);
        *up_path = NULL;
        *down_path = NULL;
    }
    free(clean);
    free(up_text);
    free(down_text);
    free(upname);
    free(downname);
    return rc;
}

enum pge_migfile_result pge_migfile_revision(const char *dir, const char *message, char **up_path,
                                             char **down_path, char *err, size_t errsize)
{
    enum pge_migfile_result rc;
    struct pge_migset set;
    char slug[PGE_MIGFILE_SLUG_MAX + 1];
    char *version_text = NULL;
    int64_t next = 1;
    int width = 4;

    *up_path = NULL;
    *down_path = NULL;
    rc = pge_migfile_scan(dir, &set, err, errsize);
    if (rc == PGE_MIGFILE_NO_DIR) {
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            pge_errbuf_set(err, errsize, "cannot create migrations directory %s: %s", dir,
                           strerror(errno));
            rc = PGE_MIGFILE_UNREADABLE;
            goto out;
        }
        rc = pge_migfile_scan(dir, &set, err, errsize);
    }
    if (rc != PGE_MIGFILE_OK)
        goto out;
    if (pge_migfile_slugify(message, slug, sizeof slug) < 0) {
        pge_errbuf_set(err, errsize,
                       "revision message \"%s\" has no letter or digit to name the files: use e.g. "
                       "-m \"add users\"",
                       message);
        rc = PGE_MIGFILE_BAD_MESSAGE;
        goto out;
    }
    if (set.count > 0) {
        const struct pge_migfile *last = &set.items[set.count - 1];
        if (last->version == INT64_MAX) {
            pge_errbuf_set(err, errsize,
                           "%s has the largest possible version: no version comes after it",
                           last->up_path);
            rc = PGE_MIGFILE_FULL;
            goto out;
        }
        next = last->version + 1;
        width = (int)strlen(last->version_text);
    }
    version_text = fmt("%0*" PRId64, width, next);
    if (!version_text) {
        pge_errbuf_set(err, errsize, "out of memory");
        rc = PGE_MIGFILE_SYSTEM;
        goto out;
    }
    rc =
        pge_migfile_create_pair(dir, version_text, slug, message, up_path, down_path, err, errsize);
out:
    pge_migfile_set_free(&set);
    free(version_text);
    return rc;
}
