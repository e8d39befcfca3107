/* Test helpers for real files: throwaway directories, writing and reading whole files. */
#include "pgt_fs.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *pgt_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (!base || !*base)
        base = "/tmp";
    cr_assert_neq(asprintf(&path, "%s/pgt.XXXXXX", base), -1);
    cr_assert_not_null(mkdtemp(path), "mkdtemp %s: %s", path, strerror(errno));
    return path;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    /* A test may have taken every permission away from a directory. */
    if (flag == FTW_DP || flag == FTW_DNR)
        chmod(path, 0700);
    remove(path);
    return 0;
}

void pgt_rmtree(const char *path)
{
    if (path)
        nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *pgt_join(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    cr_assert(n >= 0 && (size_t)n < size, "path too long: %s/%s", dir, name);
    return buf;
}

void pgt_write(const char *dir, const char *name, const char *data, size_t len)
{
    char path[4096];
    int fd = open(pgt_join(path, sizeof path, dir, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0644);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        cr_assert_gt(n, 0, "write %s: %s", path, strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    cr_assert_eq(close(fd), 0);
}

void pgt_write_str(const char *dir, const char *name, const char *text)
{
    pgt_write(dir, name, text, strlen(text));
}

char *pgt_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, used = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (used + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        size_t n = fread(buf + used, 1, cap - used - 1, f);
        used += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[used] = '\0';
    if (len)
        *len = used;
    return buf;
}
