/* Unit tests for `pgentry revision`: slugs, numbering, creating the file pair. */
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

TestSuite(revision, .init = setup, .fini = teardown);

/* ---- Revision -------------------------------------------------------------------------- */

Test(revision, slugify_rules, .timeout = 10)
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

Test(revision, revision_numbers_from_0001_and_writes_headers, .timeout = 10)
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

Test(revision, revision_keeps_the_width_of_the_highest_version, .timeout = 10)
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

Test(revision, revision_creates_the_directory, .timeout = 10)
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

Test(revision, revision_refuses_empty_slug_and_bad_directories, .timeout = 10)
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

Test(revision, create_pair_never_overwrites, .timeout = 10)
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

Test(revision, create_pair_keeps_the_message_on_one_comment_line, .timeout = 10)
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
