/* Unit tests for the database settings: URL, conninfo and PG* variables to hosts and options. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logcap.h"
#include "pgentry/db/conninfo.h"
#include "pgentry/common/log.h"
#include "pgt.h"

#define ENV(...) ((char *[]){__VA_ARGS__, NULL})

struct want_host {
    const char *host, *port, *hostaddr; /* hostaddr NULL: none */
    int is_socket;
};

struct db_case {
    const char *url;
    char **env;
    struct want_host hosts[4];
    size_t nhosts;
    int uses_service;
    const char *display;
    const char *option; /* "key=value" that must be among the passed-through options */
};

static void assert_option(const struct pge_conninfo *p, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->keywords[i]) == klen && strncmp(p->keywords[i], kv, klen) == 0) {
            cr_assert_str_eq(p->values[i], kv + klen + 1, "option %.*s", (int)klen, kv);
            return;
        }
    cr_assert_fail("option %s not passed through", kv);
}

Test(conninfo, hosts_ports_sockets_and_options, .timeout = 10)
{
    const struct db_case cases[] = {
        {"postgres://app:pw1@db:6543/app?sslmode=disable",
         ENV(NULL),
         {{"db", "6543", NULL, 0}},
         1,
         0,
         "postgres://app:***@db:6543/app?sslmode=disable",
         "sslmode=disable"},
        {"postgres://db/app",
         ENV(NULL),
         {{"db", "5432", NULL, 0}},
         1,
         0,
         "postgres://db/app",
         "dbname=app"},
        {"postgresql://[::1]:5433/app",
         ENV(NULL),
         {{"::1", "5433", NULL, 0}},
         1,
         0,
         "postgresql://[::1]:5433/app",
         NULL},
        {"postgres://u@h1:5001,h2:5002,[2001:db8::1]/app",
         ENV(NULL),
         {{"h1", "5001", NULL, 0}, {"h2", "5002", NULL, 0}, {"2001:db8::1", "5432", NULL, 0}},
         3,
         0,
         "postgres://u@h1:5001,h2:5002,[2001:db8::1]/app",
         "user=u"},
        {"host=a,b port=7000",
         ENV(NULL),
         {{"a", "7000", NULL, 0}, {"b", "7000", NULL, 0}},
         2,
         0,
         "host=a,b port=7000",
         NULL},
        {"host=a,b hostaddr=10.0.0.1,10.0.0.2",
         ENV(NULL),
         {{"a", "5432", "10.0.0.1", 0}, {"b", "5432", "10.0.0.2", 0}},
         2,
         0,
         NULL,
         NULL},
        {"hostaddr=10.1.2.3 port=6000", ENV(NULL), {{"", "6000", "10.1.2.3", 0}}, 1, 0, NULL, NULL},
        {"host=/var/run/postgresql dbname=app",
         ENV(NULL),
         {{"/var/run/postgresql", "5432", NULL, 1}},
         1,
         0,
         NULL,
         "dbname=app"},
        {"host=@abstract", ENV(NULL), {{"@abstract", "5432", NULL, 1}}, 1, 0, NULL, NULL},
        /* An empty entry in a host list is libpq's default socket, not a name to resolve. */
        {"host=a,,b",
         ENV(NULL),
         {{"a", "5432", NULL, 0}, {"", "5432", NULL, 1}, {"b", "5432", NULL, 0}},
         3,
         0,
         NULL,
         NULL},
        /* PG* variables fill what the URL leaves out, and only that. */
        {"",
         ENV("PGHOST=envdb", "PGPORT=7777"),
         {{"envdb", "7777", NULL, 0}},
         1,
         0,
         "PG* environment variables",
         NULL},
        {NULL,
         ENV("PGHOST=envdb", "PGHOSTADDR=10.9.9.9"),
         {{"envdb", "5432", "10.9.9.9", 0}},
         1,
         0,
         "PG* environment variables",
         NULL},
        {"postgres://urldb/app",
         ENV("PGHOST=envdb", "PGPORT=7777"),
         {{"urldb", "7777", NULL, 0}},
         1,
         0,
         NULL,
         NULL},
        {"dbname=app", ENV(NULL), {{NULL, NULL, NULL, 0}}, 0, 0, "dbname=app", "dbname=app"},
        {"port=6000", ENV(NULL), {{NULL, NULL, NULL, 0}}, 0, 0, NULL, "port=6000"},
        {"service=prod", ENV(NULL), {{NULL, NULL, NULL, 0}}, 0, 1, NULL, "service=prod"},
        {"", ENV("PGSERVICE=prod"), {{NULL, NULL, NULL, 0}}, 0, 1, NULL, NULL},
        {"postgres:///app?host=/tmp&port=5999",
         ENV(NULL),
         {{"/tmp", "5999", NULL, 1}},
         1,
         0,
         NULL,
         "dbname=app"},
    };
    /* libpq reads the service file from the process environment: "prod" is defined. */
    char dir[256], file[300];
    pgt_tempdir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/pg_service.conf", dir);
    pgt_write_file(file, "[prod]\nhost=/nonexistent\n");
    setenv("PGSERVICEFILE", file, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct db_case *c = &cases[i];
        struct pge_conninfo p;
        char err[512] = "";
        cr_assert_eq(pge_conninfo_parse(&p, c->url, c->env, err, sizeof err), 0, "%s: %s", c->url,
                     err);
        cr_assert_eq(p.nhosts, c->nhosts, "%s: %zu hosts", c->url, p.nhosts);
        for (size_t h = 0; h < c->nhosts; h++) {
            cr_assert_str_eq(p.hosts[h].host, c->hosts[h].host, "%s host %zu", c->url, h);
            cr_assert_str_eq(p.hosts[h].port, c->hosts[h].port, "%s port %zu", c->url, h);
            if (c->hosts[h].hostaddr)
                cr_assert_str_eq(p.hosts[h].hostaddr, c->hosts[h].hostaddr, "%s", c->url);
            else
                cr_assert_null(p.hosts[h].hostaddr, "%s host %zu", c->url, h);
            cr_assert_eq(p.hosts[h].is_socket, c->hosts[h].is_socket, "%s host %zu", c->url, h);
        }
        cr_assert_eq(p.uses_service, c->uses_service, "%s", c->url);
        if (c->display)
            cr_assert_str_eq(p.display, c->display);
        if (c->option)
            assert_option(&p, c->option);
        /* host, hostaddr and port travel in hosts[], never twice. */
        for (size_t k = 0; k < p.n; k++) {
            cr_assert_str_neq(p.keywords[k], "host", "%s", c->url);
            cr_assert_str_neq(p.keywords[k], "hostaddr", "%s", c->url);
            if (p.nhosts > 0)
                cr_assert_str_neq(p.keywords[k], "port", "%s", c->url);
        }
        if (p.n > 0) {
            cr_assert_null(p.keywords[p.n]);
            cr_assert_null(p.values[p.n]);
        }
        pge_conninfo_free(&p);
        cr_assert_eq(p.nhosts + p.n, 0);
    }
}

