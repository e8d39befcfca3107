/* Unit tests of histsql: quoting, history rows, the lock key, transaction-control detection. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/migrate/histsql.h"

Test(histsql, quotes_tables_literally, .timeout = 10)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: refused */
        size_t schema_len;
    } cases[] = {
        {"pgentry_migrations", "\"pgentry_migrations\"", 0},
        {"app.history", "\"app\".\"history\"", 3},
        {"Mixed", "\"Mixed\"", 0},
        {"we\"ird", "\"we\"\"ird\"", 0},
        {"", NULL, 0},
        {".t", NULL, 0},
        {"s.", NULL, 0},
        {"a.b.c", NULL, 0},
        {"x234567890123456789012345678901234567890123456789012345678901234", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t sl = 99;
        char *q = pge_histsql_quote_table(cases[i].in, &sl);
        if (!cases[i].out) {
            cr_assert_null(q, "%s accepted as %s", cases[i].in, q);
            continue;
        }
        cr_assert_not_null(q, "%s refused", cases[i].in);
        cr_assert_str_eq(q, cases[i].out);
        cr_assert_eq(sl, cases[i].schema_len, "%s", cases[i].in);
        free(q);
    }
}

Test(histsql, history_rows_and_settings, .timeout = 10)
{
    struct pge_histsql_buf b = {0};
    pge_histsql_insert(&b, "\"h\"", 3, "it's", "abc", 42, "pgentry on host");
    cr_assert_str_eq(b.s, "INSERT INTO \"h\" (version, name, checksum, duration_ms, applied_by) "
                          "VALUES (3, 'it''s', 'abc', 42, 'pgentry on host')");
    pge_histsql_buf_free(&b);
    pge_histsql_insert(&b, "\"h\"", 9223372036854775807LL, "n", "c", -1, "x");
    cr_assert(strstr(b.s, "VALUES (9223372036854775807, 'n', 'c', (extract(epoch FROM "
                          "clock_timestamp() - now()) * 1000)::integer, 'x')"),
              "%s", b.s);
    pge_histsql_buf_free(&b);
    pge_histsql_delete(&b, "\"s\".\"h\"", 7);
    cr_assert_str_eq(b.s, "DELETE FROM \"s\".\"h\" WHERE version = 7");
    pge_histsql_buf_free(&b);
    pge_histsql_lock_timeout(&b, 250, 1);
    cr_assert_str_eq(b.s, "SET LOCAL lock_timeout = '250ms'");
    pge_histsql_buf_free(&b);
    pge_histsql_create_table(&b, "\"t\"");
    cr_assert(strstr(b.s, "CREATE TABLE IF NOT EXISTS \"t\" (") &&
                  strstr(b.s, "version bigint PRIMARY KEY") &&
                  strstr(b.s, "checksum text NOT NULL") &&
                  strstr(b.s, "applied_at timestamptz NOT NULL DEFAULT now()") &&
                  strstr(b.s, "duration_ms integer NOT NULL") && strstr(b.s, "applied_by text"),
              "%s", b.s);
    pge_histsql_buf_free(&b);
}

Test(histsql, buffer_grows_past_its_first_size, .timeout = 10)
{
    struct pge_histsql_buf b = {0};
    for (int i = 0; i < 1000; i++)
        pge_histsql_appendf(&b, "%04d,", i);
    cr_assert_eq(b.len, 5000);
    cr_assert_eq(strncmp(b.s + 4995, "0999,", 5), 0);
    cr_assert_eq(b.failed, 0);
    pge_histsql_buf_free(&b);
    cr_assert_null(b.s);
}

Test(histsql, lock_key_is_stable_and_distinct, .timeout = 10)
{
    int64_t k = pge_histsql_lock_key("app", "public", "pgentry_migrations");
    cr_assert_eq(k, pge_histsql_lock_key("app", "public", "pgentry_migrations"));
    cr_assert_neq(k, pge_histsql_lock_key("app2", "public", "pgentry_migrations"));
    cr_assert_neq(k, pge_histsql_lock_key("app", "other", "pgentry_migrations"));
    cr_assert_neq(k, pge_histsql_lock_key("app", "public", "history"));
    /* The parts are separated: "ab"+"c" is not "a"+"bc". */
    cr_assert_neq(pge_histsql_lock_key("ab", "c", "t"), pge_histsql_lock_key("a", "bc", "t"));
}

