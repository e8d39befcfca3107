/* The option table: one row per option of the contract (flag, variable, parser, field). */
#include "pgentry/config/options.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/common/parse.h"
#include "pgentry/common/redact.h"

static enum pge_config_result parse_str(struct pge_config *cfg, void *field, const char *value,
                                        const struct pge_options_src *src)
{
    (void)cfg;
    if (!src->from_env && value[0] == '\0') {
        pge_errbuf_set(src->err, src->errsize, "%s needs a value", src->name);
        return PGE_CONFIG_USAGE;
    }
    *(const char **)field = value[0] ? value : NULL;
    return PGE_CONFIG_OK;
}

static int valid_http(const char *s)
{
    return (strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]);
}

static int valid_tcp(const char *s)
{
    char host[256];
    int port;
    return pge_parse_hostport(s, host, sizeof host, &port) == 0 && host[0] != '\0';
}

static int valid_health(const char *s)
{
    char host[256];
    int port;
    return pge_parse_hostport(s, host, sizeof host, &port) == 0;
}

static enum pge_config_result parse_url(struct pge_config *cfg, void *field, const char *value,
                                        const struct pge_options_src *src)
{
    char shown[1024];
    (void)cfg;
    if (value[0] == '\0' && src->from_env) {
        *(const char **)field = NULL;
        return PGE_CONFIG_OK;
    }
    if (!valid_http(value)) {
        pge_errbuf_set(src->err, src->errsize, "%s: \"%s\" is not an http:// or https:// URL",
                       src->name, pge_redact(value, shown, sizeof shown));
        return PGE_CONFIG_INVALID;
    }
    *(const char **)field = value;
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_migrations(struct pge_config *cfg, void *field,
                                               const char *value, const struct pge_options_src *src)
{
    if (value[0] == '\0') {
        pge_errbuf_set(src->err, src->errsize, "%s needs a directory", src->name);
        return PGE_CONFIG_USAGE;
    }
    *(const char **)field = value;
    cfg->migrations_dir_set = 1;
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_bool(struct pge_config *cfg, void *field, const char *value,
                                         const struct pge_options_src *src)
{
    int b = 1;
    (void)cfg;
    if (value && pge_parse_bool(value, &b) < 0) {
        pge_errbuf_set(src->err, src->errsize, "%s=%s is not a boolean: use 1 or 0", src->name,
                       value);
        return PGE_CONFIG_USAGE;
    }
    *(int *)field = b;
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_duration(struct pge_config *cfg, void *field, const char *value,
                                             const struct pge_options_src *src)
{
    int64_t ms;
    (void)cfg;
    if (pge_parse_duration(value, &ms) < 0) {
        pge_errbuf_set(src->err, src->errsize,
                       "%s: bad duration \"%s\": use e.g. 250ms, 10s, 2m, 1h (a bare number is "
                       "seconds)",
                       src->name, value);
        return PGE_CONFIG_USAGE;
    }
    *(int64_t *)field = ms;
    return PGE_CONFIG_OK;
}

static void free_list(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
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

/* --wait-tcp (tcp) or --wait-http: one item per flag, comma-separated in a variable. */
static enum pge_config_result parse_list(struct pge_config *cfg, int tcp, const char *value,
                                         const struct pge_options_src *src)
{
    char ***list = tcp ? &cfg->wait_tcp : &cfg->wait_http;
    size_t *n = tcp ? &cfg->nwait_tcp : &cfg->nwait_http;
    if (src->first)
        free_list(list, n);
    const char *p = value;
    do {
        size_t len = src->from_env ? strcspn(p, ",") : strlen(p);
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
            pge_errbuf_set(src->err, src->errsize, "%s: value too long", src->name);
            return PGE_CONFIG_USAGE;
        }
        memcpy(item, p, l2);
        item[l2] = '\0';
        if (l2 > 0 || !src->from_env) {
            if (!(tcp ? valid_tcp(item) : valid_http(item))) {
                /* A mistyped URL may still carry credentials: never echo a password. A
                 * malformed address is a configuration error (78), like a bad URL. */
                char shown[sizeof item];
                pge_errbuf_set(src->err, src->errsize,
                               tcp ? "%s: \"%s\" is not HOST:PORT (IPv6: [addr]:port)"
                                   : "%s: \"%s\" is not an http:// or https:// URL",
                               src->name, pge_redact(item, shown, sizeof shown));
                return PGE_CONFIG_INVALID;
            }
            if (list_add(list, n, item, l2) < 0) {
                pge_errbuf_set(src->err, src->errsize, "out of memory");
                return PGE_CONFIG_INVALID;
            }
        }
        p += len;
        while (*p == ' ' || *p == '\t')
            p++;
    } while (src->from_env && *p++ == ',');
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_tcp_list(struct pge_config *cfg, void *field, const char *value,
                                             const struct pge_options_src *src)
{
    (void)field;
    return parse_list(cfg, 1, value, src);
}

static enum pge_config_result parse_http_list(struct pge_config *cfg, void *field,
                                              const char *value, const struct pge_options_src *src)
{
    (void)field;
    return parse_list(cfg, 0, value, src);
}

/* One FROM:TO item of --rewrite (item is writable and NUL-terminated). */
static enum pge_config_result add_rewrite(struct pge_config *cfg, char *item,
                                          const struct pge_options_src *src)
{
    int from, to;
    char *colon = strchr(item, ':');
    if (!colon) {
        pge_errbuf_set(src->err, src->errsize, "%s: \"%s\" is not FROM:TO (e.g. TERM:QUIT)",
                       src->name, item);
        return PGE_CONFIG_USAGE;
    }
    *colon = '\0';
    if (pge_parse_signal(item, 0, &from) < 0 || pge_parse_signal(colon + 1, 1, &to) < 0) {
        pge_errbuf_set(src->err, src->errsize,
                       "%s: unknown signal in \"%s:%s\": use names like TERM, QUIT, USR1, or "
                       "numbers (TO may be 0 to drop)",
                       src->name, item, colon + 1);
        return PGE_CONFIG_USAGE;
    }
    if (cfg->nrewrite == PGE_CONFIG_MAX_REWRITE) {
        pge_errbuf_set(src->err, src->errsize, "%s: more than %d rewrites", src->name,
                       PGE_CONFIG_MAX_REWRITE);
        return PGE_CONFIG_USAGE;
    }
    cfg->rewrite[cfg->nrewrite].from = from;
    cfg->rewrite[cfg->nrewrite].to = to;
    cfg->nrewrite++;
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_rewrite(struct pge_config *cfg, void *field, const char *value,
                                            const struct pge_options_src *src)
{
    (void)field;
    if (src->first)
        cfg->nrewrite = 0;
    const char *p = value;
    while (*p) {
        size_t len = strcspn(p, src->from_env ? ", " : "");
        char item[64];
        if (len == 0) {
            p++;
            continue;
        }
        if (len >= sizeof item) {
            pge_errbuf_set(src->err, src->errsize, "%s: \"%.*s\" is too long for FROM:TO",
                           src->name, (int)len, p);
            return PGE_CONFIG_USAGE;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        enum pge_config_result r = add_rewrite(cfg, item, src);
        if (r != PGE_CONFIG_OK)
            return r;
        p += len;
    }
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_level(struct pge_config *cfg, void *field, const char *value,
                                          const struct pge_options_src *src)
{
    (void)cfg;
    if (pge_log_parse_level(value, field) < 0) {
        pge_errbuf_set(src->err, src->errsize,
                       "%s: unknown level \"%s\": use debug, info, warn or error", src->name,
                       value);
        return PGE_CONFIG_USAGE;
    }
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_format(struct pge_config *cfg, void *field, const char *value,
                                           const struct pge_options_src *src)
{
    (void)cfg;
    if (pge_log_parse_format(value, field) < 0) {
        pge_errbuf_set(src->err, src->errsize, "%s: unknown format \"%s\": use text or json",
                       src->name, value);
        return PGE_CONFIG_USAGE;
    }
    return PGE_CONFIG_OK;
}

static enum pge_config_result parse_health(struct pge_config *cfg, void *field, const char *value,
                                           const struct pge_options_src *src)
{
    (void)cfg;
    if (strcmp(value, "off") == 0) {
        *(const char **)field = NULL;
        return PGE_CONFIG_OK;
    }
    if (!valid_health(value)) {
        pge_errbuf_set(src->err, src->errsize,
                       "%s: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8081, [::]:8081) or off",
                       src->name, value);
        return PGE_CONFIG_INVALID;
    }
    *(const char **)field = value;
    return PGE_CONFIG_OK;
}

#define OFF(field) offsetof(struct pge_config, field)
#define SECRET     PGE_OPTIONS_SECRET
#define COPY       PGE_OPTIONS_COPY
#define NO_VALUE   PGE_OPTIONS_NO_VALUE

const struct pge_option pge_options[] = {
    {"database-url", "DATABASE_URL", parse_str, OFF(database_url),
     SECRET | COPY | PGE_OPTIONS_DATABASE},
    {"migrations", "PGENTRY_MIGRATIONS", parse_migrations, OFF(migrations_dir), 0},
    {"table", "PGENTRY_TABLE", parse_str, OFF(table), 0},
    {"migrate-cmd", "PGENTRY_MIGRATE_CMD", parse_str, OFF(migrate_cmd), 0},
    {"create-database", "PGENTRY_CREATE_DATABASE", parse_bool, OFF(create_database), NO_VALUE},
    {"migrate-database-url", "PGENTRY_MIGRATE_DATABASE_URL", parse_str, OFF(migrate_database_url),
     SECRET | COPY | PGE_OPTIONS_DATABASE},
    {"password-file", "PGENTRY_PASSWORD_FILE", parse_str, OFF(password_file), 0},
    {"password-command", "PGENTRY_PASSWORD_COMMAND", parse_str, OFF(password_command), 0},
    {"no-migrate", "PGENTRY_NO_MIGRATE", parse_bool, OFF(no_migrate), NO_VALUE},
    {"wait-migrations", "PGENTRY_WAIT_MIGRATIONS", parse_bool, OFF(wait_migrations), NO_VALUE},
    {"allow-out-of-order", "PGENTRY_ALLOW_OUT_OF_ORDER", parse_bool, OFF(allow_out_of_order),
     NO_VALUE},
    {"wait-timeout", "PGENTRY_WAIT_TIMEOUT", parse_duration, OFF(wait_timeout_ms), 0},
    {"connect-timeout", "PGENTRY_CONNECT_TIMEOUT", parse_duration, OFF(connect_timeout_ms), 0},
    {"backoff-initial", "PGENTRY_BACKOFF_INITIAL", parse_duration, OFF(backoff_initial_ms), 0},
    {"backoff-max", "PGENTRY_BACKOFF_MAX", parse_duration, OFF(backoff_max_ms), 0},
    {"wait-tcp", "PGENTRY_WAIT_TCP", parse_tcp_list, OFF(wait_tcp), 0},
    /* List items are copied anyway. */
    {"wait-http", "PGENTRY_WAIT_HTTP", parse_http_list, OFF(wait_http), SECRET},
    {"health-addr", "PGENTRY_HEALTH_ADDR", parse_health, OFF(health_addr), PGE_OPTIONS_HEALTHCHECK},
    {"app-health-url", "PGENTRY_APP_HEALTH_URL", parse_url, OFF(app_health_url), SECRET | COPY},
    {"exec", "PGENTRY_EXEC", parse_bool, OFF(exec), NO_VALUE},
    {"stop-timeout", "PGENTRY_STOP_TIMEOUT", parse_duration, OFF(stop_timeout_ms), 0},
    {"stop-delay", "PGENTRY_STOP_DELAY", parse_duration, OFF(stop_delay_ms), 0},
    {"signal-group", "PGENTRY_SIGNAL_GROUP", parse_bool, OFF(signal_group), NO_VALUE},
    {"rewrite", "PGENTRY_REWRITE", parse_rewrite, OFF(rewrite), 0},
    {"user", "PGENTRY_USER", parse_str, OFF(user), 0},
    {"lock-wait", "PGENTRY_LOCK_WAIT", parse_duration, OFF(lock_wait_ms), 0},
    {"lock-timeout", "PGENTRY_LOCK_TIMEOUT", parse_duration, OFF(lock_timeout_ms), 0},
    {"statement-timeout", "PGENTRY_STATEMENT_TIMEOUT", parse_duration, OFF(statement_timeout_ms),
     0},
    {"log-format", "PGENTRY_LOG_FORMAT", parse_format, OFF(log_format), 0},
    {"log-level", "PGENTRY_LOG_LEVEL", parse_level, OFF(log_level), 0},
};

_Static_assert(sizeof pge_options / sizeof pge_options[0] == PGE_OPTIONS_COUNT,
               "PGE_OPTIONS_COUNT is the number of rows");

const struct pge_option *pge_options_find(const char *name, size_t len)
{
    for (size_t i = 0; i < PGE_OPTIONS_COUNT; i++)
        if (strlen(pge_options[i].flag) == len && strncmp(pge_options[i].flag, name, len) == 0)
            return &pge_options[i];
    return NULL;
}

/* The copies live in cfg->owned: argv itself may be rewritten to hide a password
 * (pge_config_hide_secrets). */
const char *pge_options_keep(struct pge_config *cfg, const char *value)
{
    if (list_add(&cfg->owned, &cfg->nowned, value, strlen(value)) < 0)
        return NULL;
    return cfg->owned[cfg->nowned - 1];
}

enum pge_config_result pge_options_apply(struct pge_config *cfg, const struct pge_option *o,
                                         const char *value, int from_env, int first, char *err,
                                         size_t errsize)
{
    char name[64];
    struct pge_options_src src = {name, from_env, first, err, errsize};
    if (from_env)
        snprintf(name, sizeof name, "%s", o->env);
    else
        snprintf(name, sizeof name, "--%s", o->flag);
    if ((o->flags & PGE_OPTIONS_COPY) && !from_env && value[0] &&
        !(value = pge_options_keep(cfg, value))) {
        pge_errbuf_set(err, errsize, "out of memory");
        return PGE_CONFIG_INVALID;
    }
    return o->parse(cfg, (char *)cfg + o->offset, value, &src);
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