struct bad_case {
    const char *url;
    char **env;
    const char *needle;
};

Test(conninfo, malformed_settings_are_refused_with_a_reason, .timeout = 10)
{
    const struct bad_case cases[] = {
        {"postgres://app:Pw0rdX@db:5432/app?bogus=1", ENV(NULL), "invalid URI query parameter"},
        {"host=db password='Pw0rdX", ENV(NULL), "unterminated quoted string"},
        {"host=db colour=red password=Pw0rdX", ENV(NULL), "invalid connection option"},
        {"postgres://app:Pw0rdX@db:port/app", ENV(NULL), "port \"port\" is not a number"},
        {"postgres://app:Pw0rdX@db:0/app", ENV(NULL), "port \"0\""},
        {"postgres://app:Pw0rdX@db:65536/app", ENV(NULL), "port \"65536\""},
        {"host=db port=-1 password=Pw0rdX", ENV(NULL), "port \"-1\""},
        {"host=db port=54x32 password=Pw0rdX", ENV(NULL), "port \"54x32\""},
        {"host=a,b port=1,2,3 password=Pw0rdX", ENV(NULL), "3 ports for 2 hosts"},
        {"host=a,b,c hostaddr=10.0.0.1,10.0.0.2 password=Pw0rdX", ENV(NULL),
         "3 hosts but 2 hostaddr values"},
        {"port=1,2 password=Pw0rdX", ENV(NULL), "2 ports for 0 hosts"},
        {"host=a,b,c,d,e,f,g,h,i password=Pw0rdX", ENV(NULL), "more than 8 hosts"},
        {"password=Pw0rdX", ENV("PGPORT=99999"), "port \"99999\""},
        {"password=Pw0rdX", ENV("PGHOST=a,b", "PGPORT=1,2,3"), "3 ports for 2 hosts"},
        {"postgres://app:Pw0rdX@db/app?sslmode=%zz", ENV(NULL), "invalid percent-encoded token"},
        /* An unencoded '@' in the password: libpq and the redactor would split it apart. */
        {"postgres://app:Pw0rdX@Pw0rdX@db/app", ENV(NULL),
         "percent-encode @ in the password as %40"},
        {"postgresql://app:Pw0rdX@@db", ENV(NULL), "more than one '@' before the host"},
        {"postgres://app:Pw0rdX@db@other:5432", ENV(NULL), "as %40"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pge_conninfo p;
        char err[512] = "";
        cr_assert_eq(pge_conninfo_parse(&p, cases[i].url, cases[i].env, err, sizeof err), -1,
                     "accepted: %s", cases[i].url);
        cr_assert_not_null(strstr(err, cases[i].needle), "%s: \"%s\" not in \"%s\"", cases[i].url,
                           cases[i].needle, err);
        cr_assert_null(strstr(err, "Pw0rdX"), "password in the message: %s", err);
        cr_assert_null(strchr(err, '\n'), "not one line: %s", err);
        pge_conninfo_free(&p);
    }
}

/* Inline strings: Criterion hands parameters to a freshly started process, where pointers
 * into this one would not be valid. */
struct secret_case {
    char url[96];
    char env[32]; /* one "K=V", or "" */
    char secret[24];
};

static struct secret_case secret_cases[] = {
    {"postgres://app:Url-Pw-1@db/app", "", "Url-Pw-1"},
    {"postgres://app:Enc%2FPw-2@db/app", "", "Enc/Pw-2"},
    {"postgres://app:Enc%2FPw-2@db/app", "", "Enc%2FPw-2"},
    {"postgres://db/app?password=Query-Pw-3", "", "Query-Pw-3"},
    {"host=db password='Quoted Pw 4'", "", "Quoted Pw 4"},
    {"host=db password=Bare\\ Pw\\ 5", "", "Bare Pw 5"},
    {"host=db", "PGPASSWORD=Env-Pw-6", "Env-Pw-6"},
    /* Malformed: still registered, since the error line quotes libpq's message. */
    {"postgres://app:Bad-Pw-7@db/app?bogus=1", "", "Bad-Pw-7"},
    {"postgres://app:Bad%zzPw-8@db/app", "", "Bad%zzPw-8"},
};

ParameterizedTestParameters(conninfo, passwords_are_registered_before_anything_prints)
{
    return cr_make_param_array(struct secret_case, secret_cases,
                               sizeof secret_cases / sizeof secret_cases[0]);
}

/* Each case in its own process: the logger's secret table starts empty. */
ParameterizedTest(struct secret_case *c, conninfo, passwords_are_registered_before_anything_prints,
                  .timeout = 10)
{
    struct pge_conninfo p;
    char err[512] = "";
    char *env[] = {c->env[0] ? c->env : NULL, NULL};
    int rc = pge_conninfo_parse(&p, c->url, env, err, sizeof err);
    pgt_logcap_start(PGE_LOG_DEBUG, PGE_LOG_TEXT);
    pge_error(rc == 0 ? "connecting" : err, PGE_STR("password", c->secret), PGE_STR("url", c->url));
    char *line = pgt_logcap_take();
    pgt_logcap_stop();
    cr_assert_null(strstr(line, c->secret), "%s printed: %s", c->secret, line);
    cr_assert_not_null(strstr(line, " password=***"), "%s", line);
    if (rc == 0)
        cr_assert_null(strstr(p.display, c->secret), "display %s", p.display);
    free(line);
    pge_conninfo_free(&p);
}

Test(conninfo, an_at_sign_in_the_password_is_refused_without_showing_any_of_it, .timeout = 10)
{
    /* The reviewer's case: libpq would have said could not resolve host "ss@127.0.0.1". */
    static const char *const urls[] = {
        "postgres://postgres:p@ss@127.0.0.1/db",
        "postgres://postgres:Top@Secret@127.0.0.1:5432/db?sslmode=disable",
        "postgresql://u:a@b@c@127.0.0.1",
    };
    static const char *const fragments[] = {"p@ss", "ss@", "Top", "Secret", "a@b", "b@c", ":p@"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct pge_conninfo p;
        char err[512] = "";
        cr_assert_eq(pge_conninfo_parse(&p, urls[i], ENV(NULL), err, sizeof err), -1, "%s",
                     urls[i]);
        cr_assert(strstr(err, "percent-encode @ in the password as %40"), "%s", err);
        cr_assert(strstr(err, "127.0.0.1"), "the host is worth showing: %s", err);
        for (size_t k = 0; k < sizeof fragments / sizeof fragments[0]; k++)
            cr_assert_null(strstr(err, fragments[k]), "\"%s\" in: %s", fragments[k], err);
        pge_conninfo_free(&p);
    }
    /* Encoded, the same password is fine, and '@' after the path is not userinfo. */
    static const char *const fine[] = {"postgres://postgres:p%40ss@127.0.0.1/db",
                                       "postgres://u:pw@127.0.0.1/db?application_name=a@b"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        struct pge_conninfo p;
        char err[512] = "";
        cr_assert_eq(pge_conninfo_parse(&p, fine[i], ENV(NULL), err, sizeof err), 0, "%s: %s",
                     fine[i], err);
        cr_assert_str_eq(p.hosts[0].host, "127.0.0.1");
        pge_conninfo_free(&p);
    }
}

Test(conninfo, free_is_null_safe_and_idempotent, .timeout = 10)
{
    struct pge_conninfo p;
    char err[128];
    cr_assert_eq(pge_conninfo_parse(&p, "host=a,b dbname=x", ENV(NULL), err, sizeof err), 0);
    pge_conninfo_free(&p);
    pge_conninfo_free(&p);
    pge_conninfo_free(NULL);
    cr_assert_null(p.display);
}

static const char *option_of(const struct pge_conninfo *p, const char *k)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->keywords[i], k) == 0)
            return p->values[i];
    return NULL;
}

