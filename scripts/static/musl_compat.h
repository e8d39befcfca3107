/* Force-included into the static (musl) build only, by scripts/static/static.cmake.
 * musl has no malloc_trim: its allocator (mallocng) already returns freed memory to the
 * kernel on free(), so there is nothing left to trim. */
#ifndef PGENTRY_MUSL_COMPAT_H
#define PGENTRY_MUSL_COMPAT_H
#include <stddef.h>

static inline int malloc_trim(size_t pad)
{
    (void)pad;
    return 0;
}

#endif
