/* One pgentry run on the event loop: set-up, signals, the worker process, supervise or exec;
 * the database phases themselves are in phases.c. */
#include "pgentry/run/run.h"
#include "run_int.h"

#include <curl/curl.h>
#include <errno.h>
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

/* How long the worker waits for room to report its outcome to a supervisor that stopped
 * reading; the supervisor's death ends the worker anyway (SIGTERM). */
#define REPORT_TIMEOUT_MS 5000

void pge_run_finish(struct run *r, struct pge_outcome out)
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
    pge_run_finish(arg, out);
}

/* COMMAND has exec'd: from here on pgentry only supervises. Give back what the start-up and
 * the database work left behind, only now: trimming while COMMAND's process was still being
 * set up cost it milliseconds (madvise's TLB shootdowns reach the other core). */
static void on_running(void *arg)
{
    struct run *r = arg;
    if (r->worker)
        pge_migfile_set_free(&r->pre.files); /* only the worker read them */
    long kb = pge_memtrim_release();
    pge_debug("idle supervisor released library pages and heap slack", PGE_INT("kb", kb));
}

void pge_run_start_command(struct run *r)
{
    const struct pge_config *cfg = r->cfg;
    struct pge_outcome out;
    char err[512];

    if (r->is_worker) {
        /* The worker's part ends here; the supervisor runs COMMAND. */
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (r->conn) {
        /* The idle supervisor holds no database connection. */
        PQfinish(r->conn);
        r->conn = NULL;
    }
    if (cfg->cmd != PGE_CMD_RUN || cfg->ncommand == 0) {
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (cfg->exec) {
        r->exec_after = 1;
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_OK, 0));
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
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    if (pge_supervisor_start(r->super, &out, err, sizeof err) < 0) {
        pge_error(err);
        pge_run_finish(r, out);
        return;
    }
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
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_STOPPED, signo));
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
        pge_run_finish(r, PGE_OUTCOME(PGE_OUT_STOPPED, r->stop_signo));
        pge_worker_release(r->worker);
        return;
    }
    if (out.kind != PGE_OUT_OK)
        pge_run_finish(r, out);
    else
        pge_run_start_command(r);
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
    if ((!r.worker || r.is_worker) && pge_run_start_phases(&r) < 0)
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
