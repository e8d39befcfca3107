/* Every option of the contract, from flags and environment (flags win). Pure. */
#include "pgentry/config/config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/backoff.h"
#include "pgentry/migrate/migplan.h"
#include "pgentry/common/parse.h"
#include "pgentry/common/redact.h"

enum kind {
    K_STR,
    K_BOOL,
    K_DURATION,
    K_LIST_TCP,
    K_LIST_HTTP,
    K_REWRITE,
    K_LEVEL,
    K_FORMAT,
    K_HEALTH,
    K_MIGRATIONS,
    K_URL, /* an http:// or https:// URL */
};

struct option {
    const char *flag; /* without the leading "--" */
    const char *env;
    enum kind kind;
    size_t offset;
    int secret; /* the value may carry a password: copied, and hidden in argv */
};

#define OFF(field) offsetof(struct pge_config, field)

static const struct option options[] = {
    {"database-url", "DATABASE_URL", K_STR, OFF(database_url), 1},
    {"migrations", "PGENTRY_MIGRATIONS", K_MIGRATIONS, OFF(migrations_dir), 0},
    {"table", "PGENTRY_TABLE", K_STR, OFF(table), 0},
    {"migrate-cmd", "PGENTRY_MIGRATE_CMD", K_STR, OFF(migrate_cmd), 0},
    {"no-migrate", "PGENTRY_NO_MIGRATE", K_BOOL, OFF(no_migrate), 0},
    {"wait-migrations", "PGENTRY_WAIT_MIGRATIONS", K_BOOL, OFF(wait_migrations), 0},
    {"wait-timeout", "PGENTRY_WAIT_TIMEOUT", K_DURATION, OFF(wait_timeout_ms), 0},
    {"connect-timeout", "PGENTRY_CONNECT_TIMEOUT", K_DURATION, OFF(connect_timeout_ms), 0},
    {"backoff-initial", "PGENTRY_BACKOFF_INITIAL", K_DURATION, OFF(backoff_initial_ms), 0},
    {"backoff-max", "PGENTRY_BACKOFF_MAX", K_DURATION, OFF(backoff_max_ms), 0},
    {"wait-tcp", "PGENTRY_WAIT_TCP", K_LIST_TCP, OFF(wait_tcp), 0},
    {"wait-http", "PGENTRY_WAIT_HTTP", K_LIST_HTTP, OFF(wait_http), 1},
    {"health-addr", "PGENTRY_HEALTH_ADDR", K_HEALTH, OFF(health_addr), 0},
    {"app-health-url", "PGENTRY_APP_HEALTH_URL", K_URL, OFF(app_health_url), 1},
    {"exec", "PGENTRY_EXEC", K_BOOL, OFF(exec), 0},
    {"stop-timeout", "PGENTRY_STOP_TIMEOUT", K_DURATION, OFF(stop_timeout_ms), 0},
    {"signal-group", "PGENTRY_SIGNAL_GROUP", K_BOOL, OFF(signal_group), 0},
    {"rewrite", "PGENTRY_REWRITE", K_REWRITE, OFF(rewrite), 0},
    {"user", "PGENTRY_USER", K_STR, OFF(user), 0},
    {"lock-wait", "PGENTRY_LOCK_WAIT", K_DURATION, OFF(lock_wait_ms), 0},
    {"lock-timeout", "PGENTRY_LOCK_TIMEOUT", K_DURATION, OFF(lock_timeout_ms), 0},
    {"log-format", "PGENTRY_LOG_FORMAT", K_FORMAT, OFF(log_format), 0},
    {"log-level", "PGENTRY_LOG_LEVEL", K_LEVEL, OFF(log_level), 0},
};

