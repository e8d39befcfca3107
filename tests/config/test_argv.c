/* Unit tests of the command line: subcommands, COMMAND, targets, every error, hidden secrets. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config_test.h"
#include "pgentry/common/backoff.h"
#include "pgentry/config/config.h"

Test(config, subcommands_and_targets, .timeout = 10)
{
    const struct {
        const char *const *args;
        enum pge_cmd cmd;
        const char *target, *message;
        int sql;
    } cases[] = {
        {ARGS("wait"), PGE_CMD_WAIT, NULL, NULL, 0},
        {ARGS("--wait-timeout", "5s", "wait"), PGE_CMD_WAIT, NULL, NULL, 0},
        {ARGS("upgrade"), PGE_CMD_UPGRADE, NULL, NULL, 0},
        {ARGS("upgrade", "head"), PGE_CMD_UPGRADE, "head", NULL, 0},
        {ARGS("upgrade", "+2", "--sql"), PGE_CMD_UPGRADE, "+2", NULL, 1},
        {ARGS("--sql", "upgrade", "0042"), PGE_CMD_UPGRADE, "0042", NULL, 1},
        {ARGS("downgrade", "-1"), PGE_CMD_DOWNGRADE, "-1", NULL, 0},
        {ARGS("downgrade", "-12", "--sql"), PGE_CMD_DOWNGRADE, "-12", NULL, 1},
        {ARGS("downgrade", "base"), PGE_CMD_DOWNGRADE, "base", NULL, 0},
        {ARGS("downgrade", "7"), PGE_CMD_DOWNGRADE, "7", NULL, 0},
        {ARGS("current"), PGE_CMD_CURRENT, NULL, NULL, 0},
        {ARGS("history"), PGE_CMD_HISTORY, NULL, NULL, 0},
        {ARGS("status", "--log-format", "json"), PGE_CMD_STATUS, NULL, NULL, 0},
        {ARGS("stamp", "head"), PGE_CMD_STAMP, "head", NULL, 0},
        {ARGS("stamp", "base"), PGE_CMD_STAMP, "base", NULL, 0},
        {ARGS("revision", "-m", "add rating"), PGE_CMD_REVISION, NULL, "add rating", 0},
        {ARGS("revision", "--message", "x y"), PGE_CMD_REVISION, NULL, "x y", 0},
        {ARGS("-m", "first", "revision"), PGE_CMD_REVISION, NULL, "first", 0},
        {ARGS("revision", "--message=z"), PGE_CMD_REVISION, NULL, "z", 0},
        {ARGS("verify"), PGE_CMD_VERIFY, NULL, NULL, 0},
        {ARGS("healthcheck"), PGE_CMD_HEALTHCHECK, NULL, NULL, 0},
        {ARGS("healthcheck", "http://127.0.0.1:8081/readyz"), PGE_CMD_HEALTHCHECK,
         "http://127.0.0.1:8081/readyz", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run_ok(&r, cases[i].args, NONE);
        cr_assert_eq(r.cfg.cmd, cases[i].cmd, "case %zu", i);
        if (cases[i].target)
            cr_assert_str_eq(r.cfg.target, cases[i].target, "case %zu", i);
        else
            cr_assert_null(r.cfg.target, "case %zu: target %s", i, r.cfg.target);
        if (cases[i].message)
            cr_assert_str_eq(r.cfg.message, cases[i].message, "case %zu", i);
        else
            cr_assert_null(r.cfg.message, "case %zu", i);
        cr_assert_eq(r.cfg.sql_only, cases[i].sql, "case %zu", i);
        cr_assert_eq(r.cfg.ncommand, 0, "case %zu", i);
        pge_config_free(&r.cfg);
    }
}

Test(config, command_starts_at_first_other_word_or_after_dashdash, .timeout = 10)
{
    const struct {
        const char *const *args;
        const char *const *command;
        int exec;
    } cases[] = {
        {ARGS("uvicorn", "app:app", "--port", "80"), ARGS("uvicorn", "app:app", "--port", "80"), 0},
        {ARGS("--exec", "gunicorn", "-w", "4"), ARGS("gunicorn", "-w", "4"), 1},
        {ARGS("--wait-timeout", "5s", "--", "-weird"), ARGS("-weird"), 0},
        {ARGS("--", "wait"), ARGS("wait"), 0},
        {ARGS("app", "wait", "--", "x"), ARGS("app", "wait", "--", "x"), 0},
        {ARGS("sh", "-c", "exec app --database-url x"),
         ARGS("sh", "-c", "exec app --database-url x"), 0},
        {ARGS("-", "x"), ARGS("-", "x"), 0},
        {ARGS("--"), NONE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        int n = 0;
        run_ok(&r, cases[i].args, NONE);
        cr_assert_eq(r.cfg.cmd, PGE_CMD_RUN, "case %zu", i);
        for (; cases[i].command[n]; n++)
            cr_assert_str_eq(r.cfg.command[n], cases[i].command[n], "case %zu arg %d", i, n);
        cr_assert_eq(r.cfg.ncommand, n, "case %zu", i);
        if (n > 0)
            cr_assert_null(r.cfg.command[n], "case %zu: not NULL-terminated", i);
        cr_assert_eq(r.cfg.exec, cases[i].exec);
        /* pgentry's own options after COMMAND belong to COMMAND. */
        cr_assert_eq(r.cfg.wait_timeout_ms, i == 2 ? 5000 : 60000, "case %zu", i);
        pge_config_free(&r.cfg);
    }
}