Test(conninfo, tcp_keepalives_are_added_unless_set, .timeout = 10)
{
    static const struct {
        const char *url;
        const char *want[5]; /* keepalives, _idle, _interval, _count, tcp_user_timeout */
    } cases[] = {
        {"postgres://u@db/app", {"1", "10", "5", "3", "30000"}},
        {"host=db keepalives_idle=60 tcp_user_timeout=0", {"1", "60", "5", "3", "0"}},
        {"postgres://db/app?keepalives=0", {"0", "10", "5", "3", "30000"}},
        {"postgres://db/app?keepalives_interval=1&keepalives_count=9",
         {"1", "10", "1", "9", "30000"}},
        {"", {"1", "10", "5", "3", "30000"}},
    };
    static const char *const keys[5] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                        "keepalives_count", "tcp_user_timeout"};
    char *envp[] = {NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pge_conninfo p;
        char err[256] = "";
        cr_assert_eq(pge_conninfo_parse(&p, cases[i].url, envp, err, sizeof err), 0, "%s", err);
        for (size_t k = 0; k < 5; k++) {
            const char *got = option_of(&p, keys[k]);
            cr_assert_not_null(got, "%s: %s missing", cases[i].url, keys[k]);
            cr_assert_str_eq(got, cases[i].want[k], "%s: %s", cases[i].url, keys[k]);
            size_t seen = 0;
            for (size_t j = 0; j < p.n; j++)
                seen += strcmp(p.keywords[j], keys[k]) == 0;
            cr_assert_eq(seen, 1, "%s: %s given %zu times", cases[i].url, keys[k], seen);
        }
        pge_conninfo_free(&p);
    }
}