static const struct {
    const char *name;
    enum pge_cmd cmd;
} subcommands[] = {
    {"wait", PGE_CMD_WAIT},           {"upgrade", PGE_CMD_UPGRADE},
    {"downgrade", PGE_CMD_DOWNGRADE}, {"current", PGE_CMD_CURRENT},
    {"history", PGE_CMD_HISTORY},     {"status", PGE_CMD_STATUS},
    {"stamp", PGE_CMD_STAMP},         {"revision", PGE_CMD_REVISION},
    {"verify", PGE_CMD_VERIFY},       {"healthcheck", PGE_CMD_HEALTHCHECK},
};

const char *pge_config_cmd_name(enum pge_cmd cmd)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (subcommands[i].cmd == cmd)
            return subcommands[i].name;
    switch (cmd) {
    case PGE_CMD_VERSION:
        return "--version";
    case PGE_CMD_HELP:
        return "--help";
    default:
        return "run";
    }
}

int pge_config_cmd_needs_db(enum pge_cmd cmd)
{
    switch (cmd) {
    case PGE_CMD_UPGRADE:
    case PGE_CMD_DOWNGRADE:
    case PGE_CMD_CURRENT:
    case PGE_CMD_HISTORY:
    case PGE_CMD_STATUS:
    case PGE_CMD_STAMP:
    case PGE_CMD_VERIFY:
        return 1;
    default:
        return 0;
    }
}