Test(config, command_names_and_database_needs, .timeout = 10)
{
    static const struct {
        enum pge_cmd cmd;
        const char *name;
        int needs_db;
    } cases[] = {
        {PGE_CMD_RUN, "run", 0},
        {PGE_CMD_WAIT, "wait", 0},
        {PGE_CMD_UPGRADE, "upgrade", 1},
        {PGE_CMD_DOWNGRADE, "downgrade", 1},
        {PGE_CMD_CURRENT, "current", 1},
        {PGE_CMD_HISTORY, "history", 1},
        {PGE_CMD_STATUS, "status", 1},
        {PGE_CMD_STAMP, "stamp", 1},
        {PGE_CMD_REVISION, "revision", 0},
        {PGE_CMD_VERIFY, "verify", 1},
        {PGE_CMD_HEALTHCHECK, "healthcheck", 0},
        {PGE_CMD_VERSION, "--version", 0},
        {PGE_CMD_HELP, "--help", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_str_eq(pge_config_cmd_name(cases[i].cmd), cases[i].name);
        cr_assert_eq(pge_config_cmd_needs_db(cases[i].cmd), cases[i].needs_db, "%s", cases[i].name);
    }
}

Test(config, getenv_matches_whole_names, .timeout = 10)
{
    char *env[] = {"PGHOSTADDR=10.0.0.1", "PGHOST_X=y", "PGHOS=z", "PGHOST=db", "EMPTY=", NULL};
    cr_assert_str_eq(pge_config_getenv(env, "PGHOST"), "db");
    cr_assert_str_eq(pge_config_getenv(env, "PGHOSTADDR"), "10.0.0.1");
    cr_assert_str_eq(pge_config_getenv(env, "EMPTY"), "");
    cr_assert_null(pge_config_getenv(env, "PGPORT"));
    cr_assert_null(pge_config_getenv(NULL, "PGHOST"));
}

/* ---- Errors: the code, and a message that names the problem ------------------------------ */

struct error_case {
    const char *const *args;
    const char *const *env;
    enum pge_config_result r;
    const char *needle;
};

static const struct error_case error_cases[] = {
    {ARGS("--bogus"), NONE, PGE_CONFIG_USAGE, "unknown option --bogus"},
    {ARGS("--bogus=1"), NONE, PGE_CONFIG_USAGE, "unknown option --bogus"},
    {ARGS("-x"), NONE, PGE_CONFIG_USAGE, "unknown option -x"},
    {ARGS("wait", "-1"), NONE, PGE_CONFIG_USAGE, "unknown option -1"},
    {ARGS("--wait-timeout"), NONE, PGE_CONFIG_USAGE, "--wait-timeout needs a value"},
    {ARGS("--wait-timeout", "soon"), NONE, PGE_CONFIG_USAGE, "bad duration \"soon\""},
    {ARGS("--connect-timeout=-1s"), NONE, PGE_CONFIG_USAGE, "bad duration \"-1s\""},
    {ARGS("--stop-timeout", "10"), ARGS("PGENTRY_LOCK_WAIT=1d"), PGE_CONFIG_USAGE,
     "PGENTRY_LOCK_WAIT: bad duration \"1d\""},
    {ARGS("--exec=1", "app"), NONE, PGE_CONFIG_USAGE, "--exec takes no value"},
    {NONE, ARGS("PGENTRY_NO_MIGRATE=maybe"), PGE_CONFIG_USAGE,
     "PGENTRY_NO_MIGRATE=maybe is not a boolean"},
    {ARGS("--wait-tcp", "redis"), NONE, PGE_CONFIG_INVALID, "\"redis\" is not HOST:PORT"},
    {ARGS("--wait-tcp", ":6379"), NONE, PGE_CONFIG_INVALID, "\":6379\" is not HOST:PORT"},
    {ARGS("--wait-tcp", "::1:80"), NONE, PGE_CONFIG_INVALID, "[addr]:port"},
    {ARGS("--wait-tcp", ""), NONE, PGE_CONFIG_INVALID, "\"\" is not HOST:PORT"},
    {NONE, ARGS("PGENTRY_WAIT_TCP=a:1,b"), PGE_CONFIG_INVALID, "PGENTRY_WAIT_TCP: \"b\""},
    {ARGS("--wait-http", "ftp://x/"), NONE, PGE_CONFIG_INVALID, "not an http:// or https:// URL"},
    {ARGS("--wait-http", "http://"), NONE, PGE_CONFIG_INVALID, "not an http:// or https:// URL"},
    {ARGS("--rewrite", "TERM"), NONE, PGE_CONFIG_USAGE, "\"TERM\" is not FROM:TO"},
    {ARGS("--rewrite", "FOO:TERM"), NONE, PGE_CONFIG_USAGE, "unknown signal in \"FOO:TERM\""},
    {ARGS("--rewrite", "0:TERM"), NONE, PGE_CONFIG_USAGE, "unknown signal in \"0:TERM\""},
    {NONE, ARGS("PGENTRY_REWRITE=TERM:QUIT,INT:NOPE"), PGE_CONFIG_USAGE,
     "PGENTRY_REWRITE: unknown signal in \"INT:NOPE\""},
    {ARGS("--log-level", "verbose"), NONE, PGE_CONFIG_USAGE, "unknown level \"verbose\""},
    {ARGS("--log-format", "xml"), NONE, PGE_CONFIG_USAGE, "unknown format \"xml\""},
    {ARGS("--health-addr", "8081"), NONE, PGE_CONFIG_INVALID, "\"8081\" is not HOST:PORT"},
    {ARGS("--app-health-url", "localhost:8000/health"), NONE, PGE_CONFIG_INVALID,
     "\"localhost:8000/health\" is not an http:// or https:// URL"},
    {ARGS("--database-url="), NONE, PGE_CONFIG_USAGE, "--database-url needs a value"},
    {ARGS("--migrations", ""), NONE, PGE_CONFIG_USAGE, "--migrations needs a directory"},
    {ARGS("downgrade"), NONE, PGE_CONFIG_USAGE, "downgrade needs a target"},
    {ARGS("downgrade", "head"), NONE, PGE_CONFIG_USAGE,
     "downgrade: bad target \"head\": use -N, a version or base"},
    {ARGS("downgrade", "+1"), NONE, PGE_CONFIG_USAGE, "downgrade: bad target \"+1\""},
    {ARGS("downgrade", "-0"), NONE, PGE_CONFIG_USAGE, "downgrade: bad target \"-0\""},
    {ARGS("upgrade", "base"), NONE, PGE_CONFIG_USAGE,
     "upgrade: bad target \"base\": use head, +N or a version"},
    {ARGS("upgrade", "latest"), NONE, PGE_CONFIG_USAGE, "upgrade: bad target \"latest\""},
    {ARGS("upgrade", "99999999999999999999"), NONE, PGE_CONFIG_USAGE, "upgrade: bad target"},
    {ARGS("stamp", "+1"), NONE, PGE_CONFIG_USAGE,
     "stamp: bad target \"+1\": use a version, head or base"},
    {ARGS("stamp"), NONE, PGE_CONFIG_USAGE, "stamp needs a target"},
    {ARGS("revision"), NONE, PGE_CONFIG_USAGE, "revision needs a message"},
    {ARGS("revision", "-m", ""), NONE, PGE_CONFIG_USAGE, "revision needs a message"},
    {ARGS("revision", "-m"), NONE, PGE_CONFIG_USAGE, "-m needs a message"},
    {ARGS("wait", "--sql"), NONE, PGE_CONFIG_USAGE, "--sql goes with upgrade or downgrade"},
    {ARGS("status", "-m", "x"), NONE, PGE_CONFIG_USAGE, "-m goes with revision only"},
    {ARGS("--exec"), NONE, PGE_CONFIG_USAGE, "--exec needs a COMMAND"},
    {ARGS("--exec", "current"), NONE, PGE_CONFIG_USAGE, "--exec needs a COMMAND"},
    {ARGS("wait", "--exec"), ARGS("PGENTRY_EXEC=1"), PGE_CONFIG_USAGE, "--exec needs a COMMAND"},
    {ARGS("--no-migrate", "--wait-migrations"), NONE, PGE_CONFIG_USAGE, "contradict"},
    {ARGS("--migrate-cmd", "true", "--wait-migrations"), NONE, PGE_CONFIG_USAGE, "contradict"},
    {ARGS("--no-migrate", "--migrate-cmd", "true"), NONE, PGE_CONFIG_INVALID,
     "--no-migrate and --migrate-cmd contradict each other"},
    {ARGS("--migrate-cmd", "true", "--", "app"), ARGS("PGENTRY_NO_MIGRATE=1"), PGE_CONFIG_INVALID,
     "--no-migrate and --migrate-cmd contradict each other"},
    {ARGS("--connect-timeout", "0"), NONE, PGE_CONFIG_USAGE, "--connect-timeout must be more"},
    {ARGS("--backoff-initial", "0ms"), NONE, PGE_CONFIG_USAGE, "--backoff-initial must be more"},
    {ARGS("--backoff-initial", "1s", "--backoff-max", "500ms"), NONE, PGE_CONFIG_USAGE,
     "--backoff-max must be at least --backoff-initial"},
    {ARGS("wait", "extra"), NONE, PGE_CONFIG_USAGE, "wait: unexpected argument \"extra\""},
    {ARGS("upgrade", "head", "again"), NONE, PGE_CONFIG_USAGE, "unexpected argument \"again\""},
    {ARGS("current", "--", "app"), NONE, PGE_CONFIG_USAGE, "current takes no COMMAND"},
};

Test(config, every_error_has_its_code_and_message, .timeout = 10)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *e = &error_cases[i];
        struct run r;
        run(&r, e->args, e->env);
        cr_assert_eq(r.r, e->r, "case %zu (%s): result %d, message %s", i, e->needle, r.r, r.err);
        cr_assert_not_null(memchr(r.err, '\0', sizeof r.err), "case %zu: unterminated", i);
        cr_assert_not_null(strstr(r.err, e->needle), "case %zu: \"%s\" not in \"%s\"", i, e->needle,
                           r.err);
        cr_assert_null(strchr(r.err, '\n'), "case %zu: not one line: %s", i, r.err);
        pge_config_free(&r.cfg);
    }
}

