/* libFuzzer target: the streamed checksum hashes exactly what normalisation keeps; directives
 * and ${NAME} placeholders are read within bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "pgentry/migrate/migfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every NAME is set, to its own name: the result is then as long as the input minus "${}". */
static const char *echo(void *arg, const char *name, size_t len)
{
    static char buf[PGE_MIGFILE_VAR_MAX + 1];
    (void)arg;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return buf;
}

static void check_text(const char *text, size_t size)
{
    struct pge_migfile_directives d;
    struct pge_migfile_subst s;
    char masked[64];
    if (pge_migfile_directives(text, size, &d) < 0 &&
        (d.line == 0 || d.word < text || d.word + d.word_len > text + size))
        abort();
    enum pge_migfile_result r = pge_migfile_envsubst(text, size, echo, NULL, 1, &s);
    if (r == PGE_MIGFILE_OK && (s.len > size || s.text[s.len] != '\0'))
        abort();
    if (r != PGE_MIGFILE_OK && (s.text || s.name < text || s.name + s.name_len > text + size))
        abort();
    free(s.text);
    pge_migfile_envsubst_redact(text, size, echo, NULL, "message", masked, sizeof masked);
}

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
    pge_migfile_checksum((const char *)data, size, got);
    if (strcmp(got, want) != 0)
        abort();
    /* The header readers never look past size. */
    (void)pge_migfile_no_transaction((const char *)data, size);
    check_text((const char *)data, size);
    free(norm);
    return 0;
}
