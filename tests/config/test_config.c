/* Unit tests for option parsing: flags and environment, subcommands, COMMAND, every error. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/common/backoff.h"
#include "pgentry/config/config.h"

#define MAX_ARGS 80

/* One parse: the argv and envp arrays live here because cfg points into them. */
struct run {
    struct pge_config cfg;
    char *argv[MAX_ARGS + 2];
    char *envp[MAX_ARGS + 1];
    char err[512];
    enum pge_config_result r;
};

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE      ((const char *const[]){NULL})

/* Parse "pgentry args..." with env; the result is in r (release with pge_config_free). */
static void run(struct run *r, const char *const *args, const char *const *env)
{
    int argc = 0, envc = 0;
    r->argv[argc++] = "pgentry";
    for (; args[argc - 1]; argc++) {
        cr_assert_lt(argc, MAX_ARGS);
        r->argv[argc] = (char *)args[argc - 1];
    }
    r->argv[argc] = NULL;
    for (; env[envc]; envc++) {
        cr_assert_lt(envc, MAX_ARGS);
        r->envp[envc] = (char *)env[envc];
    }
    r->envp[envc] = NULL;
    memset(r->err, 'Z', sizeof r->err);
    r->r = pge_config_parse(&r->cfg, argc, r->argv, r->envp, r->err, sizeof r->err);
}

/* Parse and require success. */
static void run_ok(struct run *r, const char *const *args, const char *const *env)
{
    run(r, args, env);
    cr_assert_eq(r->r, PGE_CONFIG_OK, "%s: %s", args[0] ? args[0] : "(no args)", r->err);
    cr_assert_str_empty(r->err, "message on success: %s", r->err);
}

static void assert_list(char **list, size_t n, const char *const *want)
{
    size_t k = 0;
    for (; want[k]; k++) {
        cr_assert_lt(k, n, "list has %zu items, wanted more", n);
        cr_assert_str_eq(list[k], want[k], "item %zu", k);
    }
    cr_assert_eq(n, k, "list has %zu items, wanted %zu", n, k);
}

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
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run_ok(&r, cases[i].arg ? ARGS(cases[i].arg) : NONE,
               cases[i].env ? ARGS(cases[i].env) : NONE);
        cr_assert_eq(r.cfg.db_configured, cases[i].configured, "%s %s", cases[i].arg, cases[i].env);
        pge_config_free(&r.cfg);
    }
}

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
