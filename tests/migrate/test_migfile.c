/* Unit tests for migration files: names, normalisation, checksums, scanning, revision. */
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
#include "pgt_fs.h"

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char *dir;

static void setup(void)
{
    dir = pgt_tmpdir();
}

static void teardown(void)
{
    pgt_rmtree(dir);
    free(dir);
}

TestSuite(migfile, .init = setup, .fini = teardown);

static char *path_of(const char *name)
{
    static char buf[4096];
    return pgt_join(buf, sizeof buf, dir, name);
}

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
    cr_assert_eq(pge_migfile_checksum("", 0, hex), 0);
    cr_assert_str_eq(hex, SHA_EMPTY);
    cr_assert_eq(pge_migfile_checksum("abc", 3, hex), 0);
    cr_assert_str_eq(hex, SHA_ABC);
    cr_assert_eq(pge_migfile_checksum("\xEF\xBB\xBF"
                                      "abc",
                                      6, hex),
                 0);
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
        cr_assert_eq(pge_migfile_checksum(raw, len, got), 0);
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
        {"--pgentry:no-transaction\n", 0},
        {" -- pgentry:no-transaction\n", 0},
        {"-- pgentry:no-transaction extra\n", 0},
        {"-- PGENTRY:NO-TRANSACTION\n", 0},
        {"-- pgentry:no-transactio\n", 0},
        {"\n-- pgentry:no-transaction\n", 0},
        {"SELECT 1;\n-- pgentry:no-transaction\n", 0},
        {"-- pgentry:no-transaction;\n", 0},
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

/* ---- Scanning -------------------------------------------------------------------------- */

Test(migfile, scan_sorts_numerically_and_fills_every_field, .timeout = 10)
{
    struct pge_migset set;
    char err[512], sum[65];

    pgt_write_str(dir, "10_c.up.sql", "abc");
    pgt_write_str(dir, "10_c.down.sql", "-- pgentry:no-transaction\nDROP INDEX CONCURRENTLY i;\n");
    pgt_write_str(dir, "2_b.up.sql", "-- pgentry:no-transaction\r\nCREATE INDEX CONCURRENTLY i;\n");
    pgt_write_str(dir, "0011_d.up.sql", "");
    pgt_write_str(dir, "1_a.up.sql", "SELECT 1;\n");
    pgt_write_str(dir, "1_a.down.sql", "SELECT 2;\n");

    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.count, 4);
    cr_assert_eq(set.nignored, 0);

    static const struct {
        int64_t version;
        const char *text, *name, *up, *down;
        int no_tx, down_no_tx;
    } want[] = {
        {1, "1", "a", "1_a.up.sql", "1_a.down.sql", 0, 0},
        {2, "2", "b", "2_b.up.sql", NULL, 1, 0},
        {10, "10", "c", "10_c.up.sql", "10_c.down.sql", 0, 1},
        {11, "0011", "d", "0011_d.up.sql", NULL, 0, 0},
    };
    for (size_t i = 0; i < 4; i++) {
        const struct pge_migfile *m = &set.items[i];
        char buf[4096];
        cr_assert_eq(m->version, want[i].version, "item %zu", i);
        cr_assert_str_eq(m->version_text, want[i].text);
        cr_assert_str_eq(m->name, want[i].name);
        cr_assert_str_eq(m->up_path, pgt_join(buf, sizeof buf, dir, want[i].up));
        if (want[i].down)
            cr_assert_str_eq(m->down_path, pgt_join(buf, sizeof buf, dir, want[i].down));
        else
            cr_assert_null(m->down_path, "item %zu", i);
        cr_assert_eq(m->no_transaction, want[i].no_tx, "item %zu", i);
        cr_assert_eq(m->down_no_transaction, want[i].down_no_tx, "item %zu", i);
        size_t len;
        char *raw = pgt_read(m->up_path, &len);
        cr_assert_not_null(raw);
        pge_migfile_checksum(raw, len, sum);
        cr_assert_str_eq(m->checksum, sum, "item %zu", i);
        free(raw);
    }
    cr_assert_str_eq(set.items[2].checksum, SHA_ABC);
    cr_assert_str_eq(set.items[3].checksum, SHA_EMPTY);

    cr_assert_eq(pge_migfile_set_find(&set, 1), 0);
    cr_assert_eq(pge_migfile_set_find(&set, 10), 2);
    cr_assert_eq(pge_migfile_set_find(&set, 11), 3);
    cr_assert_eq(pge_migfile_set_find(&set, 3), -1);
    cr_assert_eq(pge_migfile_set_find(&set, 12), -1);
    pge_migfile_set_free(&set);
    cr_assert_null(set.items);
    cr_assert_eq(set.count, 0);
    pge_migfile_set_free(&set); /* twice is fine */
    pge_migfile_set_free(NULL);
}

