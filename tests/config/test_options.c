/* Unit tests of the option table: every value from flags and environment, defaults, lists. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config_test.h"
#include "pgentry/common/backoff.h"
#include "pgentry/config/config.h"

Test(config, defaults, .timeout = 10)
{
    struct run r;
    run_ok(&r, NONE, NONE);
    const struct pge_config *c = &r.cfg;
    cr_assert_eq(c->cmd, PGE_CMD_RUN);
    cr_assert_null(c->command);
    cr_assert_eq(c->ncommand, 0);
    cr_assert_null(c->database_url);
    cr_assert_eq(c->db_configured, 0);
    cr_assert_str_eq(c->migrations_dir, "./migrations");
    cr_assert_eq(c->migrations_dir_set, 0);
    cr_assert_str_eq(c->table, "pgentry_migrations");
    cr_assert_null(c->migrate_cmd);
    cr_assert_eq(c->no_migrate + c->wait_migrations + c->exec + c->signal_group + c->sql_only, 0);
    cr_assert_eq(c->wait_timeout_ms, 60000);
    cr_assert_eq(c->connect_timeout_ms, 5000);
    cr_assert_eq(c->backoff_initial_ms, PGE_BACKOFF_INITIAL_MS);
    cr_assert_eq(c->backoff_max_ms, PGE_BACKOFF_MAX_MS);
    cr_assert_eq(c->nwait_tcp + c->nwait_http + c->nrewrite, 0);
    cr_assert_str_eq(c->health_addr, "0.0.0.0:8081");
    cr_assert_null(c->app_health_url);
    cr_assert_eq(c->stop_timeout_ms, 10000);
    cr_assert_null(c->user);
    cr_assert_eq(c->lock_wait_ms, 0);
    cr_assert_eq(c->lock_timeout_ms, 0);
    cr_assert_eq(c->log_format, PGE_LOG_TEXT);
    cr_assert_eq(c->log_level, PGE_LOG_INFO);
    pge_config_free(&r.cfg);
}

/* Every value option, once as a flag and once from its variable: the field it sets. */
struct value_case {
    const char *flag, *env, *value;
    size_t offset;
    enum { STR, MS } type;
    int64_t ms;
};

#define FIELD(f) offsetof(struct pge_config, f)

static const struct value_case value_cases[] = {
    {"--database-url", "DATABASE_URL", "postgres://db/app", FIELD(database_url), STR, 0},
    {"--migrations", "PGENTRY_MIGRATIONS", "/app/migrations", FIELD(migrations_dir), STR, 0},
    {"--table", "PGENTRY_TABLE", "ops.history", FIELD(table), STR, 0},
    {"--migrate-cmd", "PGENTRY_MIGRATE_CMD", "alembic upgrade head", FIELD(migrate_cmd), STR, 0},
    {"--migrate-database-url", "PGENTRY_MIGRATE_DATABASE_URL", "postgres://direct/app",
     FIELD(migrate_database_url), STR, 0},
    {"--health-addr", "PGENTRY_HEALTH_ADDR", "[::]:9000", FIELD(health_addr), STR, 0},
    {"--app-health-url", "PGENTRY_APP_HEALTH_URL", "http://127.0.0.1:8000/health",
     FIELD(app_health_url), STR, 0},
    {"--user", "PGENTRY_USER", "app:app", FIELD(user), STR, 0},
    {"--wait-timeout", "PGENTRY_WAIT_TIMEOUT", "1m30s", FIELD(wait_timeout_ms), MS, 90000},
    {"--connect-timeout", "PGENTRY_CONNECT_TIMEOUT", "750ms", FIELD(connect_timeout_ms), MS, 750},
    {"--backoff-initial", "PGENTRY_BACKOFF_INITIAL", "20ms", FIELD(backoff_initial_ms), MS, 20},
    {"--backoff-max", "PGENTRY_BACKOFF_MAX", "2", FIELD(backoff_max_ms), MS, 2000},
    {"--stop-timeout", "PGENTRY_STOP_TIMEOUT", "1.5s", FIELD(stop_timeout_ms), MS, 1500},
    {"--lock-wait", "PGENTRY_LOCK_WAIT", "2m", FIELD(lock_wait_ms), MS, 120000},
    {"--lock-timeout", "PGENTRY_LOCK_TIMEOUT", "1h", FIELD(lock_timeout_ms), MS, 3600000},
};

