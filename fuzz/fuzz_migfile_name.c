/* libFuzzer target: migration file names parse without reading past the length, consistently. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/migfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past size. */
    char *name = malloc(size ? size : 1);
    struct pge_migfile_name n;
    int64_t v;

    if (!name)
        return 0;
    memcpy(name, data, size);
    memset(&n, 0, sizeof n);
    switch (pge_migfile_parse_name(name, size, &n)) {
    case PGE_MIGFILE_NAME_OK: {
        size_t suffix = n.down ? strlen(".down.sql") : strlen(".up.sql");
        if (n.version_text != name || n.version_len == 0 || n.slug_len == 0 ||
            n.slug != name + n.version_len + 1 || name[n.version_len] != '_' ||
            n.version_len + 1 + n.slug_len + suffix != size || n.why != NULL ||
            memchr(name, '\0', size) != NULL)
            abort();
        if (pge_migfile_parse_version(n.version_text, n.version_len, &v) < 0 || v != n.version ||
            n.version < 0)
            abort();
        break;
    }
    case PGE_MIGFILE_NAME_MALFORMED:
        if (!n.why)
            abort();
        break;
    case PGE_MIGFILE_NAME_OTHER:
        break;
    default:
        abort();
    }
    /* A repeatable name: the slug lies strictly inside, between "R__" and ".sql". */
    const char *slug = NULL;
    size_t slen = 0;
    if (pge_migfile_parse_repeatable(name, size, &slug, &slen) == PGE_MIGFILE_NAME_OK &&
        (slug != name + 3 || slen == 0 || slen + strlen("R__.sql") != size))
        abort();
    free(name);
    return 0;
}
