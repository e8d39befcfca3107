/* Every option of the contract, from flags and environment (flags win). Pure. */
#ifndef PGENTRY_CONFIG_CONFIG_H
#define PGENTRY_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "pgentry/common/log.h"

#define PGE_CONFIG_MAX_REWRITE 64

enum pge_cmd {
    PGE_CMD_RUN = 0, /* wait → migrate → run COMMAND (or exit 0 without one) */
    PGE_CMD_WAIT,
    PGE_CMD_UPGRADE,
    PGE_CMD_DOWNGRADE,
    PGE_CMD_CURRENT,
    PGE_CMD_HISTORY,
    PGE_CMD_STATUS,
    PGE_CMD_STAMP,
    PGE_CMD_REVISION,
    PGE_CMD_VERIFY,
    PGE_CMD_HEALTHCHECK,
    PGE_CMD_VERSION,
    PGE_CMD_HELP,
};

enum pge_config_result {
    PGE_CONFIG_OK = 0,
    PGE_CONFIG_USAGE,   /* unknown option, bad duration, bad signal name… (exit 64) */
    PGE_CONFIG_INVALID, /* well-formed but unusable (exit 78) */
};

struct pge_rewrite {
    int from;
    int to; /* 0: drop the signal */
};

/* Where in argv a value that may carry a password starts: argv[index] + offset. */
struct pge_config_argref {
    int index;
    size_t offset;
};

/* Plain data owned by the caller; release with pge_config_free(). String fields point into
 * argv, envp or memory owned by the struct; they live as long as those do. Values that may
 * carry a password (--database-url, --wait-http, --app-health-url, the healthcheck URL) are
 * never pointers into argv: they are copies, so pge_config_hide_secrets() may rewrite argv. */
struct pge_config {
    enum pge_cmd cmd;
    char **command; /* COMMAND and its arguments, NULL-terminated (points into argv) */
    int ncommand;
    const char *target;  /* upgrade/downgrade/stamp target, healthcheck URL */
    int sql_only;        /* --sql: print the SQL, change nothing */
    int format_json;     /* --format json (current, history, status) */
    int exit_code;       /* --exit-code (status): 1 pending, 65 drift or out-of-order */
    const char *message; /* revision -m */

    const char *database_url;         /* NULL: libpq's PG* variables */
    int db_configured;                /* --database-url, DATABASE_URL, PGHOST or PGSERVICE */
    const char *migrate_database_url; /* waiting, lock, migrations; NULL: database_url */
    const char *migrations_dir;
    int migrations_dir_set; /* given explicitly (a missing directory is then an error) */
    const char *table;
    const char *migrate_cmd;
    const char *password_file;    /* read before every connection attempt, or NULL */
    const char *password_command; /* run before every connection attempt, or NULL */
    int create_database;          /* on 3D000, CREATE DATABASE through a maintenance database */
    int no_migrate;
    int wait_migrations;
    int allow_out_of_order;  /* apply an unapplied file older than the head, with a warning */
    int64_t wait_timeout_ms; /* 0: never */
    int64_t connect_timeout_ms;
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    char **wait_tcp; /* owned array of owned strings */
    size_t nwait_tcp;
    char **wait_http;
    size_t nwait_http;
    const char *health_addr; /* NULL when "off" */
    const char *app_health_url;
    int exec;
    int64_t stop_timeout_ms;
    int64_t stop_delay_ms; /* after TERM/INT: readiness 503 at once, COMMAND signalled later */
    int signal_group;
    struct pge_rewrite rewrite[PGE_CONFIG_MAX_REWRITE];
    size_t nrewrite;
    const char *user;
    int64_t lock_wait_ms;         /* 0: forever */
    int64_t lock_timeout_ms;      /* 0: off */
    int64_t statement_timeout_ms; /* per migration; 0: no limit (overrides the role's) */
    enum pge_log_format log_format;
    enum pge_log_level log_level;

    char **owned; /* the copies the fields above point to instead of argv */
    size_t nowned;
    struct pge_config_argref *secret_args; /* argv values for pge_config_hide_secrets() */
    size_t nsecret_args;
};

/* Parse argv (argv[0] is the program) and envp (NULL-terminated "K=V" strings) into cfg.
 * Flags are read first and win; a variable is read only for an option no flag set, and a
 * healthcheck reads only PGENTRY_HEALTH_ADDR. On failure returns USAGE or INVALID with a
 * one-line message (naming the problem and the fix) in err; cfg->cmd then says which
 * subcommand failed once its word was read (else PGE_CMD_RUN). cfg must be released with
 * pge_config_free() in every case. Pure: reads nothing but its arguments. */
enum pge_config_result pge_config_parse(struct pge_config *cfg, int argc, char **argv, char **envp,
                                        char *err, size_t errsize);

/* Rewrite, in place, each argv value of cfg->secret_args that pge_redact() changes (a
 * password in a URL or conninfo) to its redacted form, cut to the value's own length and
 * padded with NULs: nothing is written past a string's end, and no process title (ps, /proc
 * /PID/cmdline) shows the password. argv must be the array cfg was parsed from, writable;
 * cfg keeps working (its fields point to copies). Call right after a successful parse. */
void pge_config_hide_secrets(const struct pge_config *cfg, char **argv);

/* Free what the config owns. NULL-safe; the struct may be parsed again afterwards. */
void pge_config_free(struct pge_config *cfg);

/* Value of NAME in envp, or NULL. */
const char *pge_config_getenv(char **envp, const char *name);

/* The subcommand's name ("wait"), for messages. */
const char *pge_config_cmd_name(enum pge_cmd cmd);

/* Whether a subcommand needs the database. */
int pge_config_cmd_needs_db(enum pge_cmd cmd);

/* The --help text. Static storage, filled on the first call (not thread-safe). */
const char *pge_config_help(void);

#endif