static void assert_value(const struct pge_config *c, const struct value_case *v, const char *how)
{
    const char *base = (const char *)c;
    if (v->type == STR)
        cr_assert_str_eq(*(const char *const *)(base + v->offset), v->value, "%s %s", how, v->flag);
    else
        cr_assert_eq(*(const int64_t *)(base + v->offset), v->ms, "%s %s", how, v->flag);
}

Test(config, every_value_option_from_flag_env_and_flag_equals, .timeout = 10)
{
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        const struct value_case *v = &value_cases[i];
        char envvar[256], eq[256];
        struct run r;
        snprintf(envvar, sizeof envvar, "%s=%s", v->env, v->value);
        snprintf(eq, sizeof eq, "%s=%s", v->flag, v->value);

        run_ok(&r, ARGS(v->flag, v->value), NONE);
        assert_value(&r.cfg, v, "flag");
        pge_config_free(&r.cfg);
        run_ok(&r, ARGS(eq), NONE);
        assert_value(&r.cfg, v, "flag=");
        pge_config_free(&r.cfg);
        run_ok(&r, NONE, ARGS(envvar));
        assert_value(&r.cfg, v, "env");
        pge_config_free(&r.cfg);
    }
}

Test(config, flags_beat_environment, .timeout = 10)
{
    struct run r;
    run_ok(&r,
           ARGS("--wait-timeout", "5s", "--table", "flag_table", "--log-level", "error",
                "--log-format", "text", "--health-addr", "off", "--rewrite", "INT:TERM",
                "--wait-tcp", "c:3"),
           ARGS("PGENTRY_WAIT_TIMEOUT=9s", "PGENTRY_TABLE=env_table", "PGENTRY_LOG_LEVEL=debug",
                "PGENTRY_LOG_FORMAT=json", "PGENTRY_HEALTH_ADDR=1.2.3.4:5",
                "PGENTRY_REWRITE=TERM:QUIT", "PGENTRY_WAIT_TCP=a:1,b:2"));
    cr_assert_eq(r.cfg.wait_timeout_ms, 5000);
    cr_assert_str_eq(r.cfg.table, "flag_table");
    cr_assert_eq(r.cfg.log_level, PGE_LOG_ERROR);
    cr_assert_eq(r.cfg.log_format, PGE_LOG_TEXT);
    cr_assert_null(r.cfg.health_addr);
    cr_assert_eq(r.cfg.nrewrite, 1);
    cr_assert_eq(r.cfg.rewrite[0].from, SIGINT);
    cr_assert_eq(r.cfg.rewrite[0].to, SIGTERM);
    assert_list(r.cfg.wait_tcp, r.cfg.nwait_tcp, ARGS("c:3"));
    pge_config_free(&r.cfg);
}

Test(config, repeated_options, .timeout = 10)
{
    struct run r;
    run_ok(&r,
           ARGS("--wait-tcp", "redis:6379", "--wait-tcp=[::1]:5672", "--wait-http",
                "http://api/health", "--wait-http", "https://auth:8443/ready?x=1,2", "--rewrite",
                "TERM:QUIT", "--rewrite=SIGUSR1:0", "--wait-timeout", "1s", "--wait-timeout", "2s"),
           ARGS("PGENTRY_WAIT_HTTP=http://env/ignored"));
    assert_list(r.cfg.wait_tcp, r.cfg.nwait_tcp, ARGS("redis:6379", "[::1]:5672"));
    assert_list(r.cfg.wait_http, r.cfg.nwait_http,
                ARGS("http://api/health", "https://auth:8443/ready?x=1,2"));
    cr_assert_eq(r.cfg.nrewrite, 2);
    cr_assert_eq(r.cfg.rewrite[0].from, SIGTERM);
    cr_assert_eq(r.cfg.rewrite[0].to, SIGQUIT);
    cr_assert_eq(r.cfg.rewrite[1].from, SIGUSR1);
    cr_assert_eq(r.cfg.rewrite[1].to, 0);
    cr_assert_eq(r.cfg.wait_timeout_ms, 2000, "the last of a repeated value wins");
    pge_config_free(&r.cfg);
}

