/* One pgentry run on the event loop: wait → migrate → supervise, with signals throughout. */
#include "pgentry/run/run.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgentry/common/clear.h"
#include "pgentry/common/log.h"
#include "pgentry/common/logsink.h"
#include "pgentry/common/parse.h"
#include "pgentry/common/runstate.h"
#include "pgentry/common/workqueue.h"
#include "pgentry/health/apphealth.h"
#include "pgentry/health/health.h"
#include "pgentry/migrate/migrate.h"
#include "pgentry/net/curlloop.h"
#include "pgentry/run/preflight.h"
#include "pgentry/run/signals.h"
#include "pgentry/run/worker.h"
#include "pgentry/supervise/memtrim.h"
#include "pgentry/supervise/supervisor.h"
#include "pgentry/wait/wait.h"

struct run {
    struct ev_loop *loop;
    const struct pge_config *cfg;
    char **envp;
    const sigset_t *orig_mask;
    struct pge_runstate state;
    struct pge_workqueue *off;
    struct pge_curlloop *curl;
    struct pge_preflight pre; /* what was checked and read before waiting */
    struct pge_wait *wait;
    struct pge_migrate *mig;
    uint64_t seed;
    struct pge_supervisor *super;
    struct pge_health *health;
    struct pge_apphealth *apphealth;
    struct pge_worker *worker; /* the database phases' process (either side of it) */
    int is_worker;             /* this process is that worker */
    int curl_ready;            /* curl_global_init() was called */
    PGconn *conn;
    struct pge_signals sigs;
    struct pge_outcome outcome;
    int finished;
    int stop_signo; /* a stop signal passed on to the worker */
    int exec_after; /* --exec: replace the process once the loop has ended */
};

/* How long the worker waits for room to report its outcome to a supervisor that stopped
 * reading; the supervisor's death ends the worker anyway (SIGTERM). */
#define REPORT_TIMEOUT_MS 5000

static void finish(struct run *r, struct pge_outcome out)
{
    if (r->finished)
        return;
    r->finished = 1;
    r->outcome = out;
    if (out.kind != PGE_OUT_OK && out.kind != PGE_OUT_CHILD_EXIT &&
        out.kind != PGE_OUT_CHILD_SIGNAL)
        r->state.phase = PGE_PHASE_FAILED;
    /* The supervisor starts COMMAND on this report: send it before any teardown. */
    if (r->is_worker && pge_worker_report(r->worker, out, REPORT_TIMEOUT_MS) < 0)
        pge_warn("database worker: the supervisor did not take the report");
    ev_break(r->loop, EVBREAK_ALL);
}

static void on_super(void *arg, struct pge_outcome out)
{
    finish(arg, out);
}

/* COMMAND has exec'd: from here on pgentry only supervises. Give back what the start-up and
 * the database work left behind, only now: trimming while COMMAND's process was still being
 * set up cost it milliseconds (madvise's TLB shootdowns reach the other core). */
static void on_running(void *arg)
{
    struct run *r = arg;
    if (r->worker) {
        /* Only the worker read the migrations. Their checksums initialised OpenSSL here too (its
         * providers, names and error strings stay allocated for good): a supervisor that will
         * never probe over HTTP(S) has no further use for it. */
        pge_migfile_set_free(&r->pre.files);
        if (!r->curl_ready)
            OPENSSL_cleanup();
    }
    long kb = pge_memtrim_release();
    pge_debug("idle supervisor released library pages and heap slack", PGE_INT("kb", kb));
}

