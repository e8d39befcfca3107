/* Reading the command line and the environment into a config: subcommands, COMMAND, checks. */
#include "pgentry/config/config.h"

#include <stdlib.h>
#include <string.h>

#include "pgentry/common/backoff.h"
#include "pgentry/common/errbuf.h"
#include "pgentry/common/redact.h"
#include "pgentry/config/options.h"
#include "pgentry/migrate/migplan.h"

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
        pge_errbuf_set(err, errsize, "%s needs a target: %s", pge_config_cmd_name(cfg->cmd),
                       cfg->cmd == PGE_CMD_STAMP ? "pgentry stamp VERSION|head|base"
                                                 : "pgentry downgrade -N|VERSION|base");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->cmd == PGE_CMD_REVISION && (!cfg->message || !cfg->message[0])) {
        pge_errbuf_set(err, errsize,
                       "revision needs a message: pgentry revision -m \"add rating\"");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->sql_only && cfg->cmd != PGE_CMD_UPGRADE && cfg->cmd != PGE_CMD_DOWNGRADE) {
        pge_errbuf_set(err, errsize, "--sql goes with upgrade or downgrade only");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->format_json && cfg->cmd != PGE_CMD_CURRENT && cfg->cmd != PGE_CMD_HISTORY &&
        cfg->cmd != PGE_CMD_STATUS) {
        pge_errbuf_set(err, errsize, "--format goes with current, history or status only");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->exit_code && cfg->cmd != PGE_CMD_STATUS) {
        pge_errbuf_set(err, errsize,
                       "--exit-code goes with status only: pgentry status "
                       "--exit-code");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->message && cfg->cmd != PGE_CMD_REVISION) {
        pge_errbuf_set(err, errsize, "-m goes with revision only");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->exec && cfg->ncommand == 0) {
        /* PGENTRY_EXEC=1 is set in an image for its application: `docker exec app pgentry
         * current`, the init-container mode and the healthcheck run without a COMMAND and
         * must not trip over it. Only a typed --exec without COMMAND is a mistake. */
        if (exec_flag) {
            pge_errbuf_set(err, errsize,
                           "--exec needs a COMMAND to replace pgentry with: pgentry --exec -- "
                           "uvicorn app:app");
            return PGE_CONFIG_USAGE;
        }
        cfg->exec = 0;
    }
    if (cfg->no_migrate && cfg->wait_migrations) {
        pge_errbuf_set(err, errsize,
                       "--no-migrate and --wait-migrations contradict each other: keep one");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->cmd == PGE_CMD_RUN && cfg->no_migrate && cfg->migrate_cmd) {
        /* Skipping the command silently would start the app on a schema nobody migrated. Only
         * a run uses either: `pgentry current` in the same image must not trip over them. */
        pge_errbuf_set(err, errsize,
                       "--no-migrate and --migrate-cmd contradict each other: drop one (also "
                       "PGENTRY_NO_MIGRATE, PGENTRY_MIGRATE_CMD)");
        return PGE_CONFIG_INVALID;
    }
    if (cfg->migrate_cmd && cfg->wait_migrations) {
        pge_errbuf_set(err, errsize,
                       "--migrate-cmd and --wait-migrations contradict each other: keep one");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->password_file && cfg->password_command) {
        pge_errbuf_set(err, errsize,
                       "--password-file and --password-command both give the password: keep one");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->connect_timeout_ms == 0) {
        pge_errbuf_set(err, errsize, "--connect-timeout must be more than 0");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->backoff_initial_ms == 0) {
        pge_errbuf_set(err, errsize, "--backoff-initial must be more than 0 (e.g. 10ms)");
        return PGE_CONFIG_USAGE;
    }
    if (cfg->backoff_max_ms < cfg->backoff_initial_ms) {
        pge_errbuf_set(err, errsize, "--backoff-max must be at least --backoff-initial");
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
    for (size_t i = 0; i < PGE_OPTIONS_COUNT; i++) {
        const char *v = pge_config_getenv(envp, pge_options[i].env);
        if (!v || seen[i])
            continue;
        if (cfg->cmd == PGE_CMD_HEALTHCHECK && !(pge_options[i].flags & PGE_OPTIONS_HEALTHCHECK))
            continue;
        /* An empty variable is "unset" for values; for booleans it is an explicit "off". */
        if (v[0] == '\0' && !(pge_options[i].flags & PGE_OPTIONS_NO_VALUE))
            continue;
        enum pge_config_result r = pge_options_apply(cfg, &pge_options[i], v, 1, 1, err, errsize);
        if (r != PGE_CONFIG_OK)
            return r;
    }
    static const char *const db_vars[] = {"DATABASE_URL", "PGHOST", "PGSERVICE",
                                          "PGENTRY_MIGRATE_DATABASE_URL"};
    for (size_t i = 0; i < sizeof db_vars / sizeof db_vars[0]; i++) {
        const char *v = pge_config_getenv(envp, db_vars[i]);
        if (v && v[0])
            cfg->db_configured = 1;
    }
    return PGE_CONFIG_OK;
}

