/* Integration tests of the operations options of migrations: --statement-timeout, and the
 * machine-readable reports (--format json, status --exit-code), against a real PostgreSQL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_world.h"

PGT_SHARED_PG_HOOKS()

/* The role's own statement_timeout (1s, in this database only: the server is shared) must not
 * kill a migration that runs longer. */
static void role_timeout_1s(struct pgt_world *w)
{
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER ROLE postgres IN DATABASE \"%s\" SET statement_timeout = '1s'",
             w->db);
    free(pgt_pg_query(w->pg, w->db, sql));
}

Test(migops, default_statement_timeout_overrides_the_roles, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    role_timeout_1s(&w);
    pgt_world_file(&w, "0001_slow.up.sql", "CREATE TABLE a (id int);\nSELECT pg_sleep(1.5);\n");
    pgt_world_file(&w, "0002_slow_notx.up.sql",
                   "-- pgentry:no-transaction\nSELECT pg_sleep(1.5);\nCREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "upgrade under a 1s role timeout: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(
        &w, "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgentry_migrations",
        "1,2");
}

Test(migops, statement_timeout_cancels_a_long_migration_with_65, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    role_timeout_1s(&w);
    pgt_world_file(&w, "0001_slow.up.sql", "CREATE TABLE a (id int);\nSELECT pg_sleep(1.5);\n");
    int rc = pgt_world_run(&w, &p, "upgrade", "--statement-timeout", "500ms", NULL);
    cr_assert_eq(rc, 65, "upgrade: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "57014"), "the SQLSTATE is named:\n%s", p.err);
    cr_assert(strstr(p.err, "statement timeout"), "PostgreSQL's message is shown:\n%s", p.err);
    pgt_proc_free(&p);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "0");
    pgt_world_assert_q(&w, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'", "0");

    /* A no-transaction migration gets the session-level setting. */
    struct pgt_world w2;
    pgt_world_init(&w2, NULL);
    pgt_world_file(&w2, "0001_slow_notx.up.sql",
                   "-- pgentry:no-transaction\nSELECT pg_sleep(1.5);\n");
    const char *env[] = {w2.env_url, w2.env_dir, "PGENTRY_HEALTH_ADDR=off",
                         "PGENTRY_STATEMENT_TIMEOUT=300ms", NULL};
    const char *argv[] = {"pgentry", "upgrade", NULL};
    rc = pgt_run(&p, argv, env, 60000);
    cr_assert_eq(rc, 65, "no-transaction upgrade: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "57014"), "the SQLSTATE is named:\n%s", p.err);
    pgt_proc_free(&p);
}

Test(migops, sql_output_shows_the_timeouts, .timeout = 30)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0002_b.up.sql", "-- pgentry:no-transaction\nCREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&w, &p, "upgrade", "--sql", "--statement-timeout", "2m", NULL);
    cr_assert_eq(rc, 0, "upgrade --sql: %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "BEGIN;\nSET LOCAL statement_timeout = '120000ms';\n"), "%s", p.out);
    cr_assert(strstr(p.out, "SET statement_timeout = '120000ms';\n-- pgentry:no-transaction"), "%s",
              p.out);
    cr_assert(strstr(p.out, "RESET statement_timeout;\n"), "%s", p.out);
    pgt_proc_free(&p);
}

/* Evaluate a Python expression over the JSON document json (as d) with a real JSON parser;
 * the result's repr, owned. A document Python cannot parse fails the test. */
static char *json_eval(const char *json, const char *expr)
{
    char dir[256], path[300];
    struct pgt_proc p;
    pgt_tempdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/doc.json", dir);
    pgt_write_file(path, json);
    const char *argv[] = {"/usr/bin/python3",
                          "-c",
                          "import json,sys\nd = json.load(open(sys.argv[1]))\n"
                          "print(repr(eval(sys.argv[2])))",
                          path,
                          expr,
                          NULL};
    int rc = pgt_run(&p, argv, NULL, 20000);
    cr_assert_eq(rc, 0, "python3 could not read the JSON:\n%s\n---\n%s", p.err, json);
    char *out = strdup(p.out);
    pgt_proc_free(&p);
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n')
        out[n - 1] = '\0';
    return out;
}

static void assert_json(const char *json, const char *expr, const char *expected)
{
    char *got = json_eval(json, expr);
    cr_assert_str_eq(got, expected, "%s\n  got: %s\n  want: %s\n---\n%s", expr, got, expected,
                     json);
    free(got);
}

Test(migops, json_reports_and_status_exit_codes, .timeout = 90)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);

    /* Empty database, nothing applied: current is null; two files pending → 1. */
    pgt_world_file(&w, "0001_first.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "0002_second \"q\".up.sql", "CREATE TABLE b (id int);\n");
    int rc = pgt_world_run(&w, &p, "current", "--format", "json", NULL);
    cr_assert_eq(rc, 0, "current: %d\n%s", rc, p.err);
    assert_json(p.out, "(d['format'], d['command'], d['current'])", "(1, 'current', None)");
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 1, "status --exit-code with pending: %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "pending"), "text output stays: %s", p.out);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--format=json", "--exit-code", NULL);
    cr_assert_eq(rc, 1, "status --exit-code with pending: %d\n%s", rc, p.err);
    assert_json(p.out, "(d['pending'], d['applied'], d['up_to_date'], d['table'])",
                "(2, 0, False, 'pgentry_migrations')");
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", NULL);
    cr_assert_eq(rc, 0, "status without --exit-code stays 0: %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    /* Up to date → 0; the fields of each version. */
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "upgrade: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--exit-code", "--format", "json", NULL);
    cr_assert_eq(rc, 0, "status --exit-code up to date: %d\n%s", rc, p.err);
    assert_json(p.out, "(d['format'], d['command'], d['current'], d['up_to_date'], d['pending'])",
                "(1, 'status', '0002', True, 0)");
    assert_json(p.out,
                "[(m['version'], m['version_number'], m['name'], m['state'], "
                "len(m['checksum_file']), m['checksum_file'] == m['checksum_recorded'], "
                "m['applied_at'] is not None) for m in d['migrations']]",
                "[('0001', 1, 'first', 'applied', 64, True, True), "
                "('0002', 2, 'second \"q\"', 'applied', 64, True, True)]");
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "history", "--format", "json", NULL);
    cr_assert_eq(rc, 0, "history: %d\n%s", rc, p.err);
    assert_json(p.out, "(d['command'], [m['state'] for m in d['migrations']], 'drift' in d)",
                "('history', ['applied', 'applied'], False)");
    pgt_proc_free(&p);

    /* Out of order → 65. */
    pgt_world_file(&w, "0000_early.up.sql", "CREATE TABLE c (id int);\n");
    rc = pgt_world_run(&w, &p, "status", "--exit-code", "--format", "json", NULL);
    cr_assert_eq(rc, 65, "status --exit-code out of order: %d\n%s", rc, p.err);
    assert_json(p.out, "(d['out_of_order'], d['migrations'][0]['state'])", "(1, 'out_of_order')");
    pgt_proc_free(&p);

    /* Drift → 65, even with the out-of-order file gone. */
    char path[512];
    snprintf(path, sizeof path, "%s/0000_early.up.sql", w.dir);
    cr_assert_eq(unlink(path), 0);
    pgt_world_file(&w, "0001_first.up.sql", "CREATE TABLE a (id bigint);\n");
    rc = pgt_world_run(&w, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 65, "status --exit-code with drift: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--format", "json", NULL);
    cr_assert_eq(rc, 0, "status (no --exit-code) with drift: %d\n%s", rc, p.err);
    assert_json(p.out,
                "(d['drift'], d['migrations'][0]['state'], "
                "d['migrations'][0]['checksum_file'] != d['migrations'][0]['checksum_recorded'])",
                "(1, 'drift', True)");
    pgt_proc_free(&p);
}