static int has_name(char **list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

Test(migfile, scan_lists_ignored_entries, .timeout = 10)
{
    static const char *const ignored[] = {"README.md", ".gitkeep", "0001_x.up.sql~",
                                          "notes.sql", "sub",      "0001_x.sql"};
    struct pge_migset set;
    char err[512];

    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (strcmp(ignored[i], "sub") != 0)
            pgt_write_str(dir, ignored[i], "junk");
    cr_assert_eq(mkdir(path_of("sub"), 0755), 0);
    pgt_write_str(dir, "0001_x.up.sql", "SELECT 1;");

    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.count, 1);
    cr_assert_str_eq(set.items[0].name, "x");
    cr_assert_eq(set.nignored, sizeof ignored / sizeof ignored[0]);
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        cr_assert(has_name(set.ignored, set.nignored, ignored[i]), "%s not listed", ignored[i]);
    cr_assert_not(has_name(set.ignored, set.nignored, "."));
    cr_assert_not(has_name(set.ignored, set.nignored, ".."));
    pge_migfile_set_free(&set);
}

Test(migfile, scan_empty_directory_is_fine, .timeout = 10)
{
    struct pge_migset set;
    char err[512];
    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK);
    cr_assert_eq(set.count, 0);
    cr_assert_null(set.items);
    cr_assert_eq(set.nignored, 0);
    pge_migfile_set_free(&set);
}

/* Scan expecting an error: the status, and every word of the message. */
static void scan_fails(const char *where, enum pge_migfile_result want, const char *const *words)
{
    struct pge_migset set;
    char err[1024] = "";
    cr_assert_eq(pge_migfile_scan(where, &set, err, sizeof err), want, "got: %s", err);
    cr_assert_eq(set.count, 0, "a failed scan must leave an empty set");
    cr_assert_null(set.items);
    cr_assert_null(strchr(err, '\n'), "one line: %s", err);
    for (; *words; words++)
        cr_assert_not_null(strstr(err, *words), "\"%s\" not in: %s", *words, err);
    pge_migfile_set_free(&set);
}

Test(migfile, scan_missing_or_not_a_directory, .timeout = 10)
{
    const char *w1[] = {"does not exist", "--migrations", NULL};
    scan_fails(path_of("absent"), PGE_MIGFILE_NO_DIR, w1);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_NO_DIR), PGE_OUT_CONFIG);

    pgt_write_str(dir, "file", "x");
    const char *w2[] = {"not a directory", "file", NULL};
    scan_fails(path_of("file"), PGE_MIGFILE_NOT_DIR, w2);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_NOT_DIR), PGE_OUT_CONFIG);
}

