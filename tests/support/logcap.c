/* Capture what the logger writes: lines go to a temp file the test reads back. */
#include "logcap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static FILE *g_file;

void pgt_logcap_start(enum pge_log_level level, enum pge_log_format format)
{
    g_file = tmpfile();
    cr_assert_not_null(g_file, "tmpfile: %s", strerror(errno));
    pge_log_setup(level, format);
    pge_log_set_fd(fileno(g_file));
}

char *pgt_logcap_take(void)
{
    int fd = fileno(g_file);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    cr_assert_not_null(buf);
    ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
    cr_assert_eq(n, st.st_size, "short read of the log capture");
    buf[n] = '\0';
    /* The logger writes with write(2) at the file offset: rewind it with the truncation. */
    cr_assert_eq(ftruncate(fd, 0), 0);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    return buf;
}

void pgt_logcap_stop(void)
{
    pge_log_set_fd(2);
    if (g_file)
        fclose(g_file);
    g_file = NULL;
}