Test(config, errors_need_no_message_buffer, .timeout = 10)
{
    char *argv[] = {"pgentry", "--bogus", NULL};
    struct pge_config cfg;
    char small[8];
    cr_assert_eq(pge_config_parse(&cfg, 2, argv, NULL, NULL, 0), PGE_CONFIG_USAGE);
    pge_config_free(&cfg);
    cr_assert_eq(pge_config_parse(&cfg, 2, argv, NULL, small, sizeof small), PGE_CONFIG_USAGE);
    cr_assert_str_eq(small, "unknown");
    pge_config_free(&cfg);
    pge_config_free(NULL);
}

Test(config, no_migrate_with_migrate_cmd_in_the_image_leaves_subcommands_alone, .timeout = 10)
{
    /* An image sets both for its app; `docker exec app pgentry current` must still work. */
    struct run r;
    run_ok(&r, ARGS("current"), ARGS("PGENTRY_NO_MIGRATE=1", "PGENTRY_MIGRATE_CMD=alembic"));
    pge_config_free(&r.cfg);
}

Test(config, rewrite_table_is_bounded, .timeout = 10)
{
    char env[64 * 12 + 32] = "PGENTRY_REWRITE=";
    for (int i = 0; i < PGE_CONFIG_MAX_REWRITE; i++)
        strcat(env, "TERM:QUIT,");
    struct run r;
    run_ok(&r, NONE, ARGS(env));
    cr_assert_eq(r.cfg.nrewrite, PGE_CONFIG_MAX_REWRITE);
    pge_config_free(&r.cfg);
    strcat(env, "INT:QUIT");
    run(&r, NONE, ARGS(env));
    cr_assert_eq(r.r, PGE_CONFIG_USAGE);
    cr_assert_not_null(strstr(r.err, "more than 64 rewrites"), "%s", r.err);
    pge_config_free(&r.cfg);
}