/* The command line being read: which argument, what has been seen so far. */
struct reader {
    struct pge_config *cfg;
    int argc;
    char **argv;
    int i;
    unsigned char seen[PGE_OPTIONS_COUNT]; /* option i was set by a flag */
    int subcommand_seen;
    int sql_flag;
    enum { READ_ON, READ_ENV, READ_DONE } next; /* after this argument */
    char *err;
    size_t errsize;
};

/* --format text|json, --format=text|json: the output of current, history and status. */
static enum pge_config_result read_format(struct reader *rd, const char *a)
{
    const char *v = NULL;
    if (a[8] == '=')
        v = a + 9;
    else if (rd->i + 1 < rd->argc)
        v = rd->argv[++rd->i];
    if (v && (strcmp(v, "text") == 0 || strcmp(v, "json") == 0)) {
        rd->cfg->format_json = strcmp(v, "json") == 0;
        return PGE_CONFIG_OK;
    }
    pge_errbuf_set(rd->err, rd->errsize, "--format takes text or json, not \"%s\"", v ? v : "");
    return PGE_CONFIG_USAGE;
}

/* -m MESSAGE, --message MESSAGE, --message=MESSAGE. */
static enum pge_config_result read_message(struct reader *rd, const char *a)
{
    if (a[1] == '-' && a[9] == '=') {
        rd->cfg->message = a + 10;
    } else if (rd->i + 1 < rd->argc) {
        rd->cfg->message = rd->argv[++rd->i];
    } else {
        pge_errbuf_set(rd->err, rd->errsize, "%s needs a message", a);
        return PGE_CONFIG_USAGE;
    }
    return PGE_CONFIG_OK;
}

/* --name, --name=value or --name value: one row of the option table. */
static enum pge_config_result read_option(struct reader *rd, const char *a)
{
    struct pge_config *cfg = rd->cfg;
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct pge_option *o = pge_options_find(name, len);
    const char *value;
    if (!o) {
        pge_errbuf_set(rd->err, rd->errsize, "unknown option --%.*s: see pgentry --help", (int)len,
                       name);
        return PGE_CONFIG_USAGE;
    }
    if (o->flags & PGE_OPTIONS_NO_VALUE) {
        if (eq) {
            pge_errbuf_set(rd->err, rd->errsize, "--%s takes no value", o->flag);
            return PGE_CONFIG_USAGE;
        }
        value = NULL;
    } else if (eq) {
        value = eq + 1;
    } else if (rd->i + 1 < rd->argc) {
        value = rd->argv[++rd->i];
    } else {
        pge_errbuf_set(rd->err, rd->errsize, "--%s needs a value: see pgentry --help", o->flag);
        return PGE_CONFIG_USAGE;
    }
    size_t idx = (size_t)(o - pge_options);
    enum pge_config_result r =
        pge_options_apply(cfg, o, value, 0, !rd->seen[idx], rd->err, rd->errsize);
    if (r != PGE_CONFIG_OK)
        return r;
    rd->seen[idx] = 1;
    if ((o->flags & PGE_OPTIONS_SECRET) &&
        remember_secret_arg(cfg, rd->i, eq ? (size_t)(eq + 1 - a) : 0) < 0) {
        pge_errbuf_set(rd->err, rd->errsize, "out of memory");
        return PGE_CONFIG_INVALID;
    }
    if ((o->flags & PGE_OPTIONS_DATABASE) && *(const char **)((char *)cfg + o->offset))
        cfg->db_configured = 1;
    return PGE_CONFIG_OK;
}

