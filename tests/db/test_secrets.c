/* No password is ever printed, whatever the database URL looks like: a property test of the
 * redaction and error paths, and the real binary on its error paths, /status and a real
 * PostgreSQL (SQLAlchemy URLs, services). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgentry/common/redact.h"
#include "pgentry/db/conninfo.h"
#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_http.h"

PGT_SHARED_PG_HOOKS()

/* Every URL and conninfo shape, valid and malformed. {pw} is the password as a user would
 * paste it, {esc} the same escaped for a quoted conninfo value, {enc} percent-encoded. */
static const char *const shapes[] = {
    "postgres://app:{pw}@127.0.0.1:{port}/db",
    "postgresql://app:{pw}@127.0.0.1:{port}/db?sslmode=disable",
    "postgresql+asyncpg://app:{pw}@127.0.0.1:{port}/db",
    "postgresql+psycopg2://app:{pw}@127.0.0.1:{port}/db?application_name=x",
    "postgres://app:{enc}@127.0.0.1:{port}/db",
    "postgres://app:{pw}@127.0.0.1:notaport/db",
    "postgres://app:{pw}@x@127.0.0.1:{port}/db",
    "postgres://app:{pw}@127.0.0.1:{port},127.0.0.1:99999/db",
    "postgres://app:{pw}@127.0.0.1:{port}/d%zzb",
    "postgres://app:{pw}@[::1:{port}/db",
    "mysql://app:{pw}@127.0.0.1:{port}/db",
    "postgres://127.0.0.1:{port}/db?password={pw}",
    "postgres://127.0.0.1:{port}/db?sslmode=disable&password={pw}&application_name=x",
    "host=127.0.0.1 port={port} password={pw} dbname=db",
    "host=127.0.0.1 port={port} password='{esc}' dbname=db",
    "host=127.0.0.1 port={port} password = '{esc}' user=app",
    "host=127.0.0.1 port={port} dbname=db password='{pw}",
    "host=127.0.0.1 port=abc password={pw}",
    "host=127.0.0.1 colour=red password={pw}",
    "password={pw} host=127.0.0.1 port={port}",
};

#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* "At once": not after the wait timeout (30 s in these tests). Under a second in a plain build;
 * a sanitizer build on a loaded machine adds its own start-up and exit time. */
#define AT_ONCE_MS 2500

/* Shorter passwords make a substring check meaningless ("ab" is in many words). */
#define MIN_CHECKED 4

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A printable password, rich in the bytes that break URLs and conninfo strings. */
static void random_password(uint64_t *rng, char *pw, size_t min_len)
{
    static const char special[] = "/@:?#%'\"\\ =&";
    size_t len = min_len + rng_next(rng) % (25 - min_len);
    for (size_t i = 0; i < len; i++) {
        uint64_t r = rng_next(rng);
        pw[i] =
            r % 3 == 0 ? special[(r >> 8) % (sizeof special - 1)] : (char)(0x20 + (r >> 8) % 95);
    }
    pw[len] = '\0';
}

static void append(char *out, size_t size, size_t *n, const char *s)
{
    size_t len = strlen(s);
    cr_assert_lt(*n + len, size, "shape too long");
    memcpy(out + *n, s, len + 1);
    *n += len;
}

/* shape with {pw}, {esc}, {enc} and {port} filled in. */
static void render(const char *shape, const char *pw, int port, char *out, size_t size)
{
    char esc[128], enc[256], num[16];
    size_t e = 0, c = 0, n = 0;
    for (const char *p = pw; *p; p++) {
        if (*p == '\'' || *p == '\\')
            esc[e++] = '\\';
        esc[e++] = *p;
        c += (size_t)snprintf(enc + c, sizeof enc - c, "%%%02X", (unsigned char)*p);
    }
    esc[e] = '\0';
    snprintf(num, sizeof num, "%d", port);
    out[0] = '\0';
    for (const char *p = shape; *p;) {
        const char *v = NULL;
        size_t skip = 0;
        if (strncmp(p, "{pw}", 4) == 0)
            v = pw, skip = 4;
        else if (strncmp(p, "{esc}", 5) == 0)
            v = esc, skip = 5;
        else if (strncmp(p, "{enc}", 5) == 0)
            v = enc, skip = 5;
        else if (strncmp(p, "{port}", 6) == 0)
            v = num, skip = 6;
        if (v) {
            append(out, size, &n, v);
            p += skip;
        } else {
            char one[2] = {*p++, '\0'};
            append(out, size, &n, one);
        }
    }
}

