/* libFuzzer target: the streamed checksum hashes exactly what normalisation keeps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "pgentry/migrate/migfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *norm = malloc(size ? size : 1);
    char got[PGE_MIGFILE_CHECKSUM_LEN + 1], want[PGE_MIGFILE_CHECKSUM_LEN + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n;

    if (!norm)
        return 0;
    memcpy(norm, data, size);
    n = pge_migfile_normalize(norm, size);
    if (n > size)
        abort();
    if (EVP_Digest(norm, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        abort();
    for (unsigned i = 0; i < mdlen; i++) {
        want[2 * i] = "0123456789abcdef"[md[i] >> 4];
        want[2 * i + 1] = "0123456789abcdef"[md[i] & 0xf];
    }
    want[64] = '\0';
    if (pge_migfile_checksum((const char *)data, size, got) != 0 || strcmp(got, want) != 0)
        abort();
    /* The marker test looks at the first line only and never past size. */
    (void)pge_migfile_no_transaction((const char *)data, size);
    free(norm);
    return 0;
}
