/* `pgentry revision`: create the next numbered up/down migration file pair. */
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
#include "migfile_int.h"

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
    up_text = pge_migfile_fmt(
        "-- %s\n"
        "-- Runs in one transaction with its history row. To run it statement by\n"
        "-- statement outside a transaction (CREATE INDEX CONCURRENTLY...), make the\n"
        "-- first line exactly: " PGE_MIGFILE_NO_TX_MARK "\n\n",
        clean);
    down_text = pge_migfile_fmt("-- %s\n-- Reverts %s_%s.up.sql.\n\n", clean, version_text, slug);
    upname = pge_migfile_fmt("%s_%s.up.sql", version_text, slug);
    downname = pge_migfile_fmt("%s_%s.down.sql", version_text, slug);
    if (!up_text || !down_text || !upname || !downname)
        goto out;
    *up_path = pge_migfile_join(dir, upname);
    *down_path = pge_migfile_join(dir, downname);
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
    version_text = pge_migfile_fmt("%0*" PRId64, width, next);
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