/* Whether pw is worth looking for in what shape prints: long enough, no mask character, and
 * not a piece of the shape's own text. */
static int checkable(const char *shape, const char *pw)
{
    char bare[512];
    if (strlen(pw) < MIN_CHECKED || strchr(pw, '*'))
        return 0;
    render(shape, "", 1, bare, sizeof bare);
    return strstr(bare, pw) == NULL && strstr(shape, pw) == NULL;
}

static void assert_hidden(const char *what, const char *text, const char *pw, const char *in)
{
    cr_assert_null(strstr(text, pw), "%s shows the password [%s]\n  input: %s\n  output: %s", what,
                   pw, in, text);
}

Test(secrets, no_password_in_any_redaction_or_error_message, .timeout = 120)
{
    uint64_t rng = 0x5eed5eedULL;
    size_t checked = 0;
    for (int round = 0; round < 2500; round++) {
        char pw[32];
        random_password(&rng, pw, 1);
        for (size_t s = 0; s < NSHAPES; s++) {
            char in[512], out[2048], err[1024];
            render(shapes[s], pw, 5432, in, sizeof in);
            int check = checkable(shapes[s], pw);
            checked += (size_t)check;

            pge_redact(in, out, sizeof out);
            if (check)
                assert_hidden("pge_redact", out, pw, in);

            char *perr = NULL;
            PQconninfoOption *opts = PQconninfoParse(in, &perr);
            PQconninfoFree(opts);
            if (perr) {
                pge_redact_message(perr, in, out, sizeof out);
                if (check)
                    assert_hidden("pge_redact_message", out, pw, in);
                PQfreemem(perr);
            }

            struct pge_conninfo p;
            char *env[] = {NULL};
            int rc = pge_conninfo_parse(&p, in, env, err, sizeof err);
            if (check)
                assert_hidden(rc == 0 ? "display" : "parse error", rc == 0 ? p.display : err, pw,
                              in);
            pge_conninfo_free(&p);
        }
    }
    cr_assert_gt(checked, 30000, "only %zu checked cases", checked);
}

/* The JSON (and logfmt) form of pw: '"' and '\' escaped. */
static void json_escaped(const char *pw, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = pw; *p && n + 3 < size; p++) {
        if (*p == '"' || *p == '\\')
            out[n++] = '\\';
        out[n++] = *p;
    }
    out[n] = '\0';
}

Test(secrets, the_binary_never_prints_the_password_on_its_error_paths, .timeout = 180)
{
    /* A sample through the real binary: every shape at least once, the issue's own cases
     * first, text and JSON logs, a closed port where a connection is tried. */
    static const char *const fixed[] = {"ab/SECRET-1", "5432/SECRET-2", "p@ss/w0rd?#3",
                                        "q\"uo'te\\ 4"};
    uint64_t rng = 0xfeedULL;
    int port = pgt_free_port();
    for (int i = 0; i < 30; i++) {
        const char *shape = shapes[i % NSHAPES];
        char pw[32], in[512], e_url[560], escaped[80];
        if (i < 4) {
            snprintf(pw, sizeof pw, "%s", fixed[i]);
            shape = shapes[0];
        } else {
            do
                random_password(&rng, pw, 6);
            while (!checkable(shape, pw));
        }
        render(shape, pw, port, in, sizeof in);
        snprintf(e_url, sizeof e_url, "DATABASE_URL=%s", in);
        const char *env[] = {e_url, NULL};
        const char *argv[] = {"pgentry", "wait",         "--wait-timeout",
                              "200ms",   "--log-format", i % 2 ? "json" : "text",
                              NULL};
        struct pgt_proc p;
        int rc = pgt_run(&p, argv, env, 10000);
        cr_assert(rc == 78 || rc == 69, "exit %d for %s:\n%s", rc, in, p.err);
        json_escaped(pw, escaped, sizeof escaped);
        assert_hidden("stderr", p.err, pw, in);
        assert_hidden("stderr", p.err, escaped, in);
        assert_hidden("stdout", p.out, pw, in);
        pgt_proc_free(&p);
    }
}

