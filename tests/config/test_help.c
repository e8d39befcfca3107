/* Unit tests of --help and --version: every option and variable is listed with its default. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config_test.h"
#include "pgentry/common/backoff.h"
#include "pgentry/config/config.h"

Test(config, help_and_version, .timeout = 10)
{
    const struct {
        const char *const *args;
        enum pge_cmd cmd;
    } cases[] = {
        {ARGS("--help"), PGE_CMD_HELP},
        {ARGS("-h"), PGE_CMD_HELP},
        {ARGS("--version"), PGE_CMD_VERSION},
        {ARGS("-V"), PGE_CMD_VERSION},
        {ARGS("wait", "--help"), PGE_CMD_HELP},
        {ARGS("--wait-timeout", "5s", "--version", "--bogus"), PGE_CMD_VERSION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run_ok(&r, cases[i].args, NONE);
        cr_assert_eq(r.cfg.cmd, cases[i].cmd, "case %zu", i);
        pge_config_free(&r.cfg);
    }
    /* After the command starts, --help is the application's. */
    struct run r;
    run_ok(&r, ARGS("app", "--help"), NONE);
    cr_assert_eq(r.cfg.cmd, PGE_CMD_RUN);
    cr_assert_eq(r.cfg.ncommand, 2);
    pge_config_free(&r.cfg);
}

Test(config, help_lists_every_option_and_variable, .timeout = 10)
{
    static const char *const names[] = {
        "--database-url",
        "DATABASE_URL",
        "--migrations",
        "PGENTRY_MIGRATIONS",
        "--table",
        "PGENTRY_TABLE",
        "--migrate-cmd",
        "PGENTRY_MIGRATE_CMD",
        "--no-migrate",
        "PGENTRY_NO_MIGRATE",
        "--wait-migrations",
        "PGENTRY_WAIT_MIGRATIONS",
        "--allow-out-of-order",
        "PGENTRY_ALLOW_OUT_OF_ORDER",
        "--wait-timeout",
        "PGENTRY_WAIT_TIMEOUT",
        "--connect-timeout",
        "PGENTRY_CONNECT_TIMEOUT",
        "--backoff-initial",
        "PGENTRY_BACKOFF_INITIAL",
        "--backoff-max",
        "PGENTRY_BACKOFF_MAX",
        "--wait-tcp",
        "PGENTRY_WAIT_TCP",
        "--wait-http",
        "PGENTRY_WAIT_HTTP",
        "--health-addr",
        "PGENTRY_HEALTH_ADDR",
        "--app-health-url",
        "PGENTRY_APP_HEALTH_URL",
        "--exec",
        "PGENTRY_EXEC",
        "--stop-timeout",
        "PGENTRY_STOP_TIMEOUT",
        "--signal-group",
        "PGENTRY_SIGNAL_GROUP",
        "--rewrite",
        "PGENTRY_REWRITE",
        "--user",
        "PGENTRY_USER",
        "--lock-wait",
        "PGENTRY_LOCK_WAIT",
        "--lock-timeout",
        "PGENTRY_LOCK_TIMEOUT",
        "--log-format",
        "PGENTRY_LOG_FORMAT",
        "--log-level",
        "PGENTRY_LOG_LEVEL",
        "pgentry wait",
        "pgentry upgrade",
        "pgentry downgrade",
        "pgentry current",
        "pgentry history",
        "pgentry status",
        "pgentry stamp",
        "pgentry revision",
        "pgentry verify",
        "pgentry healthcheck",
    };
    const char *help = pge_config_help();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert_not_null(strstr(help, names[i]), "--help does not mention %s", names[i]);
    /* The documented backoff defaults are the real ones. */
    char d[64];
    snprintf(d, sizeof d, "first retry ceiling (%dms)", PGE_BACKOFF_INITIAL_MS);
    cr_assert_not_null(strstr(help, d), "%s", d);
    snprintf(d, sizeof d, "retry ceiling cap (%dms)", PGE_BACKOFF_MAX_MS);
    cr_assert_not_null(strstr(help, d), "%s", d);
}