Test(config, environment_lists, .timeout = 10)
{
    struct run r;
    run_ok(&r, NONE,
           ARGS("PGENTRY_WAIT_TCP= redis:6379 ,\tdb:5432,, [::1]:80 ",
                "PGENTRY_WAIT_HTTP=http://a/h,https://b/r",
                "PGENTRY_REWRITE=TERM:QUIT, INT:0 HUP:USR1"));
    assert_list(r.cfg.wait_tcp, r.cfg.nwait_tcp, ARGS("redis:6379", "db:5432", "[::1]:80"));
    assert_list(r.cfg.wait_http, r.cfg.nwait_http, ARGS("http://a/h", "https://b/r"));
    cr_assert_eq(r.cfg.nrewrite, 3);
    cr_assert_eq(r.cfg.rewrite[1].from, SIGINT);
    cr_assert_eq(r.cfg.rewrite[1].to, 0);
    cr_assert_eq(r.cfg.rewrite[2].from, SIGHUP);
    cr_assert_eq(r.cfg.rewrite[2].to, SIGUSR1);
    pge_config_free(&r.cfg);
}

Test(config, booleans, .timeout = 10)
{
    static const struct {
        const char *env;
        int value;
    } words[] = {{"1", 1},     {"true", 1}, {"YES", 1}, {"on", 1}, {"0", 0},
                 {"false", 0}, {"no", 0},   {"OFF", 0}, {"", 0}};
    static const struct {
        const char *flag, *env;
        size_t offset;
    } bools[] = {
        {"--no-migrate", "PGENTRY_NO_MIGRATE", FIELD(no_migrate)},
        {"--wait-migrations", "PGENTRY_WAIT_MIGRATIONS", FIELD(wait_migrations)},
        {"--allow-out-of-order", "PGENTRY_ALLOW_OUT_OF_ORDER", FIELD(allow_out_of_order)},
        {"--signal-group", "PGENTRY_SIGNAL_GROUP", FIELD(signal_group)},
        {"--exec", "PGENTRY_EXEC", FIELD(exec)},
    };
    for (size_t b = 0; b < sizeof bools / sizeof bools[0]; b++) {
        struct run r;
        /* --exec needs a COMMAND: give every case one. */
        run_ok(&r, ARGS(bools[b].flag, "--", "app"), NONE);
        cr_assert_eq(*(int *)((char *)&r.cfg + bools[b].offset), 1, "%s", bools[b].flag);
        pge_config_free(&r.cfg);
        for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
            char env[64];
            snprintf(env, sizeof env, "%s=%s", bools[b].env, words[w].env);
            run_ok(&r, ARGS("app"), ARGS(env));
            cr_assert_eq(*(int *)((char *)&r.cfg + bools[b].offset), words[w].value, "%s", env);
            pge_config_free(&r.cfg);
        }
    }
}