Test(migfile, scan_rejects_inconsistent_names, .timeout = 10)
{
    static const struct {
        const char *files[4];
        enum pge_migfile_result want;
        const char *words[5];
    } cases[] = {
        /* The same number written two ways is the same version. */
        {{"1_a.up.sql", "0001_b.up.sql"},
         PGE_MIGFILE_DUPLICATE,
         {"0001_b.up.sql", "1_a.up.sql", "version 1", "renumber"}},
        {{"0003_a.up.sql", "0003_b.up.sql", "0001_ok.up.sql"},
         PGE_MIGFILE_DUPLICATE,
         {"0003_a.up.sql", "0003_b.up.sql", "version 3"}},
        {{"0002_a.up.sql", "0002_a.down.sql", "2_a.down.sql"},
         PGE_MIGFILE_DUPLICATE,
         {"0002_a.down.sql", "2_a.down.sql"}},
        {{"0001_a.up.sql", "0002_x.down.sql"},
         PGE_MIGFILE_ORPHAN_DOWN,
         {"0002_x.down.sql", "0002_x.up.sql", "add the .up.sql"}},
        {{"0001_a.up.sql", "0001_b.down.sql"},
         PGE_MIGFILE_MISMATCH,
         {"0001_a.up.sql", "0001_b.down.sql", "rename the .down.sql to", "0001_a.down.sql"}},
        {{"1_a.up.sql", "0001_a.down.sql"},
         PGE_MIGFILE_MISMATCH,
         {"1_a.up.sql", "0001_a.down.sql", "1_a.down.sql"}},
        /* The smallest malformed name is reported, whatever the directory order. */
        {{"0001_a.up.sql", "0003_.up.sql", "0002.up.sql"},
         PGE_MIGFILE_BAD_NAME,
         {"0002.up.sql", "rename it to NNNN_name.up.sql"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/c%zu", dir, i);
        cr_assert_eq(mkdir(sub, 0755), 0);
        for (size_t k = 0; k < 4 && cases[i].files[k]; k++)
            pgt_write_str(sub, cases[i].files[k], "SELECT 1;");
        scan_fails(sub, cases[i].want, cases[i].words);
    }
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_DUPLICATE), PGE_OUT_MIGRATION_FAILED);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_ORPHAN_DOWN), PGE_OUT_MIGRATION_FAILED);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_MISMATCH), PGE_OUT_MIGRATION_FAILED);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_BAD_NAME), PGE_OUT_MIGRATION_FAILED);
}

Test(migfile, scan_unreadable_file, .timeout = 10)
{
    pgt_write_str(dir, "0001_a.up.sql", "a");
    /* A directory where a migration file should be: unreadable as a file, even for root. */
    cr_assert_eq(mkdir(path_of("0002_b.up.sql"), 0755), 0);
    const char *w[] = {"0002_b.up.sql", "not a regular file", NULL};
    scan_fails(dir, PGE_MIGFILE_UNREADABLE, w);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_UNREADABLE), PGE_OUT_CONFIG);

    if (geteuid() != 0) {
        cr_assert_eq(rmdir(path_of("0002_b.up.sql")), 0);
        pgt_write_str(dir, "0002_b.up.sql", "b");
        pgt_write_str(dir, "0002_b.down.sql", "b");
        cr_assert_eq(chmod(path_of("0002_b.down.sql"), 0), 0);
        const char *w2[] = {"0002_b.down.sql", "Permission denied", "permissions", NULL};
        scan_fails(dir, PGE_MIGFILE_UNREADABLE, w2);
    }
}

Test(migfile, scan_unreadable_directory, .timeout = 10)
{
    if (geteuid() == 0)
        cr_skip_test("root reads any directory");
    pgt_write_str(dir, "0001_a.up.sql", "a");
    cr_assert_eq(chmod(dir, 0300), 0);
    const char *w[] = {"cannot read migrations directory", "Permission denied", NULL};
    scan_fails(dir, PGE_MIGFILE_UNREADABLE, w);
    chmod(dir, 0700);
}