static void start_command(struct run *r)
{
    const struct pge_config *cfg = r->cfg;
    struct pge_outcome out;
    char err[512];

    if (r->is_worker) {
        /* The worker's part ends here; the supervisor runs COMMAND. */
        finish(r, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (r->conn) {
        /* The idle supervisor holds no database connection. */
        PQfinish(r->conn);
        r->conn = NULL;
    }
    if (cfg->cmd != PGE_CMD_RUN || cfg->ncommand == 0) {
        finish(r, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (cfg->exec) {
        r->exec_after = 1;
        finish(r, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    struct pge_supervisor_opts so = {
        .argv = cfg->command,
        .user = cfg->user,
        .account = r->pre.have_account ? &r->pre.account : NULL,
        .signal_group = cfg->signal_group,
        .rewrite = cfg->rewrite,
        .nrewrite = cfg->nrewrite,
        .stop_timeout_ms = cfg->stop_timeout_ms,
        .stop_delay_ms = cfg->stop_delay_ms,
        .state = &r->state,
        .orig_mask = r->orig_mask,
        .on_running = on_running,
    };
    r->state.phase = PGE_PHASE_STARTING;
    r->super = pge_supervisor_new(r->loop, &so, on_super, r);
    if (!r->super) {
        pge_error("out of memory starting the command");
        finish(r, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    if (pge_supervisor_start(r->super, &out, err, sizeof err) < 0) {
        pge_error(err);
        finish(r, out);
        return;
    }
}

static void on_migrated(void *arg, struct pge_outcome out)
{
    struct run *r = arg;
    pge_migrate_free(r->mig);
    r->mig = NULL;
    if (out.kind != PGE_OUT_OK || r->cfg->cmd != PGE_CMD_RUN) {
        finish(r, out);
        return;
    }
    start_command(r);
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

static int start_wait(struct run *r, pge_wait_cb cb, int database_only);

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
        finish(r, PGE_OUTCOME(outcome, 0));
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
        finish(r, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
    }
}

static void start_migrations(struct run *r)
{
    const struct pge_config *cfg = r->cfg;
    if (!r->pre.migrate) {
        start_command(r);
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
        finish(r, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
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
        finish(r, PGE_OUTCOME(outcome, 0));
        return;
    }
    start_migrations(r);
}

/* Every signal of the run: the supervisor's while it supervises; before that a stop signal
 * cancels the wait or the migrations. */
static void on_signal(void *arg, int signo)
{
    struct run *r = arg;
    int stop = pge_supervisor_is_stop_signal(signo);
    if (r->finished) {
        /* The run has its outcome (the app's exit code): a late signal must not change it. */
        pge_debug("signal ignored: shutting down", PGE_STR("signal", pge_parse_signal_name(signo)));
        return;
    }
    if (stop) {
        r->state.stopping = 1;
        if (r->state.phase == PGE_PHASE_RUNNING || r->state.phase == PGE_PHASE_STARTING)
            r->state.phase = PGE_PHASE_STOPPING;
    }
    if (r->super && pge_supervisor_active(r->super)) {
        pge_supervisor_signal(r->super, signo);
        return;
    }
    if (r->worker && !r->is_worker) {
        /* The worker stops its phases as this process would (cancel, roll back, unlock). */
        if (stop) {
            r->stop_signo = signo;
            pge_worker_signal(r->worker, signo);
        } else
            pge_debug("signal ignored: no command running",
                      PGE_STR("signal", pge_parse_signal_name(signo)));
        return;
    }
    if (stop && r->mig && r->wait) {
        /* Waiting for the database again after a lost connection: the engine holds nothing. */
        pge_info("stop signal while waiting for the database again: exiting",
                 PGE_STR("signal", pge_parse_signal_name(signo)));
        pge_wait_free(r->wait);
        r->wait = NULL;
        pge_migrate_stop(r->mig, signo);
        return;
    }
    if (stop && r->mig) {
        pge_info("stop signal while migrating: cancelling, rolling back, releasing the lock",
                 PGE_STR("signal", pge_parse_signal_name(signo)));
        pge_migrate_stop(r->mig, signo);
        return;
    }
    if (stop) {
        pge_info("stop signal before the command started: exiting",
                 PGE_STR("signal", pge_parse_signal_name(signo)),
                 PGE_STR("phase", pge_runstate_phase_name(r->state.phase)));
        finish(r, PGE_OUTCOME(PGE_OUT_STOPPED, signo));
        return;
    }
    pge_debug("signal ignored: no command running",
              PGE_STR("signal", pge_parse_signal_name(signo)));
}

static uint64_t seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
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

/* The health endpoint answers from the first moment: while waiting and migrating too. Only
 * the run command serves it; --exec closes it before replacing the process. */
static int start_health(struct run *r, struct pge_outcome *out)
{
    const struct pge_config *cfg = r->cfg;
    char err[512];
    if (cfg->cmd != PGE_CMD_RUN || !cfg->health_addr)
        return 0;
    r->health = pge_health_new(r->loop, cfg->health_addr, &r->state, err, sizeof err);
    if (!r->health) {
        int e = errno;
        pge_error(err,
                  PGE_STR("fix", e == EADDRINUSE ? "another process listens there: choose another "
                                                   "--health-addr, or off"
                                                 : "use a numeric address such as 0.0.0.0:8081 or "
                                                   "[::]:8081, or off"));
        *out = PGE_OUTCOME(e == EADDRINUSE || e == EINVAL || e == EACCES || e == EADDRNOTAVAIL
                               ? PGE_OUT_CONFIG
                               : PGE_OUT_INTERNAL,
                           0);
        return -1;
    }
    return 0;
}

/* --app-health-url: probed by the supervisor only. */
static int wants_apphealth(const struct pge_config *cfg)
{
    return cfg->cmd == PGE_CMD_RUN && cfg->health_addr && cfg->app_health_url &&
           cfg->ncommand > 0 && !cfg->exec;
}

/* The work queue for the phases, and libcurl with the loop's curl driver only where something
 * speaks HTTP: the waits (--wait-http) or the application's health probe (the supervisor's).
 * libcurl initialises OpenSSL as a whole up front (about 3 ms before the first connection
 * attempt could start); libpq initialises what it needs itself, while the server forks. */
static int start_helpers(struct run *r, struct pge_outcome *out)
{
    int phases = !r->worker || r->is_worker;
    int http = (phases && r->cfg->nwait_http > 0) || (!r->is_worker && wants_apphealth(r->cfg));
    if (phases && !(r->off = pge_workqueue_new(r->loop))) {
        pge_error("out of memory");
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    if (!http)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pge_error("could not initialise libcurl");
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    r->curl_ready = 1;
    if (!(r->curl = pge_curlloop_new(r->loop))) {
        pge_error("out of memory");
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    if (!r->is_worker && wants_apphealth(r->cfg)) {
        r->apphealth = pge_apphealth_new(r->curl, r->loop, r->cfg->app_health_url, &r->state,
                                         PGE_APPHEALTH_INTERVAL_MS);
        if (!r->apphealth) {
            pge_error("out of memory");
            *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
            return -1;
        }
    }
    return 0;
}

static void cleanup(struct run *r)
{
    PGE_CLEAR(r->apphealth, pge_apphealth_free);
    PGE_CLEAR(r->health, pge_health_free);
    PGE_CLEAR(r->wait, pge_wait_free);
    PGE_CLEAR(r->mig, pge_migrate_free);
    PGE_CLEAR(r->super, pge_supervisor_free);
    if (r->conn)
        PQfinish(r->conn);
    r->conn = NULL;
    PGE_CLEAR(r->curl, pge_curlloop_free);
    PGE_CLEAR(r->off, pge_workqueue_free);
    PGE_CLEAR(r->worker, pge_worker_free);
    if (r->curl_ready)
        curl_global_cleanup();
    r->curl_ready = 0;
    pge_signals_unwatch(&r->sigs);
    pge_logsink_detach();
}

/* --exec, once the loop has ended: close everything and replace the process with COMMAND.
 * Returns only on failure. */
static struct pge_outcome exec_command(struct run *r)
{
    const struct pge_config *cfg = r->cfg;
    struct pge_supervisor_opts so = {
        .argv = cfg->command,
        .user = cfg->user,
        .account = r->pre.have_account ? &r->pre.account : NULL,
        .orig_mask = r->orig_mask,
    };
    char err[512];
    cleanup(r);
    if (getpid() == 1)
        pge_warn("--exec as PID 1: the command becomes init and must reap zombies and "
                 "handle signals itself");
    pge_info("replacing pgentry with the command (--exec)", PGE_STR("command", cfg->command[0]));
    pge_logsink_flush(PGE_LOGSINK_EXIT_FLUSH_MS);
    struct pge_outcome out = pge_supervisor_exec(&so, err, sizeof err);
    pge_error(err);
    return out;
}

/* Database subcommands wait for the database only. */
static int cfg_database_only(const struct pge_config *cfg)
{
    return cfg->cmd != PGE_CMD_RUN && cfg->cmd != PGE_CMD_WAIT;
}

/* Start the first phase: the wait, or straight to migrations for upgrade --sql offline. */
static int start_first_phase(struct run *r)
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

static void on_worker_state(void *arg, const struct pge_runstate *st)
{
    struct run *r = arg;
    pge_worker_merge(&r->state, st);
}

static void on_worker_done(void *arg, struct pge_outcome out)
{
    struct run *r = arg;
    if (out.kind == PGE_OUT_OK && r->stop_signo) {
        /* The stop came as the worker finished: COMMAND must not start now. */
        pge_info("stop signal before the command started: exiting",
                 PGE_STR("signal", pge_parse_signal_name(r->stop_signo)));
        finish(r, PGE_OUTCOME(PGE_OUT_STOPPED, r->stop_signo));
        pge_worker_release(r->worker);
        return;
    }
    if (out.kind != PGE_OUT_OK)
        finish(r, out);
    else
        start_command(r);
    pge_worker_release(r->worker);
}

/* A supervised run with database work or dependencies to wait for does that work in a worker
 * process: the supervisor that stays for the application's lifetime then never holds libpq's,
 * OpenSSL's or the migrations' memory (bench/static.sh, case c). */
static int uses_worker(const struct run *r)
{
    const struct pge_config *cfg = r->cfg;
    return cfg->cmd == PGE_CMD_RUN && cfg->ncommand > 0 && !cfg->exec && !r->pre.offline &&
           (r->pre.have_db || r->pre.migrate || cfg->nwait_tcp > 0 || cfg->nwait_http > 0);
}

static int fork_worker(struct run *r, struct pge_outcome *out)
{
    pid_t pid = pge_worker_fork(&r->worker, r->loop, &r->state, on_worker_state, on_worker_done, r);
    if (pid < 0) {
        pge_error("could not start the database worker process", PGE_STR("error", strerror(errno)));
        *out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        return -1;
    }
    if (pid == 0) {
        r->is_worker = 1;
        PGE_CLEAR(r->health, pge_health_free); /* the supervisor's; its socket stays open there */
        return 0;
    }
    pge_debug("database phases run in a worker process", PGE_INT("pid", pid));
    return 0;
}

struct pge_outcome pge_run(const struct pge_config *cfg, char **envp, const sigset_t *orig_mask)
{
    struct run r;
    struct pge_outcome out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);

    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.envp = envp;
    r.orig_mask = orig_mask;
    pge_runstate_init(&r.state);
    r.loop = ev_default_loop(EVFLAG_AUTO);
    if (!r.loop) {
        pge_error("could not create the event loop");
        return out;
    }
    pge_logsink_attach(r.loop);
    /* Not with --exec: the flag survives execve, and the app would collect orphans it never
     * reaps. */
    if (cfg->cmd == PGE_CMD_RUN && !cfg->exec && pge_supervisor_init_process() < 0)
        pge_warn("could not become a child subreaper: orphans of COMMAND will not be reaped",
                 PGE_STR("error", strerror(errno)));
    /* Before anything that takes time (scanning migrations, NSS lookups): as PID 1 a stop
     * signal without a watcher is dropped by the kernel. One that arrives now is handled as
     * soon as the loop runs. */
    pge_signals_watch(&r.sigs, r.loop, on_signal, &r);
    r.state.db.configured = cfg->db_configured;
    if (pge_preflight_check(&r.pre, cfg, envp, &out) < 0)
        goto done;
    if (start_health(&r, &out) < 0)
        goto done;
    r.seed = seed();
    if (uses_worker(&r) && fork_worker(&r, &out) < 0)
        goto done;
    if (start_helpers(&r, &out) < 0)
        goto done;
    if ((!r.worker || r.is_worker) && start_first_phase(&r) < 0)
        goto done;
    r.outcome = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
    ev_run(r.loop, 0);
    if (!r.finished) {
        pge_error("event loop ended unexpectedly");
        r.outcome = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
    }
    out = r.exec_after ? exec_command(&r) : r.outcome;
done:
    if (r.is_worker)
        pge_worker_report(r.worker, out, REPORT_TIMEOUT_MS); /* when finish() never ran */
    cleanup(&r);
    pge_preflight_free(&r.pre);
    return out;
}