Test(histsql, recognises_transaction_control, .timeout = 10)
{
    static const struct {
        const char *stmt;
        int yes;
    } cases[] = {
        {"COMMIT;", 1},
        {"commit", 1},
        {"BEGIN;", 1},
        {"begin transaction isolation level serializable;", 1},
        {"START TRANSACTION;", 1},
        {"END;", 1},
        {"ABORT;", 1},
        {"ROLLBACK;", 1},
        {"rollback work;", 1},
        {"Rollback\n  ;", 1},
        {"ROLLBACK TO SAVEPOINT s;", 0},
        {"rollback to s;", 0},
        {"ROLLBACK /* c */ TO s;", 0},
        {"ROLLBACK -- c\n TO s;", 0},
        {"SAVEPOINT s;", 0},
        {"RELEASE SAVEPOINT s;", 0},
        {"DO $$ BEGIN PERFORM 1; END $$;", 0},
        {"CREATE TABLE commit_log (id int);", 0},
        {"beginning;", 0},
        {"commits;", 0},
        {"", 0},
        {";", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i].stmt;
        cr_assert_eq(pge_histsql_is_transaction_control(s, strlen(s)), cases[i].yes, "\"%s\"", s);
        /* Never reads past len: every prefix is answered without a crash. */
        for (size_t n = 0; n < strlen(s); n++) {
            char *copy = malloc(n ? n : 1);
            memcpy(copy, s, n);
            (void)pge_histsql_is_transaction_control(copy, n);
            free(copy);
        }
    }
}

Test(histsql, history_rows_as_parameters, .timeout = 10)
{
    struct pge_histsql_buf b = {0};
    struct pge_histsql_row r;
    pge_histsql_insert_sql(&b, "\"app\".\"h\"");
    cr_assert_str_eq(b.s, "INSERT INTO \"app\".\"h\" (version, name, checksum, duration_ms, "
                          "applied_by) VALUES ($1::bigint, $2::text, $3::text, "
                          "coalesce($4::integer, (extract(epoch FROM clock_timestamp() - now()) "
                          "* 1000)::integer), $5::text)");
    pge_histsql_buf_free(&b);
    pge_histsql_delete_sql(&b, "\"h\"");
    cr_assert_str_eq(b.s, "DELETE FROM \"h\" WHERE version = $1::bigint");
    pge_histsql_buf_free(&b);

    /* Values go as they are: no quoting, no escaping. */
    pge_histsql_row_params(&r, -9223372036854775807LL - 1, "it's a\\b", "ab'c", 1234, "x\"y");
    cr_assert_str_eq(r.values[0], "-9223372036854775808");
    cr_assert_str_eq(r.values[1], "it's a\\b");
    cr_assert_str_eq(r.values[2], "ab'c");
    cr_assert_str_eq(r.values[3], "1234");
    cr_assert_str_eq(r.values[4], "x\"y");
    pge_histsql_row_params(&r, 7, "n", "c", -1, "by");
    cr_assert_str_eq(r.values[0], "7");
    cr_assert_null(r.values[3], "a negative duration is left to the server");

    /* A repeatable's record takes values + 1: name, checksum, duration, applied_by. */
    pge_histsql_upsert_repeatable_sql(&b, "\"h_repeatable\"");
    cr_assert_str_eq(b.s, "INSERT INTO \"h_repeatable\" (name, checksum, duration_ms, applied_by) "
                          "VALUES ($1::text, $2::text, coalesce($3::integer, (extract(epoch FROM "
                          "clock_timestamp() - now()) * 1000)::integer), $4::text) ON CONFLICT "
                          "(name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now(), "
                          "duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by");
    pge_histsql_buf_free(&b);
}