Test(conninfo, sqlalchemy_driver_part_is_dropped, .timeout = 10)
{
    /* The URL the application already has: libpq sees postgresql://, logs show it as given. */
    static const char *const urls[] = {
        "postgresql+psycopg2://app:Pw0rdX@db:6000/app?sslmode=disable",
        "postgresql+asyncpg://app:Pw0rdX@db:6000/app?sslmode=disable",
        "postgresql+psycopg://app:Pw0rdX@db:6000/app?sslmode=disable",
        "postgres+pg8000://app:Pw0rdX@db:6000/app?sslmode=disable",
        "postgresql+psycopg2cffi://app:Pw0rdX@db:6000/app?sslmode=disable",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct pge_conninfo p;
        char err[512] = "", want[256];
        cr_assert_eq(pge_conninfo_parse(&p, urls[i], ENV(NULL), err, sizeof err), 0, "%s: %s",
                     urls[i], err);
        cr_assert_eq(p.nhosts, 1);
        cr_assert_str_eq(p.hosts[0].host, "db");
        cr_assert_str_eq(p.hosts[0].port, "6000");
        assert_option(&p, "dbname=app");
        assert_option(&p, "user=app");
        assert_option(&p, "password=Pw0rdX");
        assert_option(&p, "sslmode=disable");
        snprintf(want, sizeof want, "%.*s://app:***@db:6000/app?sslmode=disable",
                 (int)strcspn(urls[i], ":"), urls[i]);
        cr_assert_str_eq(p.display, want);
        pge_conninfo_free(&p);
    }
}