Test(migfile, scan_same_checksum_for_bom_and_crlf, .timeout = 10)
{
    struct pge_migset set;
    char err[512];
    pgt_write_str(dir, "1_lf.up.sql", "abc");
    pgt_write_str(dir, "2_bom.up.sql",
                  "\xEF\xBB\xBF"
                  "abc");
    pgt_write_str(dir, "3_lf.up.sql", "SELECT 1;\nSELECT 2;\n");
    pgt_write_str(dir, "4_crlf.up.sql", "\xEF\xBB\xBFSELECT 1;\r\nSELECT 2;\r\n");
    pgt_write_str(dir, "5_cr.up.sql", "SELECT 1;\rSELECT 2;\r");
    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.count, 5);
    cr_assert_str_eq(set.items[0].checksum, SHA_ABC);
    cr_assert_str_eq(set.items[1].checksum, SHA_ABC);
    cr_assert_str_eq(set.items[2].checksum, set.items[3].checksum);
    cr_assert_str_neq(set.items[2].checksum, set.items[4].checksum);
    pge_migfile_set_free(&set);
}

Test(migfile, scan_accepts_trailing_slash_and_symlinked_files, .timeout = 10)
{
    struct pge_migset set;
    char err[512], withslash[4096], target[4096];
    pgt_write_str(dir, "real.sql", "abc");
    cr_assert_eq(
        symlink(pgt_join(target, sizeof target, dir, "real.sql"), path_of("0001_link.up.sql")), 0);
    snprintf(withslash, sizeof withslash, "%s/", dir);
    cr_assert_eq(pge_migfile_scan(withslash, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.count, 1);
    cr_assert_str_eq(set.items[0].up_path, path_of("0001_link.up.sql"));
    cr_assert_str_eq(set.items[0].checksum, SHA_ABC);
    pge_migfile_set_free(&set);
}

/* ---- Revision -------------------------------------------------------------------------- */

Test(migfile, slugify_rules, .timeout = 10)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"Add users table", "add_users_table"},
        {"  --Hello,  World!! ", "hello_world"},
        {"v2: index on (a, b)", "v2_index_on_a_b"},
        {"\xc3\xbc"
         "ber caf\xc3\xa9",
         "ber_caf"},
        {"snake_case_already", "snake_case_already"},
        {"A", "a"},
        {"0042", "0042"},
        /* 59 letters, a space, more: the cut lands after the '_', which is trimmed. */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbb",
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[PGE_MIGFILE_SLUG_MAX + 1];
        int n = pge_migfile_slugify(cases[i].in, out, sizeof out);
        cr_assert_eq(n, (int)strlen(cases[i].out), "%s -> %d", cases[i].in, n);
        cr_assert_str_eq(out, cases[i].out);
        cr_assert_leq(n, PGE_MIGFILE_SLUG_MAX);
    }
    char out[8];
    cr_assert_eq(pge_migfile_slugify("", out, sizeof out), -1);
    cr_assert_eq(pge_migfile_slugify("!!! ---", out, sizeof out), -1);
    cr_assert_eq(pge_migfile_slugify("\xc3\xa9\xc3\xa9", out, sizeof out), -1);
    cr_assert_eq(pge_migfile_slugify("abcdefgh", out, sizeof out), -1, "does not fit in 8");
    cr_assert_eq(pge_migfile_slugify("abcdefg", out, sizeof out), 7);
}

static void revise(const char *where, const char *message, const char *up_name,
                   const char *down_name)
{
    char *up = NULL, *down = NULL, err[512] = "", buf[4096];
    cr_assert_eq(pge_migfile_revision(where, message, &up, &down, err, sizeof err), PGE_MIGFILE_OK,
                 "%s", err);
    cr_assert_str_eq(up, pgt_join(buf, sizeof buf, where, up_name));
    cr_assert_str_eq(down, pgt_join(buf, sizeof buf, where, down_name));
    cr_assert_eq(access(up, R_OK), 0);
    cr_assert_eq(access(down, R_OK), 0);
    free(up);
    free(down);
}