/* Repeatable migrations have their own array (no version), their own pending count, and make
 * --exit-code say 1; --allow-out-of-order turns an out-of-order file from 65 into pending. */
Test(migops, json_status_lists_repeatables, .timeout = 90)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    pgt_world_file(&w, "0001_first.up.sql", "CREATE TABLE a (id int);\n");
    pgt_world_file(&w, "R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id FROM a;\n");
    int rc = pgt_world_run(&w, &p, "status", "--format", "json", "--exit-code", NULL);
    cr_assert_eq(rc, 1, "status --exit-code, all pending: %d\n%s", rc, p.err);
    assert_json(p.out,
                "(d['pending'], d['repeatables_pending'], d['up_to_date'], "
                "[(r['name'], r['state'], r['applied_at'], r['checksum_recorded'], "
                "len(r['checksum_file']), 'version' in r) for r in d['repeatables']])",
                "(1, 1, False, [('a_view', 'pending', None, None, 64, False)])");
    pgt_proc_free(&p);

    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "upgrade: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--format", "json", "--exit-code", NULL);
    cr_assert_eq(rc, 0, "status --exit-code, up to date: %d\n%s", rc, p.err);
    assert_json(p.out,
                "(d['applied'], d['pending'], d['repeatables_pending'], d['up_to_date'], "
                "len(d['migrations']), [(r['name'], r['state'], r['applied_at'] is not None, "
                "r['checksum_file'] == r['checksum_recorded']) for r in d['repeatables']])",
                "(1, 0, 0, True, 1, [('a_view', 'applied', True, True)])");
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "history", "--format", "json", NULL);
    cr_assert_eq(rc, 0, "history: %d\n%s", rc, p.err);
    assert_json(p.out,
                "([m['version'] for m in d['migrations']], "
                "[(r['name'], r['state'], sorted(r)) for r in d['repeatables']])",
                "(['0001'], [('a_view', 'applied', ['applied_at', 'name', 'state'])])");
    pgt_proc_free(&p);

    /* Changed: pending again, the checksums differ; the versioned counts are unchanged. */
    pgt_world_file(&w, "R__a_view.sql",
                   "CREATE OR REPLACE VIEW a_view AS SELECT id, 1 AS one FROM a;\n");
    rc = pgt_world_run(&w, &p, "status", "--format", "json", "--exit-code", NULL);
    cr_assert_eq(rc, 1, "status --exit-code, changed repeatable: %d\n%s", rc, p.err);
    assert_json(p.out,
                "(d['pending'], d['repeatables_pending'], d['up_to_date'], "
                "[(r['state'], r['checksum_file'] != r['checksum_recorded']) "
                "for r in d['repeatables']])",
                "(0, 1, False, [('pending', True)])");
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "upgrade: %d\n%s", rc, p.err);
    pgt_proc_free(&p);

    /* Out of order: 65, or pending (1) when the option would apply it. */
    pgt_world_file(&w, "0000_early.up.sql", "CREATE TABLE c (id int);\n");
    rc = pgt_world_run(&w, &p, "status", "--exit-code", NULL);
    cr_assert_eq(rc, 65, "status --exit-code, out of order: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--exit-code", "--allow-out-of-order", NULL);
    cr_assert_eq(rc, 1, "status --exit-code --allow-out-of-order: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
}

Test(migops, format_and_exit_code_are_refused_elsewhere, .timeout = 30)
{
    struct pgt_world w;
    struct pgt_proc p;
    pgt_world_init(&w, NULL);
    int rc = pgt_world_run(&w, &p, "upgrade", "--format", "json", NULL);
    cr_assert_eq(rc, 64, "upgrade --format json: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "--format"), "%s", p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "history", "--exit-code", NULL);
    cr_assert_eq(rc, 64, "history --exit-code: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    rc = pgt_world_run(&w, &p, "status", "--format", "yaml", NULL);
    cr_assert_eq(rc, 64, "--format yaml: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "text or json"), "%s", p.err);
    pgt_proc_free(&p);
}