Test(config, exec_from_the_environment_only_applies_to_a_command, .timeout = 10)
{
    /* An image sets PGENTRY_EXEC=1 for its app; `docker exec app pgentry current`, the
     * init-container mode and the healthcheck must still work. */
    const struct {
        const char *const *args;
        enum pge_cmd cmd;
        int exec;
    } cases[] = {
        {NONE, PGE_CMD_RUN, 0},
        {ARGS("current"), PGE_CMD_CURRENT, 0},
        {ARGS("upgrade"), PGE_CMD_UPGRADE, 0},
        {ARGS("wait"), PGE_CMD_WAIT, 0},
        {ARGS("healthcheck"), PGE_CMD_HEALTHCHECK, 0},
        {ARGS("--"), PGE_CMD_RUN, 0},
        {ARGS("app"), PGE_CMD_RUN, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run_ok(&r, cases[i].args, ARGS("PGENTRY_EXEC=1"));
        cr_assert_eq(r.cfg.cmd, cases[i].cmd, "case %zu", i);
        cr_assert_eq(r.cfg.exec, cases[i].exec, "case %zu: exec without COMMAND is kept", i);
        pge_config_free(&r.cfg);
    }
}

Test(config, healthcheck_reads_only_the_health_address_from_the_environment, .timeout = 10)
{
    /* The container's variables are the app's: one the probe does not use cannot break it. */
    struct run r;
    run_ok(&r, ARGS("healthcheck"),
           ARGS("PGENTRY_WAIT_TIMEOUT=bogus", "PGENTRY_WAIT_TCP=bad", "PGENTRY_LOG_LEVEL=loud",
                "PGENTRY_APP_HEALTH_URL=nope", "PGENTRY_HEALTH_ADDR=127.0.0.1:9000"));
    cr_assert_eq(r.cfg.cmd, PGE_CMD_HEALTHCHECK);
    cr_assert_str_eq(r.cfg.health_addr, "127.0.0.1:9000");
    pge_config_free(&r.cfg);
    /* What it does read, it checks; the caller learns that the healthcheck failed. */
    run(&r, ARGS("healthcheck"), ARGS("PGENTRY_HEALTH_ADDR=8081"));
    cr_assert_eq(r.r, PGE_CONFIG_INVALID);
    cr_assert_eq(r.cfg.cmd, PGE_CMD_HEALTHCHECK);
    pge_config_free(&r.cfg);
    run(&r, ARGS("healthcheck", "--wait-timeout", "soon"), NONE);
    cr_assert_eq(r.r, PGE_CONFIG_USAGE);
    cr_assert_eq(r.cfg.cmd, PGE_CMD_HEALTHCHECK);
    pge_config_free(&r.cfg);
    /* Other commands still read every variable; a flag means the variable is never read. */
    run(&r, ARGS("wait"), ARGS("PGENTRY_WAIT_TIMEOUT=bogus"));
    cr_assert_eq(r.r, PGE_CONFIG_USAGE);
    pge_config_free(&r.cfg);
    run_ok(&r, ARGS("wait", "--wait-timeout", "5s"), ARGS("PGENTRY_WAIT_TIMEOUT=bogus"));
    cr_assert_eq(r.cfg.wait_timeout_ms, 5000);
    pge_config_free(&r.cfg);
}

Test(config, empty_variables_keep_defaults, .timeout = 10)
{
    /* VAR= in a compose file means "not set": defaults stay, nothing is rejected. */
    struct run r;
    run_ok(&r, NONE,
           ARGS("PGENTRY_TABLE=", "PGENTRY_MIGRATIONS=", "PGENTRY_WAIT_TIMEOUT=",
                "PGENTRY_HEALTH_ADDR=", "PGENTRY_LOG_LEVEL=", "PGENTRY_WAIT_TCP=",
                "PGENTRY_REWRITE=", "DATABASE_URL=", "PGHOST=", "PGSERVICE="));
    cr_assert_str_eq(r.cfg.table, "pgentry_migrations");
    cr_assert_str_eq(r.cfg.migrations_dir, "./migrations");
    cr_assert_eq(r.cfg.migrations_dir_set, 0);
    cr_assert_eq(r.cfg.wait_timeout_ms, 60000);
    cr_assert_str_eq(r.cfg.health_addr, "0.0.0.0:8081");
    cr_assert_eq(r.cfg.log_level, PGE_LOG_INFO);
    cr_assert_eq(r.cfg.nwait_tcp + r.cfg.nrewrite, 0);
    cr_assert_null(r.cfg.database_url);
    cr_assert_eq(r.cfg.db_configured, 0);
    pge_config_free(&r.cfg);
}

Test(config, database_configured, .timeout = 10)
{
    static const struct {
        const char *arg; /* NULL: none */
        const char *env; /* NULL: none */
        int configured;
    } cases[] = {
        {NULL, NULL, 0},
        {NULL, "DATABASE_URL=postgres://db/app", 1},
        {NULL, "PGHOST=db", 1},
        {NULL, "PGSERVICE=prod", 1},
        {NULL, "PGPORT=5432", 0},
        {NULL, "PGHOSTADDR=10.0.0.1", 0},
        {NULL, "PGDATABASE=app", 0},
        {"--database-url=host=db", NULL, 1},
        {"--database-url=postgres://db/app", "PGHOST=", 1},
        {"--migrate-database-url=postgres://direct/app", NULL, 1},
        {NULL, "PGENTRY_MIGRATE_DATABASE_URL=postgres://direct/app", 1},
        {NULL, "PGENTRY_MIGRATE_DATABASE_URL=", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run_ok(&r, cases[i].arg ? ARGS(cases[i].arg) : NONE,
               cases[i].env ? ARGS(cases[i].env) : NONE);
        cr_assert_eq(r.cfg.db_configured, cases[i].configured, "%s %s", cases[i].arg, cases[i].env);
        pge_config_free(&r.cfg);
    }
}