Test(migfile, revision_numbers_from_0001_and_writes_headers, .timeout = 10)
{
    struct pge_migset set;
    char err[512];

    revise(dir, "Add users", "0001_add_users.up.sql", "0001_add_users.down.sql");
    revise(dir, "add email", "0002_add_email.up.sql", "0002_add_email.down.sql");

    char *up = pgt_read(path_of("0001_add_users.up.sql"), NULL);
    char *down = pgt_read(path_of("0001_add_users.down.sql"), NULL);
    cr_assert_not_null(up);
    cr_assert_not_null(down);
    cr_assert_eq(strncmp(up, "-- Add users\n", 13), 0, "%s", up);
    cr_assert_not_null(strstr(up, PGE_MIGFILE_NO_TX_MARK), "the hint names the marker");
    cr_assert_eq(strncmp(down, "-- Add users\n", 13), 0, "%s", down);
    free(up);
    free(down);

    /* The new files scan cleanly, inside a transaction (the hint is not the marker). */
    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.count, 2);
    cr_assert_eq(set.items[1].version, 2);
    cr_assert_not_null(set.items[0].down_path);
    cr_assert_eq(set.items[0].no_transaction, 0);
    pge_migfile_set_free(&set);
}

Test(migfile, revision_keeps_the_width_of_the_highest_version, .timeout = 10)
{
    static const struct {
        const char *existing;
        const char *next;
    } cases[] = {
        {"9_a.up.sql", "10_next"},          {"0099_a.up.sql", "0100_next"},
        {"000009_a.up.sql", "000010_next"}, {"9999_a.up.sql", "10000_next"},
        {"0_a.up.sql", "1_next"},           {"20240101120000_a.up.sql", "20240101120001_next"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sub[4096], up[256], down[256];
        snprintf(sub, sizeof sub, "%s/c%zu", dir, i);
        cr_assert_eq(mkdir(sub, 0755), 0);
        pgt_write_str(sub, cases[i].existing, "SELECT 1;");
        snprintf(up, sizeof up, "%s.up.sql", cases[i].next);
        snprintf(down, sizeof down, "%s.down.sql", cases[i].next);
        revise(sub, "next", up, down);
    }
    /* Mixed widths: the highest version's text decides. */
    pgt_write_str(dir, "1_a.up.sql", "a");
    pgt_write_str(dir, "0002_b.up.sql", "b");
    revise(dir, "next", "0003_next.up.sql", "0003_next.down.sql");
}

Test(migfile, revision_creates_the_directory, .timeout = 10)
{
    char sub[4096];
    pgt_join(sub, sizeof sub, dir, "migrations");
    revise(sub, "init", "0001_init.up.sql", "0001_init.down.sql");
    struct stat st;
    cr_assert_eq(stat(sub, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));

    /* Only one level: a missing parent is an error, not a surprise tree. */
    char deep[4096], *up = (char *)1, *down = (char *)1, err[512];
    pgt_join(deep, sizeof deep, dir, "no/such");
    cr_assert_eq(pge_migfile_revision(deep, "x", &up, &down, err, sizeof err),
                 PGE_MIGFILE_UNREADABLE);
    cr_assert_null(up);
    cr_assert_null(down);
    cr_assert_not_null(strstr(err, "no/such"), "%s", err);
}

Test(migfile, revision_refuses_empty_slug_and_bad_directories, .timeout = 10)
{
    char *up = (char *)1, *down = (char *)1, err[512];
    cr_assert_eq(pge_migfile_revision(dir, "!!!", &up, &down, err, sizeof err),
                 PGE_MIGFILE_BAD_MESSAGE);
    cr_assert_null(up);
    cr_assert_null(down);
    cr_assert_not_null(strstr(err, "\"!!!\""), "%s", err);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_BAD_MESSAGE), PGE_OUT_USAGE);
    struct pge_migset set;
    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK);
    cr_assert_eq(set.count + set.nignored, 0, "nothing may be created");
    pge_migfile_set_free(&set);

    /* A broken directory is reported as the scan reports it. */
    pgt_write_str(dir, "0001_a.up.sql", "a");
    pgt_write_str(dir, "0001_b.up.sql", "b");
    cr_assert_eq(pge_migfile_revision(dir, "x", &up, &down, err, sizeof err),
                 PGE_MIGFILE_DUPLICATE);
    cr_assert_null(up);

    char sub[4096];
    pgt_join(sub, sizeof sub, dir, "full");
    cr_assert_eq(mkdir(sub, 0755), 0);
    pgt_write_str(sub, "9223372036854775807_last.up.sql", "a");
    cr_assert_eq(pge_migfile_revision(sub, "x", &up, &down, err, sizeof err), PGE_MIGFILE_FULL);
    cr_assert_not_null(strstr(err, "9223372036854775807_last.up.sql"), "%s", err);
}

