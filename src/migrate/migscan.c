/* Scan a migrations directory into a checked, sorted set of up/down file pairs. */
#include "pgentry/migrate/migfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/migrate/sqlsplit.h"
#include "migfile_int.h"

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

static int cmp_found(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    if (x->n.version != y->n.version)
        return x->n.version < y->n.version ? -1 : 1;
    if (x->n.down != y->n.down)
        return x->n.down - y->n.down;
    return strcmp(x->fname, y->fname);
}

static void free_items(struct pge_migfile *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].version_text);
        free(items[i].name);
        free(items[i].up_path);
        free(items[i].down_path);
    }
    free(items);
}

void pge_migfile_set_free(struct pge_migset *set)
{
    if (!set)
        return;
    free_items(set->items, set->count);
    free_items(set->repeatables, set->nrepeatables);
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

/* Why opendir(dir) failed (errno), in err; the result to return. */
static enum pge_migfile_result open_failed(const char *dir, char *err, size_t errsize)
{
    if (errno == ENOENT) {
        pge_errbuf_set(err, errsize,
                       "migrations directory %s does not exist: create it or point --migrations "
                       "(PGENTRY_MIGRATIONS) at it",
                       dir);
        return PGE_MIGFILE_NO_DIR;
    }
    if (errno == ENOTDIR) {
        pge_errbuf_set(err, errsize,
                       "%s is not a directory: point --migrations (PGENTRY_MIGRATIONS) at the "
                       "migrations directory",
                       dir);
        return PGE_MIGFILE_NOT_DIR;
    }
    pge_errbuf_set(err, errsize, "cannot read migrations directory %s: %s: fix its permissions",
                   dir, strerror(errno));
    return PGE_MIGFILE_UNREADABLE;
}

/* Append a copy of nm to set->ignored (room tracked in *icap). -1 when out of memory. */
static int add_ignored(struct pge_migset *set, size_t *icap, const char *nm)
{
    char **ig = grow(set->ignored, icap, set->nignored + 1, sizeof *ig);
    if (!ig)
        return -1;
    set->ignored = ig;
    set->ignored[set->nignored] = strdup(nm);
    if (!set->ignored[set->nignored])
        return -1;
    set->nignored++;
    return 0;
}

/* Append the repeatable migration nm (slug[0..n) in it) to set->repeatables (room tracked in
 * *rcap); its text is read later. -1 when out of memory. */
static int add_repeatable(struct pge_migset *set, size_t *rcap, const char *dir, const char *nm,
                          const char *slug, size_t n)
{
    struct pge_migfile *rs =
        grow(set->repeatables, rcap, set->nrepeatables + 1, sizeof *set->repeatables);
    if (!rs)
        return -1;
    set->repeatables = rs;
    struct pge_migfile *r = &rs[set->nrepeatables++];
    memset(r, 0, sizeof *r);
    r->version = -1;
    r->repeatable = 1;
    r->version_text = strdup("R");
    r->name = strndup(slug, n);
    r->up_path = pge_migfile_join(dir, nm);
    return r->version_text && r->name && r->up_path ? 0 : -1;
}

/* Append a copy of the migration name nm to *found (room tracked in *cap). -1 when out of
 * memory. */
static int add_found(struct found **found, size_t *nfound, size_t *cap, const char *nm)
{
    struct found *fs = grow(*found, cap, *nfound + 1, sizeof *fs);
    if (!fs)
        return -1;
    *found = fs;
    struct found *f = &(*found)[*nfound];
    f->fname = strdup(nm);
    if (!f->fname)
        return -1;
    (*nfound)++;
    /* Parse the copy again so the name's pointers point into memory we keep. */
    pge_migfile_parse_name(f->fname, strlen(f->fname), &f->n);
    return 0;
}

/* Read the directory: migration names into *found, everything else into set->ignored. A
 * malformed name is remembered (the smallest, so the message does not depend on readdir order)
 * and reported once the directory is closed. */
static enum pge_migfile_result list_dir(const char *dir, struct pge_migset *set,
                                        struct found **found, size_t *nfound, char *err,
                                        size_t errsize)
{
    enum pge_migfile_result rc = PGE_MIGFILE_SYSTEM; /* a bare goto out: out of memory */
    size_t cap = 0, icap = 0, rcap = 0;
    char *bad = NULL;
    const char *bad_why = NULL;
    struct dirent *de;
    DIR *d = opendir(dir);

    if (!d) {
        rc = open_failed(dir, err, errsize);
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
        const char *slug;
        size_t slen;
        enum pge_migfile_name_result rr =
            pr == PGE_MIGFILE_NAME_OTHER
                ? pge_migfile_parse_repeatable(nm, strlen(nm), &slug, &slen)
                : PGE_MIGFILE_NAME_OTHER;
        if (rr == PGE_MIGFILE_NAME_OK) {
            if (add_repeatable(set, &rcap, dir, nm, slug, slen) < 0)
                goto out;
            continue;
        }
        if (rr == PGE_MIGFILE_NAME_MALFORMED) {
            pr = rr;
            n.why = "a repeatable migration is R__name.sql, with a name of printable characters";
        }
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
        if (pr == PGE_MIGFILE_NAME_OTHER ? add_ignored(set, &icap, nm) < 0
                                         : add_found(found, nfound, &cap, nm) < 0)
            goto out;
    }
    if (errno != 0) {
        pge_errbuf_set(err, errsize, "cannot read migrations directory %s: %s: fix its permissions",
                       dir, strerror(errno));
        rc = PGE_MIGFILE_UNREADABLE;
        goto out;
    }
    if (bad) {
        char *path = pge_migfile_join(dir, bad);
        pge_errbuf_set(
            err, errsize, "%s: %s: rename it to %s (or remove it)", path ? path : bad, bad_why,
            strncmp(bad, "R__", 3) == 0 ? "R__name.sql" : "NNNN_name.up.sql / NNNN_name.down.sql");
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
        a = pge_migfile_join(dir, g[i].fname);
        b = pge_migfile_join(dir, g[i + 1].fname);
        pge_errbuf_set(err, errsize,
                       "%s and %s both have version %" PRId64 ": renumber or remove one of them",
                       a ? a : g[i].fname, b ? b : g[i + 1].fname, g[i].n.version);
        rc = PGE_MIGFILE_DUPLICATE;
    } else if (ups == 0) {
        a = pge_migfile_join(dir, g[0].fname);
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
        a = pge_migfile_join(dir, g[0].fname);
        b = pge_migfile_join(dir, g[1].fname);
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

/* The directives of path's text: no-transaction and envsubst flags, or BAD_DIRECTIVE naming
 * the line and what this version knows. */
static enum pge_migfile_result read_directives(const char *path, const char *text, size_t len,
                                               int *no_tx, int *envsubst, char *err, size_t errsize)
{
    struct pge_migfile_directives d;
    if (pge_migfile_directives(text, len, &d) < 0) {
        pge_errbuf_set(err, errsize,
                       "%s:%u: unknown directive \"pgentry:%.*s\" (this version knows: %s): fix "
                       "the typo, or upgrade pgentry if a newer release wrote it",
                       path, d.line, (int)(d.word_len > 64 ? 64 : d.word_len), d.word,
                       PGE_MIGFILE_KNOWN_DIRECTIVES);
        return PGE_MIGFILE_BAD_DIRECTIVE;
    }
    *no_tx = (d.flags & PGE_MIGFILE_DIR_NO_TX) != 0;
    *envsubst = (d.flags & PGE_MIGFILE_DIR_ENVSUBST) != 0;
    return PGE_MIGFILE_OK;
}

/* An unterminated construct counts as a statement: applying it reports the construct. */
static int has_statement(const char *text, size_t len)
{
    struct pge_sqlsplit sp;
    struct pge_sqlsplit_stmt st;
    pge_sqlsplit_init(&sp, text, len);
    return pge_sqlsplit_next(&sp, &st) != PGE_SQLSPLIT_END;
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
    m->up_path = pge_migfile_join(dir, g[0].fname);
    if (n == 2)
        m->down_path = pge_migfile_join(dir, g[1].fname);
    if (!m->version_text || !m->name || !m->up_path || (n == 2 && !m->down_path)) {
        pge_errbuf_set(err, errsize, "out of memory while reading %s", dir);
        rc = PGE_MIGFILE_SYSTEM;
        goto out;
    }
    rc = pge_migfile_read(m->up_path, &text, &len, m->checksum, err, errsize);
    if (rc != PGE_MIGFILE_OK)
        goto out;
    rc = read_directives(m->up_path, text, len, &m->no_transaction, &m->envsubst, err, errsize);
    m->up_empty = !has_statement(text, len);
    free(text);
    text = NULL;
    if (rc != PGE_MIGFILE_OK)
        goto out;
    if (m->down_path) {
        rc = pge_migfile_read(m->down_path, &text, &len, NULL, err, errsize);
        if (rc != PGE_MIGFILE_OK)
            goto out;
        rc = read_directives(m->down_path, text, len, &m->down_no_transaction, &m->down_envsubst,
                             err, errsize);
    }
out:
    free(text);
    return rc;
}

static int cmp_repeatable(const void *a, const void *b)
{
    const struct pge_migfile *x = a, *y = b;
    return strcmp(x->up_path, y->up_path);
}

/* Sort the repeatables by name and read each: checksum and directives. They always run in a
 * transaction with their record, so no-transaction is refused. */
static enum pge_migfile_result load_repeatables(struct pge_migset *set, char *err, size_t errsize)
{
    enum pge_migfile_result rc = PGE_MIGFILE_OK;
    if (set->nrepeatables > 1)
        qsort(set->repeatables, set->nrepeatables, sizeof *set->repeatables, cmp_repeatable);
    for (size_t i = 0; i < set->nrepeatables && rc == PGE_MIGFILE_OK; i++) {
        struct pge_migfile *r = &set->repeatables[i];
        char *text = NULL;
        size_t len;
        rc = pge_migfile_read(r->up_path, &text, &len, r->checksum, err, errsize);
        if (rc == PGE_MIGFILE_OK) {
            rc = read_directives(r->up_path, text, len, &r->no_transaction, &r->envsubst, err,
                                 errsize);
            r->up_empty = !has_statement(text, len);
        }
        free(text);
        if (rc == PGE_MIGFILE_OK && r->no_transaction) {
            pge_errbuf_set(err, errsize,
                           "%s: a repeatable migration always runs in one transaction with its "
                           "record: remove -- pgentry:no-transaction",
                           r->up_path);
            rc = PGE_MIGFILE_BAD_DIRECTIVE;
        }
    }
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
    rc = load_repeatables(set, err, errsize);
out:
    for (size_t i = 0; i < nfound; i++)
        free(found[i].fname);
    free(found);
    if (rc != PGE_MIGFILE_OK)
        pge_migfile_set_free(set);
    return rc;
}
