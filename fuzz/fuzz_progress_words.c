/* libFuzzer target: the index-build word scan reads no byte past the length, and agrees with
 * itself on a copy that has a NUL after the statement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/progress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past size. */
    char *stmt = malloc(size ? size : 1);
    char *terminated = malloc(size + 1);
    if (!stmt || !terminated)
        goto out;
    memcpy(stmt, data, size);
    memcpy(terminated, data, size);
    terminated[size] = '\0';
    int a = pge_progress_may_build_index(stmt, size);
    if ((a != 0 && a != 1) || a != pge_progress_may_build_index(terminated, size))
        abort();
out:
    free(stmt);
    free(terminated);
    return 0;
}
