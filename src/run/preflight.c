/* Everything a run checks before waiting: the database settings, migration files and --user. */
#include "pgentry/run/preflight.h"

#include <stdlib.h>

#include "pgentry/common/log.h"
#include "pgentry/common/redact.h"
#include "pgentry/migrate/histsql.h"

static void add_secret(const char *password, void *arg)
{
    (void)arg;
    pge_log_add_secret(password);
}

/* Read the migration files before waiting: a broken file fails in a millisecond, not after the
 * database came up. Decides whether this run has a migration phase at all. */
static int scan_migrations(struct pge_preflight *r, const struct pge_config *cfg,
                           struct pge_outcome *out)
{
    char err[1024];
    int needed; /* the files matter for this run */

    if (cfg->cmd == PGE_CMD_WAIT)
        return 0;
    if (cfg->cmd == PGE_CMD_RUN) {
        if (cfg->no_migrate)
            return 0;
        if (!cfg->db_configured && (cfg->migrate_cmd || cfg->wait_migrations)) {
            /* Both need the database (the lock, the history table): starting the app without
             * them would be the silent skip the contract forbids. */
            const char *opt = cfg->migrate_cmd ? "--migrate-cmd" : "--wait-migrations";
            pge_error(cfg->migrate_cmd
                          ? "--migrate-cmd needs a database: set DATABASE_URL (or --database-url, "
                            "PGHOST, PGSERVICE), or drop --migrate-cmd (PGENTRY_MIGRATE_CMD)"
                          : "--wait-migrations needs a database: set DATABASE_URL (or "
                            "--database-url, PGHOST, PGSERVICE), or drop --wait-migrations "
                            "(PGENTRY_WAIT_MIGRATIONS)",
                      PGE_STR("option", opt));
            *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
            return -1;
        }
        r->migrate = cfg->db_configured;
        /* --migrate-cmd brings its own files. */
        if (cfg->migrate_cmd)
            return 0;
        needed = cfg->db_configured || cfg->migrations_dir_set;
    } else {
        r->migrate = 1;
        needed = cfg->cmd != PGE_CMD_CURRENT;
    }
    enum pge_migfile_result st = pge_migfile_scan(cfg->migrations_dir, &r->files, err, sizeof err);
    if (st == PGE_MIGFILE_NO_DIR && !needed)
        return 0;
    if (st == PGE_MIGFILE_NO_DIR && cfg->cmd == PGE_CMD_RUN) {
        pge_error("migrations directory not found: create it, point --migrations (or "
                  "PGENTRY_MIGRATIONS) at it, or pass --no-migrate",
                  PGE_STR("dir", cfg->migrations_dir));
        *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        return -1;
    }
    if (st != PGE_MIGFILE_OK) {
        pge_error(err);
        *out = PGE_OUTCOME(pge_migfile_outcome(st), 0);
        return -1;
    }
    for (size_t i = 0; i < r->files.nignored; i++)
        pge_debug("not a migration file: ignored", PGE_STR("dir", cfg->migrations_dir),
                  PGE_STR("file", r->files.ignored[i]));
    if (cfg->cmd == PGE_CMD_RUN && !cfg->db_configured && r->files.count > 0) {
        pge_error("migration files are present but no database is configured: set "
                  "DATABASE_URL (or --database-url, PGHOST, PGSERVICE), or pass --no-migrate",
                  PGE_STR("dir", cfg->migrations_dir), PGE_INT("files", (long long)r->files.count));
        *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        return -1;
    }
    pge_debug("migration files", PGE_STR("dir", cfg->migrations_dir),
              PGE_INT("count", (long long)r->files.count));
    return 0;
}

/* --user: an unknown account fails before any waiting or migrating, and the lookup (blocking
 * file or NSS I/O) happens here, not on the loop. COMMAND and --migrate-cmd both run as it. */
static int resolve_user(struct pge_preflight *r, const struct pge_config *cfg,
                        struct pge_outcome *out)
{
    char err[512];
    if (!cfg->user || cfg->cmd != PGE_CMD_RUN || (cfg->ncommand == 0 && !cfg->migrate_cmd))
        return 0;
    if (pge_privdrop_resolve(cfg->user, &r->account, err, sizeof err) < 0) {
        pge_error(err);
        *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        return -1;
    }
    r->have_account = 1;
    pge_info(cfg->migrate_cmd ? "command and migrate command will run as" : "command will run as",
             PGE_STR("user", cfg->user), PGE_INT("uid", (long long)r->account.uid),
             PGE_INT("gid", (long long)r->account.gid));
    return 0;
}

int pge_preflight_check(struct pge_preflight *r, const struct pge_config *cfg, char **envp,
                        struct pge_outcome *out)
{
    char err[1024];

    r->offline = cfg->cmd == PGE_CMD_UPGRADE && cfg->sql_only && !cfg->db_configured;
    if (pge_config_cmd_needs_db(cfg->cmd) && !cfg->db_configured && !r->offline) {
        pge_error("no database configured: set DATABASE_URL (or --database-url, PGHOST, "
                  "PGSERVICE)",
                  PGE_STR("command", pge_config_cmd_name(cfg->cmd)));
        *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
        return -1;
    }
    if (cfg->db_configured) {
        /* --migrate-database-url: pgentry's own connections go there; COMMAND keeps
         * DATABASE_URL, whose password is still never printed. */
        const char *url = cfg->migrate_database_url;
        if (url)
            pge_redact_each_password(cfg->database_url ? cfg->database_url : "", add_secret, NULL);
        else
            url = cfg->database_url;
        if (pge_conninfo_parse(&r->db, url, envp, err, sizeof err) < 0) {
            pge_error(err);
            *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
            return -1;
        }
        r->have_db = 1;
        if (pge_conninfo_set_password_source(&r->db, cfg->password_file, cfg->password_command) <
            0) {
            pge_error("out of memory");
            *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
            return -1;
        }
    }
    if (scan_migrations(r, cfg, out) < 0)
        return -1;
    if (r->migrate && r->db.target != PGE_CONNINFO_READ_WRITE) {
        /* Migrations write: whatever the URL accepts for waiting, they need a primary. */
        pge_info("target_session_attrs applies to waiting only: migrations need a writable "
                 "primary, waiting for one",
                 PGE_STR("target_session_attrs", pge_conninfo_target_name(r->db.target)));
        r->db.target = PGE_CONNINFO_READ_WRITE;
    }
    if (r->migrate) {
        /* The history table's name is only used once the database answers: check it now. */
        char *q = pge_histsql_quote_table(cfg->table, NULL);
        if (!q) {
            pge_error("--table must be NAME or SCHEMA.NAME, each at most 63 bytes",
                      PGE_STR("table", cfg->table));
            *out = PGE_OUTCOME(PGE_OUT_CONFIG, 0);
            return -1;
        }
        free(q);
    }
    return resolve_user(r, cfg, out);
}

void pge_preflight_free(struct pge_preflight *p)
{
    pge_migfile_set_free(&p->files);
    pge_conninfo_free(&p->db);
    pge_privdrop_free(&p->account);
}