const char *pge_config_getenv(char **envp, const char *name)
{
    size_t n = strlen(name);
    if (!envp)
        return NULL;
    for (char **e = envp; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t size, const char *fmt,
                                                          ...)
{
    va_list ap;
    if (!err || size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

static void free_list(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

void pge_config_free(struct pge_config *cfg)
{
    if (!cfg)
        return;
    free_list(&cfg->wait_tcp, &cfg->nwait_tcp);
    free_list(&cfg->wait_http, &cfg->nwait_http);
    free_list(&cfg->owned, &cfg->nowned);
    free(cfg->secret_args);
    cfg->secret_args = NULL;
    cfg->nsecret_args = 0;
}

static void defaults(struct pge_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->cmd = PGE_CMD_RUN;
    cfg->migrations_dir = "./migrations";
    cfg->table = "pgentry_migrations";
    cfg->wait_timeout_ms = 60000;
    cfg->connect_timeout_ms = 5000;
    cfg->backoff_initial_ms = PGE_BACKOFF_INITIAL_MS;
    cfg->backoff_max_ms = PGE_BACKOFF_MAX_MS;
    cfg->health_addr = "0.0.0.0:8081";
    cfg->stop_timeout_ms = 10000;
    cfg->log_format = PGE_LOG_TEXT;
    cfg->log_level = PGE_LOG_INFO;
}

static int list_add(char ***list, size_t *n, const char *item, size_t len)
{
    char **grown = realloc(*list, (*n + 1) * sizeof **list);
    if (!grown)
        return -1;
    *list = grown;
    grown[*n] = strndup(item, len);
    if (!grown[*n])
        return -1;
    (*n)++;
    return 0;
}

/* A copy of an argv value, owned by the config: argv itself may be rewritten to hide a
 * password (pge_config_hide_secrets). NULL when out of memory. */
static const char *keep(struct pge_config *cfg, const char *value)
{
    if (list_add(&cfg->owned, &cfg->nowned, value, strlen(value)) < 0)
        return NULL;
    return cfg->owned[cfg->nowned - 1];
}

static int remember_secret_arg(struct pge_config *cfg, int index, size_t offset)
{
    struct pge_config_argref *grown =
        realloc(cfg->secret_args, (cfg->nsecret_args + 1) * sizeof *grown);
    if (!grown)
        return -1;
    cfg->secret_args = grown;
    grown[cfg->nsecret_args++] = (struct pge_config_argref){index, offset};
    return 0;
}

static int valid_tcp(const char *s)
{
    char host[256];
    int port;
    return pge_parse_hostport(s, host, sizeof host, &port) == 0 && host[0] != '\0';
}

static int valid_http(const char *s)
{
    return (strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]);
}

static int valid_health(const char *s)
{
    char host[256];
    int port;
    return pge_parse_hostport(s, host, sizeof host, &port) == 0;
}

/* Apply one value. from_env: the value came from the environment (a list is comma-separated
 * and a bool is a word). first: the first time a flag sets this list (it replaces the env's).
 * Returns PGE_CONFIG_OK or an error with err filled. */
static enum pge_config_result apply(struct pge_config *cfg, const struct option *o,
                                    const char *value, int from_env, int first, char *err,
                                    size_t errsize)
{
    char *base = (char *)cfg;
    char name[64];
    if (from_env)
        snprintf(name, sizeof name, "%s", o->env);
    else
        snprintf(name, sizeof name, "--%s", o->flag);
    if (o->secret && !from_env && o->kind != K_LIST_HTTP && value[0] &&
        !(value = keep(cfg, value))) {
        set_err(err, errsize, "out of memory");
        return PGE_CONFIG_INVALID;
    }

    switch (o->kind) {
    case K_STR:
        if (!from_env && value[0] == '\0') {
            set_err(err, errsize, "%s needs a value", name);
            return PGE_CONFIG_USAGE;
        }
        *(const char **)(base + o->offset) = value[0] ? value : NULL;
        return PGE_CONFIG_OK;
    case K_URL: {
        char shown[1024];
        if (value[0] == '\0' && from_env) {
            *(const char **)(base + o->offset) = NULL;
            return PGE_CONFIG_OK;
        }
        if (!valid_http(value)) {
            set_err(err, errsize, "%s: \"%s\" is not an http:// or https:// URL", name,
                    pge_redact(value, shown, sizeof shown));
            return PGE_CONFIG_INVALID;
        }
        *(const char **)(base + o->offset) = value;
        return PGE_CONFIG_OK;
    }
    case K_MIGRATIONS:
        if (value[0] == '\0') {
            set_err(err, errsize, "%s needs a directory", name);
            return PGE_CONFIG_USAGE;
        }
        cfg->migrations_dir = value;
        cfg->migrations_dir_set = 1;
        return PGE_CONFIG_OK;
    case K_BOOL: {
        int b = 1;
        if (value && pge_parse_bool(value, &b) < 0) {
            set_err(err, errsize, "%s=%s is not a boolean: use 1 or 0", name, value);
            return PGE_CONFIG_USAGE;
        }
        *(int *)(base + o->offset) = b;
        return PGE_CONFIG_OK;
    }
    case K_DURATION: {
        int64_t ms;
        if (pge_parse_duration(value, &ms) < 0) {
            set_err(err, errsize,
                    "%s: bad duration \"%s\": use e.g. 250ms, 10s, 2m, 1h (a bare number is "
                    "seconds)",
                    name, value);
            return PGE_CONFIG_USAGE;
        }
        *(int64_t *)(base + o->offset) = ms;
        return PGE_CONFIG_OK;
    }
    case K_LIST_TCP:
    case K_LIST_HTTP: {
        char ***list = o->kind == K_LIST_TCP ? &cfg->wait_tcp : &cfg->wait_http;
        size_t *n = o->kind == K_LIST_TCP ? &cfg->nwait_tcp : &cfg->nwait_http;
        if (first)
            free_list(list, n);
        const char *p = value;
        do {
            size_t len = from_env ? strcspn(p, ",") : strlen(p);
            char item[2048];
            /* Surrounding blanks in "a:1, b:2" are the writer's formatting, not the value. */
            while (len && (*p == ' ' || *p == '\t')) {
                p++;
                len--;
            }
            size_t l2 = len;
            while (l2 && (p[l2 - 1] == ' ' || p[l2 - 1] == '\t'))
                l2--;
            if (l2 >= sizeof item) {
                set_err(err, errsize, "%s: value too long", name);
                return PGE_CONFIG_USAGE;
            }
            memcpy(item, p, l2);
            item[l2] = '\0';
            if (l2 > 0 || !from_env) {
                int ok = o->kind == K_LIST_TCP ? valid_tcp(item) : valid_http(item);
                if (!ok) {
                    /* A mistyped URL may still carry credentials: never echo a password. */
                    char shown[sizeof item];
                    set_err(err, errsize,
                            o->kind == K_LIST_TCP
                                ? "%s: \"%s\" is not HOST:PORT (IPv6: [addr]:port)"
                                : "%s: \"%s\" is not an http:// or https:// URL",
                            name, pge_redact(item, shown, sizeof shown));
                    /* A malformed address is a configuration error (78), like a bad URL. */
                    return PGE_CONFIG_INVALID;
                }
                if (list_add(list, n, item, l2) < 0) {
                    set_err(err, errsize, "out of memory");
                    return PGE_CONFIG_INVALID;
                }
            }
            p += len;
            while (*p == ' ' || *p == '\t')
                p++;
        } while (from_env && *p++ == ',');
        return PGE_CONFIG_OK;
    }
    case K_REWRITE: {
        if (first)
            cfg->nrewrite = 0;
        const char *p = value;
        while (*p) {
            size_t len = strcspn(p, from_env ? ", " : "");
            char item[64], *colon;
            int from, to;
            if (len == 0) {
                p++;
                continue;
            }
            if (len >= sizeof item) {
                set_err(err, errsize, "%s: \"%.*s\" is too long for FROM:TO", name, (int)len, p);
                return PGE_CONFIG_USAGE;
            }
            memcpy(item, p, len);
            item[len] = '\0';
            colon = strchr(item, ':');
            if (!colon) {
                set_err(err, errsize, "%s: \"%s\" is not FROM:TO (e.g. TERM:QUIT)", name, item);
                return PGE_CONFIG_USAGE;
            }
            *colon = '\0';
            if (pge_parse_signal(item, 0, &from) < 0 || pge_parse_signal(colon + 1, 1, &to) < 0) {
                set_err(err, errsize,
                        "%s: unknown signal in \"%s:%s\": use names like TERM, QUIT, USR1, or "
                        "numbers (TO may be 0 to drop)",
                        name, item, colon + 1);
                return PGE_CONFIG_USAGE;
            }
            if (cfg->nrewrite == PGE_CONFIG_MAX_REWRITE) {
                set_err(err, errsize, "%s: more than %d rewrites", name, PGE_CONFIG_MAX_REWRITE);
                return PGE_CONFIG_USAGE;
            }
            cfg->rewrite[cfg->nrewrite].from = from;
            cfg->rewrite[cfg->nrewrite].to = to;
            cfg->nrewrite++;
            p += len;
        }
        return PGE_CONFIG_OK;
    }
    case K_LEVEL:
        if (pge_log_parse_level(value, &cfg->log_level) < 0) {
            set_err(err, errsize, "%s: unknown level \"%s\": use debug, info, warn or error", name,
                    value);
            return PGE_CONFIG_USAGE;
        }
        return PGE_CONFIG_OK;
    case K_FORMAT:
        if (pge_log_parse_format(value, &cfg->log_format) < 0) {
            set_err(err, errsize, "%s: unknown format \"%s\": use text or json", name, value);
            return PGE_CONFIG_USAGE;
        }
        return PGE_CONFIG_OK;
    case K_HEALTH:
        if (strcmp(value, "off") == 0) {
            cfg->health_addr = NULL;
            return PGE_CONFIG_OK;
        }
        if (!valid_health(value)) {
            set_err(err, errsize,
                    "%s: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8081, [::]:8081) or off", name,
                    value);
            return PGE_CONFIG_INVALID;
        }
        cfg->health_addr = value;
        return PGE_CONFIG_OK;
    }
    return PGE_CONFIG_OK;
}

static const struct option *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    return NULL;
}

static int takes_positional(enum pge_cmd cmd)
{
    return cmd == PGE_CMD_UPGRADE || cmd == PGE_CMD_DOWNGRADE || cmd == PGE_CMD_STAMP ||
           cmd == PGE_CMD_HEALTHCHECK;
}

/* "-1", "-12": a relative downgrade target, not an option. */
static int is_negative_number(const char *s)
{
    if (s[0] != '-' || s[1] == '\0')
        return 0;
    for (const char *p = s + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* The planner's name for a subcommand that takes a target: 0, or -1 for the others. */
static int target_command(enum pge_cmd cmd, enum pge_migplan_command *out)
{
    switch (cmd) {
    case PGE_CMD_UPGRADE:
        *out = PGE_MIGPLAN_CMD_UPGRADE;
        return 0;
    case PGE_CMD_DOWNGRADE:
        *out = PGE_MIGPLAN_CMD_DOWNGRADE;
        return 0;
    case PGE_CMD_STAMP:
        *out = PGE_MIGPLAN_CMD_STAMP;
        return 0;
    default:
        return -1;
    }
}

/* Combinations no single option can judge. exec_flag: --exec was given as a flag (not only
 * PGENTRY_EXEC in the environment). */
static enum pge_config_result check(struct pge_config *cfg, int exec_flag, char *err,
                                    size_t errsize)
{
    if ((cfg->cmd == PGE_CMD_DOWNGRADE || cfg->cmd == PGE_CMD_STAMP) && !cfg->target) {
        set_err(err, errsize, "%s needs a target: %s", pge_config_cmd_name(cfg->cmd),
                cfg->cmd == PGE_CMD_STAMP ? "pgentry stamp VERSION|head|base"
                                          : "pgentry downgrade -N|VERSION|base");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->cmd == PGE_CMD_REVISION && (!cfg->message || !cfg->message[0])) {
        set_err(err, errsize, "revision needs a message: pgentry revision -m \"add rating\"");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->sql_only && cfg->cmd != PGE_CMD_UPGRADE && cfg->cmd != PGE_CMD_DOWNGRADE) {
        set_err(err, errsize, "--sql goes with upgrade or downgrade only");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->message && cfg->cmd != PGE_CMD_REVISION) {
        set_err(err, errsize, "-m goes with revision only");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->exec && cfg->ncommand == 0) {
        /* PGENTRY_EXEC=1 is set in an image for its application: `docker exec app pgentry
         * current`, the init-container mode and the healthcheck run without a COMMAND and
         * must not trip over it. Only a typed --exec without COMMAND is a mistake. */
        if (exec_flag) {
            set_err(err, errsize,
                    "--exec needs a COMMAND to replace pgentry with: pgentry --exec -- "
                    "uvicorn app:app");
            return PGE_CONFIG_USAGE;
        }
        cfg->exec = 0;
    }
    if (cfg->no_migrate && cfg->wait_migrations) {
        set_err(err, errsize, "--no-migrate and --wait-migrations contradict each other: keep one");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->migrate_cmd && cfg->wait_migrations) {
        set_err(err, errsize,
                "--migrate-cmd and --wait-migrations contradict each other: keep one");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->connect_timeout_ms == 0) {
        set_err(err, errsize, "--connect-timeout must be more than 0");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->backoff_initial_ms == 0) {
        set_err(err, errsize, "--backoff-initial must be more than 0 (e.g. 10ms)");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->backoff_max_ms < cfg->backoff_initial_ms) {
        set_err(err, errsize, "--backoff-max must be at least --backoff-initial");
        return PGE_CONFIG_USAGE;
    }
    /* Each command takes only some kinds of target: say so now, not after the database has
     * answered (and, in a run, after waiting for it). */
    enum pge_migplan_command tc;
    if (target_command(cfg->cmd, &tc) == 0 &&
        pge_migplan_check_target(tc, cfg->target, NULL, err, errsize) != PGE_MIGPLAN_OK)
        return PGE_CONFIG_USAGE;
    return PGE_CONFIG_OK;
}

/* The environment's value for every option no flag has set (seen[i]: option i was a flag).
 * A healthcheck reads only the health address: the container's variables are set for the app,
 * and one the probe does not use must not turn a healthy answer into an error. */
static enum pge_config_result apply_environment(struct pge_config *cfg, char **envp,
                                                const unsigned char *seen, char *err,
                                                size_t errsize)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const char *v = pge_config_getenv(envp, options[i].env);
        if (!v || seen[i])
            continue;
        if (cfg->cmd == PGE_CMD_HEALTHCHECK && options[i].kind != K_HEALTH)
            continue;
        /* An empty variable is "unset" for values; for booleans it is an explicit "off". */
        if (v[0] == '\0' && options[i].kind != K_BOOL)
            continue;
        enum pge_config_result r = apply(cfg, &options[i], v, 1, 1, err, errsize);
        if (r != PGE_CONFIG_OK)
            return r;
    }
    static const char *const db_vars[] = {"DATABASE_URL", "PGHOST", "PGSERVICE"};
    for (size_t i = 0; i < sizeof db_vars / sizeof db_vars[0]; i++) {
        const char *v = pge_config_getenv(envp, db_vars[i]);
        if (v && v[0])
            cfg->db_configured = 1;
    }
    return PGE_CONFIG_OK;
}

enum pge_config_result pge_config_parse(struct pge_config *cfg, int argc, char **argv, char **envp,
                                        char *err, size_t errsize)
{
    enum pge_config_result r;
    unsigned char seen[sizeof options / sizeof options[0]] = {0};
    int subcommand_seen = 0;
    int sql_flag = 0;

    defaults(cfg);
    if (err && errsize)
        err[0] = '\0';

    /* Flags first, so that the command is known before the environment is read. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc) {
                cfg->command = &argv[i + 1];
                cfg->ncommand = argc - i - 1;
            }
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cfg->cmd = PGE_CMD_HELP;
            return PGE_CONFIG_OK;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            cfg->cmd = PGE_CMD_VERSION;
            return PGE_CONFIG_OK;
        }
        if (strcmp(a, "--sql") == 0) {
            sql_flag = 1;
            continue;
        }
        if (strcmp(a, "-m") == 0 || strcmp(a, "--message") == 0 ||
            strncmp(a, "--message=", 10) == 0) {
            if (a[1] == '-' && a[9] == '=') {
                cfg->message = a + 10;
            } else if (i + 1 < argc) {
                cfg->message = argv[++i];
            } else {
                set_err(err, errsize, "%s needs a message", a);
                return PGE_CONFIG_USAGE;
            }
            continue;
        }
        if (strncmp(a, "--", 2) == 0) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const struct option *o = find_option(name, len);
            const char *value;
            if (!o) {
                set_err(err, errsize, "unknown option --%.*s: see pgentry --help", (int)len, name);
                return PGE_CONFIG_USAGE;
            }
            if (o->kind == K_BOOL) {
                if (eq) {
                    set_err(err, errsize, "--%s takes no value", o->flag);
                    return PGE_CONFIG_USAGE;
                }
                value = NULL;
            } else if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                set_err(err, errsize, "--%s needs a value: see pgentry --help", o->flag);
                return PGE_CONFIG_USAGE;
            }
            size_t idx = (size_t)(o - options);
            r = apply(cfg, o, value, 0, !seen[idx], err, errsize);
            if (r != PGE_CONFIG_OK)
                return r;
            seen[idx] = 1;
            if (o->secret && remember_secret_arg(cfg, i, eq ? (size_t)(eq + 1 - a) : 0) < 0) {
                set_err(err, errsize, "out of memory");
                return PGE_CONFIG_INVALID;
            }
            if (o->offset == OFF(database_url) && cfg->database_url)
                cfg->db_configured = 1;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0' &&
            !(cfg->cmd == PGE_CMD_DOWNGRADE && !cfg->target && is_negative_number(a))) {
            set_err(err, errsize, "unknown option %s: see pgentry --help", a);
            return PGE_CONFIG_USAGE;
        }
        /* A word. */
        if (!subcommand_seen) {
            int found = 0;
            for (size_t k = 0; k < sizeof subcommands / sizeof subcommands[0]; k++) {
                if (strcmp(a, subcommands[k].name) == 0) {
                    cfg->cmd = subcommands[k].cmd;
                    found = 1;
                    break;
                }
            }
            if (found) {
                subcommand_seen = 1;
                continue;
            }
            /* Not a subcommand: the application command starts here, verbatim. */
            cfg->command = &argv[i];
            cfg->ncommand = argc - i;
            break;
        }
        if (takes_positional(cfg->cmd) && !cfg->target) {
            /* The healthcheck URL may carry credentials like any other URL. */
            int secret = cfg->cmd == PGE_CMD_HEALTHCHECK;
            cfg->target = secret ? keep(cfg, a) : a;
            if (!cfg->target || (secret && remember_secret_arg(cfg, i, 0) < 0)) {
                set_err(err, errsize, "out of memory");
                return PGE_CONFIG_INVALID;
            }
            continue;
        }
        set_err(err, errsize, "%s: unexpected argument \"%s\": see pgentry --help",
                pge_config_cmd_name(cfg->cmd), a);
        return PGE_CONFIG_USAGE;
    }

    r = apply_environment(cfg, envp, seen, err, errsize);
    if (r != PGE_CONFIG_OK)
        return r;
    if (cfg->ncommand > 0 && cfg->cmd != PGE_CMD_RUN) {
        set_err(err, errsize, "%s takes no COMMAND; to run one: pgentry [OPTIONS] -- COMMAND",
                pge_config_cmd_name(cfg->cmd));
        return PGE_CONFIG_USAGE;
    }
    cfg->sql_only = sql_flag;
    return check(cfg, seen[find_option("exec", 4) - options], err, errsize);
}

void pge_config_hide_secrets(const struct pge_config *cfg, char **argv)
{
    for (size_t i = 0; i < cfg->nsecret_args; i++) {
        char *v = argv[cfg->secret_args[i].index] + cfg->secret_args[i].offset;
        size_t len = strlen(v);
        char *shown = malloc(len + 1);
        if (!shown) {
            /* Without room to redact, hide the whole value rather than risk showing it. */
            memset(v, '*', len);
            continue;
        }
        /* Cut to the original length: a prefix of the redacted text still hides the
         * password, and nothing may be written past the string's end. */
        pge_redact(v, shown, len + 1);
        if (strcmp(shown, v) != 0) {
            memset(v, '\0', len);
            memcpy(v, shown, strlen(shown));
        }
        free(shown);
    }
}

const char *pge_config_help(void)
{
    return "pgentry " PGENTRY_VERSION
           " - container entrypoint: wait for PostgreSQL, migrate, run the app\n"
           "\n"
           "Usage:\n"
           "  pgentry [OPTIONS] [--] COMMAND [ARG...]  wait, migrate, then run COMMAND as init\n"
           "  pgentry [OPTIONS]                        wait, migrate, exit 0 (init container)\n"
           "  pgentry wait [OPTIONS]                   wait for every dependency, exit 0\n"
           "  pgentry upgrade [head|+N|VERSION] [--sql] apply pending migrations\n"
           "  pgentry downgrade -N|VERSION|base [--sql] revert with the .down.sql files\n"
           "  pgentry current                          print the applied head version\n"
           "  pgentry history                          every migration and its state\n"
           "  pgentry status                           history, plus drift and notes\n"
           "  pgentry stamp VERSION|head|base          record versions without running SQL\n"
           "  pgentry revision -m MESSAGE              create the next .up.sql/.down.sql pair\n"
           "  pgentry verify                           exit 65 if an applied file changed\n"
           "  pgentry healthcheck [URL]                exit 0 if healthy, 1 if not\n"
           "  pgentry --version | --help\n"
           "\n"
           "A first word that is not a subcommand starts COMMAND; -- always ends the options.\n"
           "Every option can also be set from the environment variable shown (flags win).\n"
           "\n"
           "Database:\n"
           "  --database-url URL        DATABASE_URL     postgres:// URI or key=value conninfo\n"
           "                                             (default: libpq's PG* variables)\n"
           "  --wait-timeout DUR        PGENTRY_WAIT_TIMEOUT     give up waiting (60s; 0 = never)\n"
           "  --connect-timeout DUR     PGENTRY_CONNECT_TIMEOUT  one attempt (5s)\n"
           "  --backoff-initial DUR     PGENTRY_BACKOFF_INITIAL  first retry ceiling (10ms)\n"
           "  --backoff-max DUR         PGENTRY_BACKOFF_MAX      retry ceiling cap (40ms)\n"
           "  --wait-tcp HOST:PORT      PGENTRY_WAIT_TCP   also wait for a TCP listener (repeat)\n"
           "  --wait-http URL           PGENTRY_WAIT_HTTP  also wait for a 2xx (repeat)\n"
           "\n"
           "Migrations:\n"
           "  --migrations DIR          PGENTRY_MIGRATIONS       migration files (./migrations)\n"
           "  --table NAME              PGENTRY_TABLE            history table "
           "(pgentry_migrations)\n"
           "  --migrate-cmd CMD         PGENTRY_MIGRATE_CMD      run CMD via /bin/sh -c under "
           "the lock\n"
           "  --no-migrate              PGENTRY_NO_MIGRATE=1     skip migrations\n"
           "  --wait-migrations         PGENTRY_WAIT_MIGRATIONS=1  apply nothing; wait until "
           "applied\n"
           "  --lock-wait DUR           PGENTRY_LOCK_WAIT        max wait for the migration lock "
           "(0 = forever)\n"
           "  --lock-timeout DUR        PGENTRY_LOCK_TIMEOUT     SET lock_timeout per migration; "
           "retry on 55P03\n"
           "  --sql                     (upgrade/downgrade) print the SQL, change nothing\n"
           "  -m MESSAGE                (revision) the new migration's name\n"
           "\n"
           "Application:\n"
           "  --exec                    PGENTRY_EXEC=1   replace pgentry with COMMAND: no health\n"
           "                                             endpoint, no zombie reaping, no stop\n"
           "                                             timeout (COMMAND must do its own init);\n"
           "                                             without a COMMAND, PGENTRY_EXEC is\n"
           "                                             ignored and --exec is an error\n"
           "  --stop-timeout DUR        PGENTRY_STOP_TIMEOUT   then SIGKILL (10s)\n"
           "  --signal-group            PGENTRY_SIGNAL_GROUP=1 signal the child's process group\n"
           "  --rewrite SIG:SIG         PGENTRY_REWRITE  e.g. TERM:QUIT; TO may be 0 (repeat)\n"
           "  --user USER[:GROUP]       PGENTRY_USER     drop privileges before COMMAND\n"
           "\n"
           "Health:\n"
           "  --health-addr HOST:PORT   PGENTRY_HEALTH_ADDR  endpoint (0.0.0.0:8081; off "
           "disables)\n"
           "  --app-health-url URL      PGENTRY_APP_HEALTH_URL  /readyz also needs this 2xx\n"
           "\n"
           "Logging:\n"
           "  --log-format text|json    PGENTRY_LOG_FORMAT  (text)\n"
           "  --log-level LEVEL         PGENTRY_LOG_LEVEL   debug, info, warn, error (info)\n"
           "\n"
           "Durations: 250ms, 10s, 2m, 1h, 1m30s; a bare number is seconds.\n"
           "Exit codes: 0 ok; COMMAND's own code (128+N on signal N); 126/127 COMMAND not\n"
           "executable/not found; 64 usage; 65 migration failed; 69 dependency not ready in\n"
           "time; 70 internal; 75 migration lock not obtained; 77 PostgreSQL refused us for\n"
           "good (password, pg_hba, database missing); 78 configuration error.\n";
}