Test(conninfo, unknown_schemes_are_refused_naming_the_fix, .timeout = 10)
{
    static const char *const urls[] = {
        "mysql://app:Pw0rdX@db/app",  "postgresql+://app:Pw0rdX@db/app",
        "PostgreSQL://app:Pw0rdX@db", "postgresql+asyncpg+x://app:Pw0rdX@db",
        "pg://app:Pw0rdX@db/app",     "postgresql+my-driver://app:Pw0rdX@db/app",
        "http://app:Pw0rdX@db/app",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct pge_conninfo p;
        char err[512] = "";
        cr_assert_eq(pge_conninfo_parse(&p, urls[i], ENV(NULL), err, sizeof err), -1, "%s",
                     urls[i]);
        cr_assert(strstr(err, "unsupported database URL scheme"), "%s", err);
        cr_assert(strstr(err, "use postgresql://user:password@host:5432/dbname"), "%s", err);
        cr_assert(strstr(err, "postgresql+DRIVER://"), "%s", err);
        cr_assert_null(strstr(err, "Pw0rdX"), "%s", err);
        cr_assert_null(strchr(err, '\n'), "%s", err);
        pge_conninfo_free(&p);
    }
}

Test(conninfo, a_slash_in_the_password_is_refused_without_showing_any_of_it, .timeout = 10)
{
    /* Issue 10: libpq reads "app:ab" as host and port and "SECRET@host/db" as the database
     * name; before, the whole URL was printed. */
    static const char *const urls[] = {
        "postgres://app:ab/SECRET@host/db",
        "postgres://app:5432/SECRET@host/db",
        "postgresql+asyncpg://app:5432/SECRET@host/db?sslmode=disable",
        "postgres://app:a@b/SECRET@host/db",
        "postgres://app:a/b/SECRET@host:5432/db",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct pge_conninfo p;
        char err[512] = "";
        cr_assert_eq(pge_conninfo_parse(&p, urls[i], ENV(NULL), err, sizeof err), -1, "%s",
                     urls[i]);
        cr_assert(strstr(err, "percent-encode / in the password as %2F"), "%s", err);
        cr_assert(strstr(err, "app:***@host"), "user and host are worth showing: %s", err);
        cr_assert_null(strstr(err, "SECRET"), "%s", err);
        cr_assert_null(strstr(err, "/SE"), "%s", err);
        pge_conninfo_free(&p);
    }
    /* A port that is really the start of a password is not quoted. */
    struct pge_conninfo p;
    char err[512] = "";
    cr_assert_eq(
        pge_conninfo_parse(&p, "postgres://app:12ab/x?sslmode=c@h/db", ENV(NULL), err, sizeof err),
        -1);
    cr_assert(strstr(err, "is not a number"), "%s", err);
    cr_assert_null(strstr(err, "12ab"), "%s", err);
    pge_conninfo_free(&p);
}

/* A service file in a new temp dir, named by PGSERVICEFILE (libpq reads the environment). */
static void service_file(const char *content, char *file, size_t size)
{
    char dir[256];
    pgt_tempdir(dir, sizeof dir);
    snprintf(file, size, "%s/pg_service.conf", dir);
    pgt_write_file(file, content);
    setenv("PGSERVICEFILE", file, 1);
    setenv("PGSYSCONFDIR", dir, 1);
}

