/* The database phases of a run: wait, migrate, and wait again for a connection lost midway. */
#include "run_int.h"

#include "pgentry/common/log.h"
#include "pgentry/migrate/migrate.h"
#include "pgentry/wait/wait.h"

static int start_wait(struct run *r, pge_wait_cb cb, int database_only);

static void on_migrated(void *arg, struct pge_outcome out)
{
    struct run *r = arg;
    pge_migrate_free(r->mig);
    r->mig = NULL;
    if (out.kind != PGE_OUT_OK || r->cfg->cmd != PGE_CMD_RUN) {
        pge_run_finish(r, out);
        return;
    }
    pge_run_start_command(r);
}

static enum pge_migrate_op migrate_op(const struct pge_config *cfg)
{
    switch (cfg->cmd) {
    case PGE_CMD_UPGRADE:
        return PGE_MIGRATE_UPGRADE;
    case PGE_CMD_DOWNGRADE:
        return PGE_MIGRATE_DOWNGRADE;
    case PGE_CMD_STAMP:
        return PGE_MIGRATE_STAMP;
    case PGE_CMD_CURRENT:
        return PGE_MIGRATE_CURRENT;
    case PGE_CMD_HISTORY:
        return PGE_MIGRATE_HISTORY;
    case PGE_CMD_STATUS:
        return PGE_MIGRATE_STATUS;
    case PGE_CMD_VERIFY:
        return PGE_MIGRATE_VERIFY;
    default:
        if (cfg->migrate_cmd)
            return PGE_MIGRATE_COMMAND;
        if (cfg->wait_migrations)
            return PGE_MIGRATE_WAIT;
        return PGE_MIGRATE_UPGRADE;
    }
}

/* The database is back (or not, in time): hand the engine its new connection. */
static void on_rewait(void *arg, enum pge_outcome_kind outcome, PGconn *conn)
{
    struct run *r = arg;
    pge_wait_free(r->wait);
    r->wait = NULL;
    if (outcome != PGE_OUT_OK) {
        if (outcome == PGE_OUT_NOT_READY)
            pge_error("database connection not regained within --wait-timeout: giving up; "
                      "nothing half-applied was recorded",
                      PGE_MS("wait_timeout", r->cfg->wait_timeout_ms));
        pge_migrate_free(r->mig);
        r->mig = NULL;
        pge_run_finish(r, PGE_OUTCOME(outcome, 0));
        return;
    }
    r->conn = conn;
    r->state.phase = PGE_PHASE_MIGRATING;
    pge_migrate_resume(r->mig, conn);
}

/* The engine lost its connection where the server rolled everything back: wait for the
 * database again as at the start (same settings, pacing and --wait-timeout, from now). */
static void on_conn_lost(void *arg)
{
    struct run *r = arg;
    PQfinish(r->conn);
    r->conn = NULL;
    r->state.phase = PGE_PHASE_WAITING;
    r->state.db.ready = 0;
    if (r->cfg->wait_timeout_ms > 0)
        pge_info("waiting for the database again", PGE_MS("wait_timeout", r->cfg->wait_timeout_ms));
    else
        pge_info("waiting for the database again", PGE_STR("wait_timeout", "forever"));
    if (start_wait(r, on_rewait, 1) < 0) {
        pge_error("could not wait for the database again (out of memory)");
        pge_migrate_free(r->mig);
        r->mig = NULL;
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
    }
}

static void start_migrations(struct run *r)
{
    const struct pge_config *cfg = r->cfg;
    if (!r->pre.migrate) {
        pge_run_start_command(r);
        return;
    }
    struct pge_migrate_opts mo = {
        .files = &r->pre.files,
        .table = cfg->table,
        .sql_only = cfg->sql_only,
        .allow_out_of_order = cfg->allow_out_of_order,
        .format_json = cfg->format_json,
        .exit_code = cfg->exit_code,
        .lock_wait_ms = cfg->lock_wait_ms,
        .lock_timeout_ms = cfg->lock_timeout_ms,
        .statement_timeout_ms = cfg->statement_timeout_ms,
        .wait_timeout_ms = cfg->wait_timeout_ms,
        .backoff_initial_ms = cfg->backoff_initial_ms,
        .backoff_max_ms = cfg->backoff_max_ms,
        .seed = r->seed,
        .migrate_cmd = cfg->migrate_cmd,
        .stop_timeout_ms = cfg->stop_timeout_ms,
        /* --migrate-cmd migrates through the direct connection too. */
        .database_url = cfg->migrate_database_url ? cfg->migrate_database_url : cfg->database_url,
        .envp = r->envp,
        .orig_mask = r->orig_mask,
        .account = r->pre.have_account ? &r->pre.account : NULL,
        .user = cfg->user,
        .state = &r->state,
        .progress_db = r->pre.have_db ? &r->pre.db : NULL,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .reconnect = on_conn_lost,
    };
    r->state.phase = PGE_PHASE_MIGRATING;
    r->mig = pge_migrate_new(r->loop, r->off, r->conn, &mo, on_migrated, r);
    if (!r->mig) {
        pge_error("out of memory starting migrations");
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    pge_migrate_start(r->mig, migrate_op(cfg), cfg->target);
}

static void on_wait(void *arg, enum pge_outcome_kind outcome, PGconn *conn)
{
    struct run *r = arg;
    pge_wait_free(r->wait);
    r->wait = NULL;
    r->conn = conn; /* NULL unless PGE_OUT_OK */
    if (outcome != PGE_OUT_OK || r->cfg->cmd == PGE_CMD_WAIT) {
        pge_run_finish(r, PGE_OUTCOME(outcome, 0));
        return;
    }
    start_migrations(r);
}

/* Start the waiter with cb; database_only: the database alone (database subcommands, and
 * regaining a lost connection). */
static int start_wait(struct run *r, pge_wait_cb cb, int database_only)
{
    const struct pge_config *cfg = r->cfg;
    struct pge_wait_opts wo = {
        .wait_timeout_ms = cfg->wait_timeout_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .backoff_initial_ms = cfg->backoff_initial_ms,
        .backoff_max_ms = cfg->backoff_max_ms,
        .seed = r->seed,
        .create_database = cfg->create_database,
    };
    r->wait = pge_wait_new(r->loop, r->off, r->curl, &r->state, &wo, cb, r);
    if (!r->wait)
        return -1;
    if (r->pre.have_db && pge_wait_add_postgres(r->wait, &r->pre.db) < 0)
        return -1;
    if (!database_only) {
        for (size_t i = 0; i < cfg->nwait_tcp; i++)
            if (pge_wait_add_tcp(r->wait, cfg->wait_tcp[i]) < 0)
                return -1;
        for (size_t i = 0; i < cfg->nwait_http; i++)
            if (pge_wait_add_http(r->wait, cfg->wait_http[i]) < 0)
                return -1;
    }
    pge_wait_start(r->wait);
    return 0;
}

/* Database subcommands wait for the database only. */
static int cfg_database_only(const struct pge_config *cfg)
{
    return cfg->cmd != PGE_CMD_RUN && cfg->cmd != PGE_CMD_WAIT;
}

/* Start the first phase: the wait, or straight to migrations for upgrade --sql offline. */
int pge_run_start_phases(struct run *r)
{
    if (r->pre.offline) {
        /* upgrade --sql without a database: print the plan from an empty history. */
        start_migrations(r);
        return 0;
    }
    if (start_wait(r, on_wait, cfg_database_only(r->cfg)) < 0) {
        pge_error("could not set up the dependency checks (out of memory)");
        return -1;
    }
    return 0;
}