Test(migfile, create_pair_never_overwrites, .timeout = 10)
{
    char *up = (char *)1, *down = (char *)1, err[512];

    /* The .up.sql exists: nothing is touched. */
    pgt_write_str(dir, "0005_x.up.sql", "precious");
    cr_assert_eq(pge_migfile_create_pair(dir, "0005", "x", "m", &up, &down, err, sizeof err),
                 PGE_MIGFILE_EXISTS);
    cr_assert_null(up);
    cr_assert_null(down);
    cr_assert_not_null(strstr(err, "0005_x.up.sql"), "%s", err);
    cr_assert_not_null(strstr(err, "not overwritten"), "%s", err);
    char *text = pgt_read(path_of("0005_x.up.sql"), NULL);
    cr_assert_str_eq(text, "precious");
    free(text);
    cr_assert_neq(access(path_of("0005_x.down.sql"), F_OK), 0);

    /* The .down.sql exists: the .up.sql made a moment ago is taken back. */
    pgt_write_str(dir, "0006_y.down.sql", "precious too");
    cr_assert_eq(pge_migfile_create_pair(dir, "0006", "y", "m", &up, &down, err, sizeof err),
                 PGE_MIGFILE_EXISTS);
    cr_assert_neq(access(path_of("0006_y.up.sql"), F_OK), 0, "half a pair left behind");
    text = pgt_read(path_of("0006_y.down.sql"), NULL);
    cr_assert_str_eq(text, "precious too");
    free(text);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_EXISTS), PGE_OUT_CONFIG);
}

Test(migfile, create_pair_keeps_the_message_on_one_comment_line, .timeout = 10)
{
    char *up = NULL, *down = NULL, err[512];
    cr_assert_eq(pge_migfile_create_pair(dir, "0001", "x", "fix\nDROP TABLE users;\r", &up, &down,
                                         err, sizeof err),
                 PGE_MIGFILE_OK, "%s", err);
    char *text = pgt_read(up, NULL);
    cr_assert_eq(strncmp(text, "-- fix DROP TABLE users; \n", 26), 0, "%s", text);
    for (char *line = text; line; line = strchr(line, '\n')) {
        line += *line == '\n';
        cr_assert(*line == '\0' || *line == '\n' || strncmp(line, "--", 2) == 0,
                  "not a comment: %s", line);
    }
    free(text);
    text = pgt_read(down, NULL);
    cr_assert_eq(strncmp(text, "-- fix DROP TABLE users; \n", 26), 0, "%s", text);
    cr_assert_not_null(strstr(text, "0001_x.up.sql"));
    free(text);
    free(up);
    free(down);
}

Test(migfile, outcome_mapping, .timeout = 10)
{
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_OK), PGE_OUT_OK);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_TOO_BIG), PGE_OUT_CONFIG);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_FULL), PGE_OUT_MIGRATION_FAILED);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_SYSTEM), PGE_OUT_INTERNAL);
}