Test(conninfo, unknown_service_is_refused_naming_the_files, .timeout = 10)
{
    char file[300], e_file[320], e_sys[320];
    service_file("[other]\nhost=/nonexistent\n", file, sizeof file);
    snprintf(e_file, sizeof e_file, "PGSERVICEFILE=%s", file);
    snprintf(e_sys, sizeof e_sys, "PGSYSCONFDIR=%s", getenv("PGSYSCONFDIR"));
    struct {
        const char *url;
        char **env;
        const char *from;
    } cases[] = {
        {NULL, ENV("PGSERVICE=nosuch", e_file, e_sys), "(from PGSERVICE)"},
        {"service=nosuch dbname=app", ENV(e_file, e_sys), "(from the database URL)"},
        {"postgres:///app?service=nosuch", ENV(e_file, e_sys), "(from the database URL)"},
        {"postgres://app:Pw0rdX@db/app", ENV("PGSERVICE=nosuch", e_file, e_sys),
         "(from PGSERVICE)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pge_conninfo p;
        char err[1024] = "", files[700];
        cr_assert_eq(pge_conninfo_parse(&p, cases[i].url, cases[i].env, err, sizeof err), -1, "%s",
                     cases[i].url);
        cr_assert(strstr(err, "database service \"nosuch\""), "%s", err);
        cr_assert(strstr(err, cases[i].from), "%s", err);
        snprintf(files, sizeof files, "%s (PGSERVICEFILE) or %s/pg_service.conf (PGSYSCONFDIR)",
                 file, getenv("PGSYSCONFDIR"));
        cr_assert(strstr(err, files), "files not named: %s", err);
        cr_assert(strstr(err, "set PGSERVICEFILE"), "%s", err);
        cr_assert_null(strchr(err, '\n'), "%s", err);
        cr_assert_null(strstr(err, "Pw0rdX"), "%s", err);
        pge_conninfo_free(&p);
    }
    /* Without PGSERVICEFILE, the message names the default places. */
    unsetenv("PGSERVICEFILE");
    unsetenv("PGSYSCONFDIR");
    struct pge_conninfo p;
    char err[1024] = "";
    cr_assert_eq(pge_conninfo_parse(&p, NULL, ENV("PGSERVICE=nosuch"), err, sizeof err), -1);
    cr_assert(strstr(err, "~/.pg_service.conf"), "%s", err);
    cr_assert(strstr(err, "PGSYSCONFDIR"), "%s", err);
    pge_conninfo_free(&p);
}

Test(conninfo, defined_service_is_accepted_and_its_password_is_a_secret, .timeout = 10)
{
    char file[300];
    service_file("# comment\n[other]\nhost=x\n[pgt]\nhost=/nonexistent\nport=5999\n"
                 "password=Svc-Pw-77\n",
                 file, sizeof file);
    struct pge_conninfo p;
    char err[512] = "";
    cr_assert_eq(pge_conninfo_parse(&p, NULL, ENV("PGSERVICE=pgt"), err, sizeof err), 0, "%s", err);
    cr_assert(p.uses_service);
    pge_conninfo_free(&p);
    cr_assert_eq(pge_conninfo_parse(&p, "service=pgt sslmode=require", ENV(NULL), err, sizeof err),
                 0, "%s", err);
    assert_option(&p, "sslmode=require");
    pgt_logcap_start(PGE_LOG_DEBUG, PGE_LOG_TEXT);
    pge_error("server said", PGE_STR("error", "bad password Svc-Pw-77"));
    char *line = pgt_logcap_take();
    pgt_logcap_stop();
    cr_assert_null(strstr(line, "Svc-Pw-77"), "%s", line);
    free(line);
    pge_conninfo_free(&p);
}

Test(conninfo, broken_service_file_is_refused_naming_it, .timeout = 10)
{
    char file[300];
    service_file("[pgt]\nthis line has no equals sign\n", file, sizeof file);
    struct pge_conninfo p;
    char err[1024] = "";
    cr_assert_eq(pge_conninfo_parse(&p, NULL, ENV("PGSERVICE=pgt"), err, sizeof err), -1);
    cr_assert(strstr(err, "database service \"pgt\""), "%s", err);
    cr_assert(strstr(err, file), "%s", err);
    cr_assert_null(strchr(err, '\n'), "%s", err);
    pge_conninfo_free(&p);
}
