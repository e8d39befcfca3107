/* libFuzzer target: upgrade/downgrade/stamp targets parse strictly and round-trip. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/migplan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct pge_migplan_target t;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (pge_migplan_parse_target(s, &t) == 0) {
        /* Whatever is accepted prints back to the same meaning. */
        char again[32];
        struct pge_migplan_target u;
        switch (t.kind) {
        case PGE_MIGPLAN_TO_HEAD:
        case PGE_MIGPLAN_TO_BASE:
            snprintf(again, sizeof again, "%s", t.kind == PGE_MIGPLAN_TO_HEAD ? "head" : "base");
            if (strcmp(again, s) != 0)
                abort();
            break;
        case PGE_MIGPLAN_TO_VERSION:
        case PGE_MIGPLAN_TO_FORWARD:
        case PGE_MIGPLAN_TO_BACK:
            if (t.n < 0 || (t.kind != PGE_MIGPLAN_TO_VERSION && t.n == 0))
                abort();
            snprintf(again, sizeof again, "%s%" PRId64,
                     t.kind == PGE_MIGPLAN_TO_FORWARD ? "+"
                     : t.kind == PGE_MIGPLAN_TO_BACK  ? "-"
                                                      : "",
                     t.n);
            break;
        default:
            abort();
        }
        if (pge_migplan_parse_target(again, &u) != 0 || u.kind != t.kind || u.n != t.n)
            abort();
    }
    free(s);
    return 0;
}
