/* Unit tests for scanning a migrations directory into a checked, sorted set. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgentry/migrate/migfile.h"
#include "migfile_fixture.h"

TestSuite(migscan, .init = setup, .fini = teardown);

/* ---- Scanning -------------------------------------------------------------------------- */

Test(migscan, scan_sorts_numerically_and_fills_every_field, .timeout = 10)
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

Test(migscan, scan_lists_ignored_entries, .timeout = 10)
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

Test(migscan, scan_empty_directory_is_fine, .timeout = 10)
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

Test(migscan, scan_missing_or_not_a_directory, .timeout = 10)
{
    const char *w1[] = {"does not exist", "--migrations", NULL};
    scan_fails(path_of("absent"), PGE_MIGFILE_NO_DIR, w1);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_NO_DIR), PGE_OUT_CONFIG);

    pgt_write_str(dir, "file", "x");
    const char *w2[] = {"not a directory", "file", NULL};
    scan_fails(path_of("file"), PGE_MIGFILE_NOT_DIR, w2);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_NOT_DIR), PGE_OUT_CONFIG);
}

Test(migscan, scan_rejects_inconsistent_names, .timeout = 10)
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

Test(migscan, scan_unreadable_file, .timeout = 10)
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

Test(migscan, scan_unreadable_directory, .timeout = 10)
{
    if (geteuid() == 0)
        cr_skip_test("root reads any directory");
    pgt_write_str(dir, "0001_a.up.sql", "a");
    cr_assert_eq(chmod(dir, 0300), 0);
    const char *w[] = {"cannot read migrations directory", "Permission denied", NULL};
    scan_fails(dir, PGE_MIGFILE_UNREADABLE, w);
    chmod(dir, 0700);
}

Test(migscan, scan_same_checksum_for_bom_and_crlf, .timeout = 10)
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

Test(migscan, scan_accepts_trailing_slash_and_symlinked_files, .timeout = 10)
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

Test(migscan, scan_refuses_unknown_directives, .timeout = 10)
{
    pgt_write_str(dir, "1_a.up.sql", "-- pgentry:envsubst\n-- pgentry:no-transaction\nSELECT 1;\n");
    pgt_write_str(dir, "2_b.up.sql", "-- add b\n-- pgentry:no-transacton\nSELECT 2;\n");
    const char *w[] = {"2_b.up.sql:2", "unknown directive", "no-transacton",
                       PGE_MIGFILE_KNOWN_DIRECTIVES, NULL};
    scan_fails(dir, PGE_MIGFILE_BAD_DIRECTIVE, w);
    cr_assert_eq(pge_migfile_outcome(PGE_MIGFILE_BAD_DIRECTIVE), PGE_OUT_MIGRATION_FAILED);
}

Test(migscan, scan_reads_directives_of_both_files, .timeout = 10)
{
    struct pge_migset set;
    char err[512];
    pgt_write_str(dir, "1_a.up.sql", "-- pgentry:envsubst\n-- pgentry:no-transaction\nSELECT 1;\n");
    pgt_write_str(dir, "1_a.down.sql", "\n-- pgentry:envsubst\nSELECT 2;\n");
    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.items[0].envsubst, 1);
    cr_assert_eq(set.items[0].no_transaction, 1);
    cr_assert_eq(set.items[0].down_envsubst, 1);
    cr_assert_eq(set.items[0].down_no_transaction, 0);
    pge_migfile_set_free(&set);

    /* The .down.sql's header is checked too. */
    pgt_write_str(dir, "1_a.down.sql", "-- pgentry:envsubts\nSELECT 2;\n");
    const char *w[] = {"1_a.down.sql:1", "envsubts", NULL};
    scan_fails(dir, PGE_MIGFILE_BAD_DIRECTIVE, w);
}

Test(migscan, scan_collects_repeatables_in_name_order, .timeout = 10)
{
    struct pge_migset set;
    char err[512], buf[4096];
    pgt_write_str(dir, "0001_a.up.sql", "CREATE TABLE a (x int);\n");
    pgt_write_str(dir, "R__views.sql", "abc");
    pgt_write_str(dir, "R__grants.sql", "-- pgentry:envsubst\nGRANT SELECT ON a TO ${R};\n");
    cr_assert_eq(pge_migfile_scan(dir, &set, err, sizeof err), PGE_MIGFILE_OK, "%s", err);
    cr_assert_eq(set.count, 1);
    cr_assert_eq(set.nrepeatables, 2);
    cr_assert_eq(set.nignored, 0);
    cr_assert_str_eq(set.repeatables[0].name, "grants");
    cr_assert_eq(set.repeatables[0].envsubst, 1);
    cr_assert_str_eq(set.repeatables[1].name, "views");
    cr_assert_str_eq(set.repeatables[1].up_path, pgt_join(buf, sizeof buf, dir, "R__views.sql"));
    cr_assert_str_eq(set.repeatables[1].checksum, SHA_ABC);
    cr_assert_eq(set.repeatables[1].repeatable, 1);
    cr_assert_eq(set.repeatables[1].version, -1);
    cr_assert_null(set.repeatables[1].down_path);
    pge_migfile_set_free(&set);

    pgt_write_str(dir, "R__tx.sql", "-- pgentry:no-transaction\nSELECT 1;\n");
    const char *w1[] = {"R__tx.sql", "one transaction", NULL};
    scan_fails(dir, PGE_MIGFILE_BAD_DIRECTIVE, w1);
    unlink(path_of("R__tx.sql"));
    pgt_write_str(dir, "R__.sql", "SELECT 1;\n");
    const char *w2[] = {"R__.sql", "R__name.sql", NULL};
    scan_fails(dir, PGE_MIGFILE_BAD_NAME, w2);
}
