/* One-line error messages into a caller's buffer: how low-level modules report without logging. */
#include "pgentry/common/errbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

void pge_errbuf_set(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;
    if (!err || size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    errno = saved;
}