Test(config, long_list_item_rejected, .timeout = 10)
{
    static char item[3000];
    memset(item, 'h', sizeof item - 6);
    strcpy(item + sizeof item - 6, ":5432");
    struct run r;
    run(&r, ARGS("--wait-tcp", item), NONE);
    cr_assert_eq(r.r, PGE_CONFIG_USAGE);
    cr_assert_not_null(strstr(r.err, "--wait-tcp: value too long"), "%s", r.err);
    pge_config_free(&r.cfg);
}

Test(config, messages_never_show_a_password, .timeout = 10)
{
    /* A typo in a URL with credentials must not print the password to the terminal. */
    const struct {
        const char *const *args;
        const char *const *env;
    } cases[] = {
        {ARGS("--wait-http", "htp://user:Sup3rSecret@api/health"), NONE},
        {NONE, ARGS("PGENTRY_WAIT_HTTP=http://a/h,htps://user:Sup3rSecret@api/health")},
        {ARGS("--app-health-url", "htp://user:Sup3rSecret@localhost/health"), NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run(&r, cases[i].args, cases[i].env);
        cr_assert_eq(r.r, PGE_CONFIG_INVALID, "case %zu", i);
        cr_assert_null(strstr(r.err, "Sup3rSecret"), "case %zu: %s", i, r.err);
        pge_config_free(&r.cfg);
    }
}

Test(config, parse_again_after_free, .timeout = 10)
{
    struct run r;
    run_ok(&r, ARGS("--wait-tcp", "a:1"), NONE);
    pge_config_free(&r.cfg);
    run_ok(&r, ARGS("--wait-http", "http://b/"), NONE);
    cr_assert_eq(r.cfg.nwait_tcp, 0);
    assert_list(r.cfg.wait_http, r.cfg.nwait_http, ARGS("http://b/"));
    pge_config_free(&r.cfg);
    pge_config_free(&r.cfg);
}

/* The strings of args laid out one after another, each NUL-terminated, as the kernel lays out
 * a process's arguments; argv points into the block. Returns the block's length. */
static size_t lay_out(char *block, size_t size, char **argv, const char *const *args)
{
    size_t n = 0;
    int argc = 0;
    argv[argc++] = "pgentry";
    for (; args[argc - 1]; argc++) {
        size_t len = strlen(args[argc - 1]) + 1;
        cr_assert_leq(n + len, size);
        memcpy(block + n, args[argc - 1], len);
        argv[argc] = block + n;
        n += len;
    }
    argv[argc] = NULL;
    return n;
}

Test(config, secret_values_are_hidden_in_argv_and_kept_in_the_config, .timeout = 10)
{
    static const char *const args[] = {
        "--database-url",
        "postgres://u:TopSecretPW@db/app",
        "--wait-http=http://a:HttpSecretPW@api/health",
        "--wait-http",
        "http://api/plain",
        "--app-health-url",
        "http://127.0.0.1:8000/health?password=QuerySecretPW",
        "--table",
        "plain",
        "--database-url=host=db password=x",
        "--migrate-database-url=postgres://u:DirectPW@db/app",
        "--",
        "app",
        "--database-url",
        "postgres://u:AppOwnPW@db/app",
        NULL,
    };
    /* What each string must read afterwards, padded with NULs to its old length: a mask
     * longer than the password is cut, never written past the string's end. */
    static const char *const want[] = {
        "--database-url",
        "postgres://u:***@db/app",
        "--wait-http=http://a:***@api/health",
        "--wait-http",
        "http://api/plain",
        "--app-health-url",
        "http://127.0.0.1:8000/health?password=***",
        "--table",
        "plain",
        "--database-url=host=db password=*",
        "--migrate-database-url=postgres://u:***@db/app",
        "--",
        "app",
        "--database-url",
        "postgres://u:AppOwnPW@db/app",
        NULL,
    };
    char block[1024], expect[1024];
    char *argv[32];
    memset(block, 'Z', sizeof block);
    size_t n = lay_out(block, sizeof block, argv, args);
    memcpy(expect, block, sizeof expect);
    for (size_t i = 0; want[i]; i++) {
        char *at = expect + (argv[i + 1] - block);
        cr_assert_leq(strlen(want[i]), strlen(args[i]), "case %zu", i);
        memset(at, '\0', strlen(args[i]));
        memcpy(at, want[i], strlen(want[i]));
    }

    struct pge_config cfg;
    char err[256];
    int argc = (int)(sizeof args / sizeof args[0]);
    cr_assert_eq(pge_config_parse(&cfg, argc, argv, NULL, err, sizeof err), PGE_CONFIG_OK, "%s",
                 err);
    pge_config_hide_secrets(&cfg, argv);
    for (size_t i = 0; i < sizeof block; i++)
        cr_assert_eq(block[i], expect[i], "byte %zu of %zu: '%c', wanted '%c'", i, n, block[i],
                     expect[i]);
    /* The config still has the real values. */
    cr_assert_str_eq(cfg.database_url, "host=db password=x");
    cr_assert_str_eq(cfg.migrate_database_url, "postgres://u:DirectPW@db/app");
    assert_list(cfg.wait_http, cfg.nwait_http,
                ARGS("http://a:HttpSecretPW@api/health", "http://api/plain"));
    cr_assert_str_eq(cfg.app_health_url, "http://127.0.0.1:8000/health?password=QuerySecretPW");
    cr_assert_str_eq(cfg.command[2], "postgres://u:AppOwnPW@db/app", "COMMAND's own arguments");
    pge_config_free(&cfg);

    /* The healthcheck URL too. */
    static const char *const hc[] = {"healthcheck", "http://u:HcSecretPW@127.0.0.1:8081/readyz",
                                     NULL};
    lay_out(block, sizeof block, argv, hc);
    cr_assert_eq(pge_config_parse(&cfg, 3, argv, NULL, err, sizeof err), PGE_CONFIG_OK, "%s", err);
    pge_config_hide_secrets(&cfg, argv);
    cr_assert_str_eq(argv[2], "http://u:***@127.0.0.1:8081/readyz");
    cr_assert_str_eq(cfg.target, "http://u:HcSecretPW@127.0.0.1:8081/readyz");
    pge_config_free(&cfg);
}
