/* --migrate-cmd: run an external command while holding the lock, watching the lock's session. */
#include "engine_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgentry/common/log.h"
#include "pgentry/supervise/spawn.h"

static void on_lock_watch(struct ev_loop *loop, ev_io *w, int revents);

/* Whether the command never ran: its child reported a failed --user switch or exec before
 * exiting (the report is in the pipe by the time the child is reaped). Logs why; *out is CONFIG
 * for --user (78, as for COMMAND), MIGRATION_FAILED for an exec failure. */
static int start_failed(struct pge_migrate *m, struct pge_outcome *out)
{
    struct pge_spawn_report r;
    char err[512];
    ssize_t n = read(m->cmd_report_fd, &r, sizeof r);
    close(m->cmd_report_fd);
    m->cmd_report_fd = -1;
    if (n != (ssize_t)sizeof r)
        return 0;
    struct pge_outcome o = pge_spawn_failure(&r, m->o.user, "/bin/sh", err, sizeof err);
    pge_error(err, PGE_STR("command", m->o.migrate_cmd));
    *out = o.kind == PGE_OUT_CONFIG ? o : PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0);
    return 1;
}

static void on_cmd_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_migrate *m = w->data;
    int st = w->rstatus;
    struct pge_outcome failed;
    (void)revents;
    if (!WIFEXITED(st) && !WIFSIGNALED(st))
        return;
    ev_child_stop(loop, w);
    ev_io_stop(loop, &m->lock_watch);
    m->cmd_pid = 0;
    if (start_failed(m, &failed)) {
        pge_migrate_release(m, failed);
        return;
    }
    if (m->lock_lost) {
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    if (m->stop_signo) {
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_STOPPED, m->stop_signo));
        return;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        pge_info("migrate command succeeded", PGE_STR("command", m->o.migrate_cmd));
        pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    pge_error(
        "migrate command failed: the application is not started",
        PGE_STR("command", m->o.migrate_cmd),
        PGE_INT(WIFEXITED(st) ? "code" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st)));
    pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
}

void pge_migrate_run_command(struct pge_migrate *m)
{
    char **env;
    size_t n = 0, k = 0;
    for (char **e = m->o.envp; e && *e; e++)
        n++;
    env = calloc(n + 2, sizeof *env);
    char *url = NULL;
    if (!env) {
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    for (char **e = m->o.envp; e && *e; e++)
        if (!m->o.database_url || strncmp(*e, "DATABASE_URL=", 13) != 0)
            env[k++] = *e;
    if (m->o.database_url) {
        url = malloc(strlen(m->o.database_url) + 14);
        if (!url) {
            free(env);
            pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
            return;
        }
        sprintf(url, "DATABASE_URL=%s", m->o.database_url);
        env[k++] = url;
    }
    env[k] = NULL;
    /* --user: the command gets COMMAND's identity and HOME, through the same spawn. */
    char **user_env = m->o.account ? pge_privdrop_environ(m->o.account, env) : NULL;
    if (m->o.account && !user_env) {
        free(url);
        free(env);
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    pge_info("running migrate command under the migration lock",
             PGE_STR("command", m->o.migrate_cmd));
    fflush(stdout);
    char *argv[] = {"/bin/sh", "-c", (char *)m->o.migrate_cmd, NULL};
    struct pge_spawn_cmd cmd = {
        .argv = argv,
        .envp = user_env ? user_env : env,
        .account = m->o.account,
        .orig_mask = m->o.orig_mask,
        .tty_fd = -1,
    };
    char err[512];
    pid_t pid = pge_spawn_command(&cmd, &m->cmd_report_fd, err, sizeof err);
    free(user_env);
    free(url);
    free(env);
    if (pid < 0) {
        pge_error("could not start the migrate command", PGE_STR("error", err));
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    m->cmd_pid = pid;
    ev_child_init(&m->cmd_child, on_cmd_exit, pid, 0);
    m->cmd_child.data = m;
    ev_child_start(m->loop, &m->cmd_child);
    /* Idle while the command works, the session must still be there: it holds the lock. */
    ev_io_set(&m->lock_watch, PQsocket(m->conn), EV_READ);
    ev_io_start(m->loop, &m->lock_watch);
}

static void on_lock_watch(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)revents;
    if (PQconsumeInput(m->conn) && PQstatus(m->conn) == CONNECTION_OK)
        return; /* a notice or a parameter change: the session lives */
    ev_io_stop(loop, w);
    m->lock_lost = 1;
    m->locked = 0;
    char why[256];
    snprintf(why, sizeof why, "%s", PQerrorMessage(m->conn));
    why[strcspn(why, "\n")] = '\0';
    pge_error("lost the database session holding the migration lock while the migrate command "
              "ran: another instance could migrate at the same time; stopping the command, the "
              "app is not started",
              PGE_STR("error", why));
    if (m->cmd_pid > 0) {
        kill(-m->cmd_pid, SIGTERM);
        ev_timer_set(&m->stop_timer, (double)m->o.stop_timeout_ms / 1000.0, 0.0);
        ev_timer_start(m->loop, &m->stop_timer);
    }
}

void pge_migrate_extcmd_init(struct pge_migrate *m)
{
    ev_init(&m->lock_watch, on_lock_watch);
    m->lock_watch.data = m;
    m->cmd_report_fd = -1;
}
