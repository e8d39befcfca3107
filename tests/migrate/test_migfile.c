/* Unit tests for migration files: names, normalisation, checksums, reading one file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgentry/migrate/migfile.h"
#include "migfile_fixture.h"

TestSuite(migfile, .init = setup, .fini = teardown);

/* An independent SHA-256 (plain libcrypto, no normalisation) to check ours against. */
static void sha256_plain(const char *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    cr_assert_eq(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    cr_assert_eq(n, 32);
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* ---- Names ----------------------------------------------------------------------------- */

static const struct {
    const char *in;
    int64_t version;
    const char *text;
    const char *slug;
    int down;
} good_names[] = {
    {"0001_init.up.sql", 1, "0001", "init", 0},
    {"2_b.down.sql", 2, "2", "b", 1},
    {"10_x_y.up.sql", 10, "10", "x_y", 0},
    {"0_zero.up.sql", 0, "0", "zero", 0},
    {"9223372036854775807_max.down.sql", INT64_MAX, "9223372036854775807", "max", 1},
    {"000000000000000000000000042_w.up.sql", 42, "000000000000000000000000042", "w", 0},
    {"0001_a.b.up.sql", 1, "0001", "a.b", 0},
    {"0001_add user.up.sql", 1, "0001", "add user", 0},
    {"0003_caf\xc3\xa9.up.sql", 3, "0003", "caf\xc3\xa9", 0},
    {"7__.down.sql", 7, "7", "_", 1},
    {"0001_x.down.up.sql", 1, "0001", "x.down", 0},
};

Test(migfile, parse_name_accepts_every_field, .timeout = 10)
{
    for (size_t i = 0; i < sizeof good_names / sizeof good_names[0]; i++) {
        const char *in = good_names[i].in;
        struct pge_migfile_name n;
        memset(&n, 0x55, sizeof n);
        cr_assert_eq(pge_migfile_parse_name(in, strlen(in), &n), PGE_MIGFILE_NAME_OK, "%s", in);
        cr_assert_eq(n.version, good_names[i].version, "%s", in);
        cr_assert_eq(n.version_text, in, "%s: version_text must point into the name", in);
        cr_assert_eq(n.version_len, strlen(good_names[i].text), "%s", in);
        cr_assert_eq(memcmp(n.version_text, good_names[i].text, n.version_len), 0, "%s", in);
        cr_assert_eq(n.slug_len, strlen(good_names[i].slug), "%s", in);
        cr_assert_eq(memcmp(n.slug, good_names[i].slug, n.slug_len), 0, "%s", in);
        cr_assert_eq(n.slug, in + n.version_len + 1, "%s", in);
        cr_assert_eq(n.down, good_names[i].down, "%s", in);
        cr_assert_null(n.why, "%s", in);
    }
}

Test(migfile, parse_name_ignores_other_files, .timeout = 10)
{
    static const char *const other[] = {
        "README.md",         ".gitkeep",        "0001_x.up.sql~", "0001_x.up.sql.bak",
        ".0001_x.up.sql",    "x0001_a.up.sql",  "0001_x.sql",     "",
        "0001_x.UP.SQL",     "#0001_x.up.sql#", "notes.up.sql",   "0001_x.up.sq",
        "0001_x.up.sql.swp", "1up.sql",         "0001_x.upsql",   "0001_x.up-sql",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        struct pge_migfile_name n, before;
        memset(&n, 0x55, sizeof n);
        before = n;
        cr_assert_eq(pge_migfile_parse_name(other[i], strlen(other[i]), &n), PGE_MIGFILE_NAME_OTHER,
                     "\"%s\"", other[i]);
        cr_assert_eq(memcmp(&n, &before, sizeof n), 0, "output written for \"%s\"", other[i]);
    }
    /* A NUL inside the given length is not a file name. */
    static const char nul[] = "0001_a\0b.up.sql";
    struct pge_migfile_name n;
    cr_assert_eq(pge_migfile_parse_name(nul, sizeof nul - 1, &n), PGE_MIGFILE_NAME_OTHER);
}

Test(migfile, parse_name_flags_near_misses, .timeout = 10)
{
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"0001.up.sql", "followed by '_'"},
        {"1.down.sql", "followed by '_'"},
        {"0001-add.up.sql", "followed by '_'"},
        {"0001add.up.sql", "followed by '_'"},
        {"0001_.up.sql", "empty"},
        {"0001_.down.sql", "empty"},
        {"9223372036854775808_x.up.sql", "larger"},
        {"99999999999999999999_x.down.sql", "larger"},
        {"0001_a\tb.up.sql", "control"},
        {"0001_a\x7f.up.sql", "control"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pge_migfile_name n;
        memset(&n, 0, sizeof n);
        cr_assert_eq(pge_migfile_parse_name(bad[i].in, strlen(bad[i].in), &n),
                     PGE_MIGFILE_NAME_MALFORMED, "%s", bad[i].in);
        cr_assert_not_null(n.why, "%s", bad[i].in);
        cr_assert_not_null(strstr(n.why, bad[i].why), "%s: why=%s", bad[i].in, n.why);
    }
}

Test(migfile, parse_name_every_truncated_prefix, .timeout = 10)
{
    for (size_t i = 0; i < sizeof good_names / sizeof good_names[0]; i++) {
        const char *in = good_names[i].in;
        size_t len = strlen(in);
        for (size_t k = 0; k < len; k++) {
            /* An exact-size copy without NUL: ASan catches any read past the given length. */
            char *prefix = malloc(k ? k : 1);
            cr_assert_not_null(prefix);
            memcpy(prefix, in, k);
            struct pge_migfile_name n, before;
            memset(&n, 0x55, sizeof n);
            before = n;
            /* No proper prefix of these ends in a suffix, so none is even a near miss. */
            cr_assert_eq(pge_migfile_parse_name(prefix, k, &n), PGE_MIGFILE_NAME_OTHER,
                         "%s[0..%zu)", in, k);
            cr_assert_eq(memcmp(&n, &before, sizeof n), 0, "%s[0..%zu) wrote", in, k);
            free(prefix);
        }
    }
    /* And a prefix that ends exactly at a shorter suffix parses as that name. */
    struct pge_migfile_name n;
    const char *in = "0001_a.up.sql.up.sql";
    cr_assert_eq(pge_migfile_parse_name(in, strlen("0001_a.up.sql"), &n), PGE_MIGFILE_NAME_OK);
    cr_assert_eq(n.slug_len, 1);
}

Test(migfile, parse_version_bounds, .timeout = 10)
{
    int64_t v = -1;
    cr_assert_eq(pge_migfile_parse_version("0", 1, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(pge_migfile_parse_version("0042", 4, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(pge_migfile_parse_version("9223372036854775807", 19, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(pge_migfile_parse_version("123", 2, &v), 0, "length bounds the parse");
    cr_assert_eq(v, 12);
    static const char *const bad[] = {
        "", "9223372036854775808", "18446744073709551616", "-1", "+1", "1a", " 1", "1 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 77;
        cr_assert_eq(pge_migfile_parse_version(bad[i], strlen(bad[i]), &v), -1, "\"%s\"", bad[i]);
        cr_assert_eq(v, 77, "\"%s\" wrote the output", bad[i]);
    }
}

/* ---- Text ------------------------------------------------------------------------------ */

Test(migfile, normalize_strips_bom_and_crlf_only, .timeout = 10)
{
    static const struct {
        const char *in;
        size_t inlen;
        const char *out;
        size_t outlen;
    } cases[] = {
        {"", 0, "", 0},
        {"a\r\nb\r\n", 6, "a\nb\n", 4},
        {"\xEF\xBB\xBF"
         "a",
         4, "a", 1},
        {"\xEF\xBB\xBF", 3, "", 0},
        {"\xEF\xBB", 2, "\xEF\xBB", 2},
        {"\xEF\xBB\xBF\xEF\xBB\xBF"
         "x",
         7,
         "\xEF\xBB\xBF"
         "x",
         4},
        {"a\xEF\xBB\xBF", 4, "a\xEF\xBB\xBF", 4},
        {"a\rb", 3, "a\rb", 3},
        {"a\r", 2, "a\r", 2},
        {"\r\r\n", 3, "\r\n", 2},
        {"\n\r", 2, "\n\r", 2},
        {"\xEF\xBB\xBF\r\n", 5, "\n", 1},
        {"a\0\r\nb", 5, "a\0\nb", 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[16];
        memcpy(buf, cases[i].in, cases[i].inlen);
        size_t n = pge_migfile_normalize(buf, cases[i].inlen);
        cr_assert_eq(n, cases[i].outlen, "case %zu: length %zu", i, n);
        cr_assert_eq(memcmp(buf, cases[i].out, n), 0, "case %zu", i);
    }
}

Test(migfile, checksum_known_vectors_and_normalisation, .timeout = 10)
{
    char hex[PGE_MIGFILE_CHECKSUM_LEN + 1];
    pge_migfile_checksum("", 0, hex);
    cr_assert_str_eq(hex, SHA_EMPTY);
    pge_migfile_checksum("abc", 3, hex);
    cr_assert_str_eq(hex, SHA_ABC);
    pge_migfile_checksum("\xEF\xBB\xBF"
                         "abc",
                         6, hex);
    cr_assert_str_eq(hex, SHA_ABC, "a BOM must not change the checksum");

    char lf[65], crlf[65], cr[65];
    pge_migfile_checksum("SELECT 1;\nSELECT 2;\n", 20, lf);
    pge_migfile_checksum("\xEF\xBB\xBFSELECT 1;\r\nSELECT 2;\r\n", 25, crlf);
    pge_migfile_checksum("SELECT 1;\rSELECT 2;\r", 20, cr);
    cr_assert_str_eq(lf, crlf);
    cr_assert_str_neq(lf, cr, "a lone CR is content, not a line end");
}

Test(migfile, checksum_equals_sha_of_normalised_text, .timeout = 10)
{
    /* Streaming the runs between dropped bytes must hash exactly what normalize() keeps. */
    static const char alphabet[] = {'\r', '\n', 'a', '\xEF', '\xBB', '\xBF'};
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 2000; round++) {
        char raw[24], norm[24], want[65], got[65];
        size_t len = (size_t)(round % 24);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            raw[i] = alphabet[(seed >> 33) % sizeof alphabet];
        }
        /* Most inputs should start with a BOM to exercise the strip. */
        if (len >= 3 && round % 3 == 0)
            memcpy(raw, "\xEF\xBB\xBF", 3);
        memcpy(norm, raw, len);
        size_t n = pge_migfile_normalize(norm, len);
        sha256_plain(norm, n, want);
        pge_migfile_checksum(raw, len, got);
        cr_assert_str_eq(got, want, "round %d", round);
    }
}

Test(migfile, no_transaction_marker_variants, .timeout = 10)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"-- pgentry:no-transaction", 1},
        {"-- pgentry:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);\n", 1},
        {"-- pgentry:no-transaction\r\nSELECT 1;\r\n", 1},
        {"-- pgentry:no-transaction   \t\r\n", 1},
        {"\xEF\xBB\xBF-- pgentry:no-transaction\n", 1},
        /* The header is every leading blank or comment line, spacing is free. */
        {"--pgentry:no-transaction\n", 1},
        {" -- pgentry:no-transaction\n", 1},
        {"\n-- pgentry:no-transaction\n", 1},
        {"-- up: add an index\n-- pgentry:envsubst\n-- pgentry:no-transaction\n", 1},
        /* An unknown word is an error (pge_migfile_directives), never no-transaction. */
        {"-- pgentry:no-transaction extra\n", 0},
        {"-- PGENTRY:NO-TRANSACTION\n", 0},
        {"-- pgentry:no-transactio\n", 0},
        {"-- pgentry:no-transaction;\n", 0},
        {"-- pgentry:typo\n-- pgentry:no-transaction\n", 0},
        /* After the first statement, or a block comment, it is a plain comment. */
        {"SELECT 1;\n-- pgentry:no-transaction\n", 0},
        {"/* x */\n-- pgentry:no-transaction\n", 0},
        {"", 0},
        {"\xEF\xBB\xBF", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(pge_migfile_no_transaction(cases[i].text, strlen(cases[i].text)),
                     cases[i].want, "\"%s\"", cases[i].text);
}

/* ---- Reading --------------------------------------------------------------------------- */

Test(migfile, read_normalises_and_checksums_what_it_returns, .timeout = 10)
{
    static const char raw[] = "\xEF\xBB\xBF-- x\r\nSELECT 1;\r\n";
    char *text = (char *)1, sum[65], want[65], err[256];
    size_t len = 0;
    pgt_write(dir, "a.sql", raw, sizeof raw - 1);
    cr_assert_eq(pge_migfile_read(path_of("a.sql"), &text, &len, sum, err, sizeof err),
                 PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(len, strlen("-- x\nSELECT 1;\n"));
    cr_assert_str_eq(text, "-- x\nSELECT 1;\n");
    pge_migfile_checksum(raw, sizeof raw - 1, want);
    cr_assert_str_eq(sum, want);
    free(text);

    /* Checksum is optional. */
    cr_assert_eq(pge_migfile_read(path_of("a.sql"), &text, &len, NULL, err, sizeof err),
                 PGE_MIGFILE_OK);
    free(text);
}

Test(migfile, read_refuses_what_is_not_a_readable_file, .timeout = 10)
{
    char *text = (char *)1, err[512];
    size_t len;

    cr_assert_eq(pge_migfile_read(path_of("nope.sql"), &text, &len, NULL, err, sizeof err),
                 PGE_MIGFILE_UNREADABLE);
    cr_assert_null(text);
    cr_assert_not_null(strstr(err, "nope.sql"), "%s", err);

    cr_assert_eq(mkdir(path_of("d.sql"), 0755), 0);
    cr_assert_eq(pge_migfile_read(path_of("d.sql"), &text, &len, NULL, err, sizeof err),
                 PGE_MIGFILE_UNREADABLE);
    cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);

    /* A FIFO must be refused at once, not waited on (the timeout catches a hang). */
    cr_assert_eq(mkfifo(path_of("f.sql"), 0644), 0);
    cr_assert_eq(pge_migfile_read(path_of("f.sql"), &text, &len, NULL, err, sizeof err),
                 PGE_MIGFILE_UNREADABLE);
    cr_assert_not_null(strstr(err, "f.sql"), "%s", err);

    if (geteuid() != 0) {
        pgt_write_str(dir, "locked.sql", "SELECT 1;");
        cr_assert_eq(chmod(path_of("locked.sql"), 0), 0);
        cr_assert_eq(pge_migfile_read(path_of("locked.sql"), &text, &len, NULL, err, sizeof err),
                     PGE_MIGFILE_UNREADABLE);
        cr_assert_not_null(strstr(err, "Permission denied"), "%s", err);
    }
}

Test(migfile, read_bounds_the_size, .timeout = 10)
{
    char *text = NULL, err[512];
    size_t len = 0;
    int fd;

    /* Sparse files: the limit is checked before anything is read. */
    pgt_write_str(dir, "big.sql", "");
    fd = open(path_of("big.sql"), O_WRONLY);
    cr_assert_eq(ftruncate(fd, (off_t)PGE_MIGFILE_MAX_BYTES + 1), 0);
    close(fd);
    cr_assert_eq(pge_migfile_read(path_of("big.sql"), &text, &len, NULL, err, sizeof err),
                 PGE_MIGFILE_TOO_BIG);
    cr_assert_null(text);
    cr_assert_not_null(strstr(err, "big.sql"), "%s", err);
    cr_assert_not_null(strstr(err, "64 MiB"), "%s", err);

    fd = open(path_of("big.sql"), O_WRONLY);
    cr_assert_eq(ftruncate(fd, (off_t)PGE_MIGFILE_MAX_BYTES), 0);
    close(fd);
    cr_assert_eq(pge_migfile_read(path_of("big.sql"), &text, &len, NULL, err, sizeof err),
                 PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(len, PGE_MIGFILE_MAX_BYTES);
    free(text);
}

Test(migfile, outcome_mapping, .timeout = 10)
{
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_OK), PGE_OUT_OK);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_TOO_BIG), PGE_OUT_CONFIG);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_FULL), PGE_OUT_MIGRATION_FAILED);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_SYSTEM), PGE_OUT_INTERNAL);
}
