/* libFuzzer target for pge_parse_duration: bounds, no write on failure, terms add up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/parse.h"

#define MAX_MS (100LL * 24 * 3600 * 1000)

static int ends_with_unit(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && (s[n - 1] == 's' || s[n - 1] == 'm' || s[n - 1] == 'h');
}

/* Parse s and check what holds for every input: 0 with a value in range, or -1 with the
 * output untouched. Returns the value, or -1. */
static int64_t parse_checked(const char *s)
{
    int64_t ms = -42;
    int rc = pge_parse_duration(s, &ms);
    if (rc == 0) {
        if (ms < 0 || ms > MAX_MS)
            abort();
        return ms;
    }
    if (rc != -1 || ms != -42)
        abort();
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char whole[130];
    if (size > 128)
        return 0;
    /* The first byte splits the rest into a and b: "a" + "b" must mean a + b when both are
     * durations with units ("1m" + "30s" = "1m30s"). */
    size_t cut = size ? data[0] % size : 0;
    const char *rest = size ? (const char *)data + 1 : "";
    size_t rlen = size ? size - 1 : 0;
    if (cut > rlen)
        cut = rlen;
    if (memchr(rest, '\0', rlen))
        return 0;
    char a[130], b[130];
    memcpy(a, rest, cut);
    a[cut] = '\0';
    memcpy(b, rest + cut, rlen - cut);
    b[rlen - cut] = '\0';
    memcpy(whole, rest, rlen);
    whole[rlen] = '\0';

    int64_t va = parse_checked(a), vb = parse_checked(b), vw = parse_checked(whole);
    if (va >= 0 && vb >= 0 && ends_with_unit(a) && ends_with_unit(b) && cut > 0 && cut < rlen) {
        if (va + vb <= MAX_MS && vw != va + vb)
            abort();
        if (va + vb > MAX_MS && vw != -1)
            abort();
    }
    return 0;
}