static char *envvar(const char *key, const char *value)
{
    char *s = malloc(strlen(key) + strlen(value) + 2);
    sprintf(s, "%s=%s", key, value);
    return s;
}

Test(secrets, sqlalchemy_url_waits_and_the_command_gets_it_verbatim, .timeout = 60)
{
    struct pgt_pg *pg = pgt_pg_shared();
    static const char *const drivers[] = {"asyncpg", "psycopg2", "psycopg"};
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++) {
        char url[300], dir[256], file[300], cmd[400];
        struct pgt_proc p;
        snprintf(url, sizeof url, "postgresql+%s://postgres:%s@127.0.0.1:%d/postgres", drivers[i],
                 PGT_PASSWORD, pg->port);
        pgt_tempdir(dir, sizeof dir);
        snprintf(file, sizeof file, "%s/seen", dir);
        snprintf(cmd, sizeof cmd, "printf %%s \"$DATABASE_URL\" > '%s'", file);
        char *env[] = {envvar("DATABASE_URL", url), NULL};
        const char *argv[] = {"pgentry", "--no-migrate", "--health-addr", "off", "--wait-timeout",
                              "20s",     "--",           "/bin/sh",       "-c",  cmd,
                              NULL};
        int rc = pgt_run(&p, argv, (const char *const *)env, 30000);
        cr_assert_eq(rc, 0, "%s: exit %d:\n%s", drivers[i], rc, p.err);
        cr_assert(strstr(p.err, "database is ready"), "%s", p.err);
        cr_assert_null(strstr(p.err, PGT_PASSWORD), "%s", p.err);
        /* The application needs its own form of the URL, untouched. */
        char *seen = pgt_read_file(file);
        cr_assert_str_eq(seen, url);
        free(seen);
        free(env[0]);
        pgt_proc_free(&p);
    }
}

Test(secrets, unknown_scheme_is_78_at_once_naming_the_fix, .timeout = 30)
{
    char *env[] = {envvar("DATABASE_URL", "mysql://app:My5ql-Secret@127.0.0.1/db"), NULL};
    const char *argv[] = {"pgentry", "wait", NULL};
    struct pgt_proc p;
    int rc = pgt_run(&p, argv, (const char *const *)env, 10000);
    cr_assert_eq(rc, 78, "exit %d:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "unsupported database URL scheme \"mysql\""), "%s", p.err);
    cr_assert(strstr(p.err, "postgresql://user:password@host:5432/dbname"), "%s", p.err);
    cr_assert_null(strstr(p.err, "My5ql-Secret"), "%s", p.err);
    cr_assert_lt(p.elapsed_ms, AT_ONCE_MS);
    free(env[0]);
    pgt_proc_free(&p);
}

/* A service file in a new temp dir; file gets its path, e_file "PGSERVICEFILE=path". */
static void service_file(const char *content, char *file, size_t fsize, char *e_file, size_t esize)
{
    char dir[256];
    pgt_tempdir(dir, sizeof dir);
    snprintf(file, fsize, "%s/pg_service.conf", dir);
    pgt_write_file(file, content);
    snprintf(e_file, esize, "PGSERVICEFILE=%s", file);
}