/* A word that is not an option: the subcommand, its target, or the start of COMMAND. */
static enum pge_config_result read_word(struct reader *rd, const char *a)
{
    struct pge_config *cfg = rd->cfg;
    if (!rd->subcommand_seen) {
        for (size_t k = 0; k < sizeof subcommands / sizeof subcommands[0]; k++) {
            if (strcmp(a, subcommands[k].name) == 0) {
                cfg->cmd = subcommands[k].cmd;
                rd->subcommand_seen = 1;
                return PGE_CONFIG_OK;
            }
        }
        /* Not a subcommand: the application command starts here, verbatim. */
        cfg->command = &rd->argv[rd->i];
        cfg->ncommand = rd->argc - rd->i;
        rd->next = READ_ENV;
        return PGE_CONFIG_OK;
    }
    if (takes_positional(cfg->cmd) && !cfg->target) {
        /* The healthcheck URL may carry credentials like any other URL. */
        int secret = cfg->cmd == PGE_CMD_HEALTHCHECK;
        cfg->target = secret ? pge_options_keep(cfg, a) : a;
        if (!cfg->target || (secret && remember_secret_arg(cfg, rd->i, 0) < 0)) {
            pge_errbuf_set(rd->err, rd->errsize, "out of memory");
            return PGE_CONFIG_INVALID;
        }
        return PGE_CONFIG_OK;
    }
    pge_errbuf_set(rd->err, rd->errsize, "%s: unexpected argument \"%s\": see pgentry --help",
                   pge_config_cmd_name(cfg->cmd), a);
    return PGE_CONFIG_USAGE;
}

/* argv[rd->i]; sets rd->next when the options end. */
static enum pge_config_result read_arg(struct reader *rd)
{
    struct pge_config *cfg = rd->cfg;
    const char *a = rd->argv[rd->i];
    if (strcmp(a, "--") == 0) {
        if (rd->i + 1 < rd->argc) {
            cfg->command = &rd->argv[rd->i + 1];
            cfg->ncommand = rd->argc - rd->i - 1;
        }
        rd->next = READ_ENV;
        return PGE_CONFIG_OK;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        cfg->cmd = PGE_CMD_HELP;
        rd->next = READ_DONE;
        return PGE_CONFIG_OK;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        cfg->cmd = PGE_CMD_VERSION;
        rd->next = READ_DONE;
        return PGE_CONFIG_OK;
    }
    if (strcmp(a, "--sql") == 0) {
        rd->sql_flag = 1;
        return PGE_CONFIG_OK;
    }
    if (strcmp(a, "--exit-code") == 0) {
        cfg->exit_code = 1;
        return PGE_CONFIG_OK;
    }
    if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0)
        return read_format(rd, a);
    if (strcmp(a, "-m") == 0 || strcmp(a, "--message") == 0 || strncmp(a, "--message=", 10) == 0)
        return read_message(rd, a);
    if (strncmp(a, "--", 2) == 0)
        return read_option(rd, a);
    if (a[0] == '-' && a[1] != '\0' &&
        !(cfg->cmd == PGE_CMD_DOWNGRADE && !cfg->target && is_negative_number(a))) {
        pge_errbuf_set(rd->err, rd->errsize, "unknown option %s: see pgentry --help", a);
        return PGE_CONFIG_USAGE;
    }
    return read_word(rd, a);
}

enum pge_config_result pge_config_parse(struct pge_config *cfg, int argc, char **argv, char **envp,
                                        char *err, size_t errsize)
{
    struct reader rd = {.cfg = cfg, .argc = argc, .argv = argv, .err = err, .errsize = errsize};
    enum pge_config_result r;

    defaults(cfg);
    if (err && errsize)
        err[0] = '\0';
    /* Flags first, so that the command is known before the environment is read. */
    for (rd.i = 1; rd.i < argc && rd.next == READ_ON; rd.i++) {
        r = read_arg(&rd);
        if (r != PGE_CONFIG_OK)
            return r;
    }
    if (rd.next == READ_DONE)
        return PGE_CONFIG_OK;
    r = apply_environment(cfg, envp, rd.seen, err, errsize);
    if (r != PGE_CONFIG_OK)
        return r;
    if (cfg->ncommand > 0 && cfg->cmd != PGE_CMD_RUN) {
        pge_errbuf_set(err, errsize,
                       "%s takes no COMMAND; to run one: pgentry [OPTIONS] -- COMMAND",
                       pge_config_cmd_name(cfg->cmd));
        return PGE_CONFIG_USAGE;
    }
    cfg->sql_only = rd.sql_flag;
    return check(cfg, rd.seen[pge_options_find("exec", 4) - pge_options], err, errsize);
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