Test(secrets, unknown_service_is_78_at_once_naming_the_files, .timeout = 30)
{
    char file[300], e_file[320];
    service_file("[other]\nhost=127.0.0.1\n", file, sizeof file, e_file, sizeof e_file);
    const char *env[] = {e_file, "PGSERVICE=nosuch", NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "30s", NULL};
    struct pgt_proc p;
    int rc = pgt_run(&p, argv, env, 10000);
    cr_assert_eq(rc, 78, "exit %d:\n%s", rc, p.err);
    cr_assert_lt(p.elapsed_ms, AT_ONCE_MS, "took %lld ms", (long long)p.elapsed_ms);
    cr_assert(strstr(p.err, "database service \\\"nosuch\\\"") ||
                  strstr(p.err, "database service \"nosuch\""),
              "%s", p.err);
    cr_assert(strstr(p.err, file), "file not named:\n%s", p.err);
    cr_assert(strstr(p.err, "PGSYSCONFDIR"), "%s", p.err);
    pgt_proc_free(&p);
}

Test(secrets, service_in_the_url_still_works, .timeout = 30)
{
    struct pgt_pg *pg = pgt_pg_shared();
    char file[300], content[400], e_file[320];
    snprintf(content, sizeof content,
             "[pgt]\nhost=127.0.0.1\nport=%d\ndbname=postgres\nuser=postgres\npassword=%s\n",
             pg->port, PGT_PASSWORD);
    service_file(content, file, sizeof file, e_file, sizeof e_file);
    const char *env[] = {e_file, "DATABASE_URL=service=pgt connect_timeout=5", NULL};
    const char *argv[] = {"pgentry", "wait", "--wait-timeout", "10s", NULL};
    struct pgt_proc p;
    int rc = pgt_run(&p, argv, env, 15000);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, p.err);
    cr_assert(strstr(p.err, "database is ready"), "%s", p.err);
    cr_assert_null(strstr(p.err, PGT_PASSWORD), "%s", p.err);
    pgt_proc_free(&p);
}

/* GET /status until its body contains needle; the body is copied to body. */
static int status_has(int port, const char *needle, char *body, size_t size, int timeout_ms)
{
    int64_t deadline = pgt_now_ms() + timeout_ms;
    struct pgt_http_resp r;
    while (pgt_now_ms() < deadline) {
        if (pgt_http_get("127.0.0.1", port, "GET", "/status", &r) == 200 &&
            strstr(r.body, needle)) {
            snprintf(body, size, "%s", r.body);
            return 0;
        }
        usleep(20000);
    }
    return -1;
}

Test(secrets, status_last_error_goes_through_the_scrubber, .timeout = 60)
{
    /* The server's message names the role, and this role's name is its password: the log
     * lines hid it, /status did not. */
    struct pgt_pg *pg = pgt_pg_shared();
    const char *secret = "Lim-Pw-Secret9";
    char sql[300], url[300], health[64], e_health[100], dir[256], e_dir[300], body[8192];
    snprintf(sql, sizeof sql,
             "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE "
             "ROLE \"%s\" LOGIN CONNECTION LIMIT 0 PASSWORD '%s'; END IF; END$$",
             secret, secret, secret);
    free(pgt_pg_query(pg, "postgres", sql));
    snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s",
             pg->port, secret, secret);
    int port = pgt_free_port();
    snprintf(health, sizeof health, "127.0.0.1:%d", port);
    snprintf(e_health, sizeof e_health, "PGENTRY_HEALTH_ADDR=%s", health);
    pgt_tempdir(dir, sizeof dir);
    snprintf(e_dir, sizeof e_dir, "PGENTRY_MIGRATIONS=%s", dir);
    char *e_url = envvar("DATABASE_URL", url);
    const char *env[] = {e_url, e_health, e_dir, NULL};
    const char *argv[] = {"pgentry", "--wait-timeout", "30s", "--", "sleep", "30", NULL};
    struct pgt_proc p;
    pgt_proc_spawn(&p, argv, env);
    int seen = status_has(port, "too many connections", body, sizeof body, 20000);
    kill(p.pid, SIGTERM);
    pgt_proc_wait(&p, 10000);
    cr_assert_eq(seen, 0, "never saw the refusal in /status; stderr:\n%s", p.err);
    cr_assert_null(strstr(body, secret), "/status shows the password:\n%s", body);
    cr_assert(strstr(body, "***"), "%s", body);
    cr_assert_null(strstr(p.err, secret), "%s", p.err);
    free(e_url);
    pgt_proc_free(&p);
}
