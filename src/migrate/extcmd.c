/* --migrate-cmd: run an external command while holding the lock, watching the lock's session. */
#include "engine_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "pgentry/common/log.h"
#include "pgentry/supervise/supervisor.h"

static void on_lock_watch(struct ev_loop *loop, ev_io *w, int revents);

static void on_cmd_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    struct pge_migrate *m = w->data;
    int st = w->rstatus;
    (void)revents;
    if (!WIFEXITED(st) && !WIFSIGNALED(st))
        return;
    ev_child_stop(loop, w);
    ev_io_stop(loop, &m->lock_watch);
    m->cmd_pid = 0;
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
    pge_info("running migrate command under the migration lock",
             PGE_STR("command", m->o.migrate_cmd));
    fflush(stdout);
    char *argv[] = {"/bin/sh", "-c", (char *)m->o.migrate_cmd, NULL};
    pid_t pid = pge_supervisor_spawn("/bin/sh", argv, env, m->o.orig_mask);
    int e = errno;
    free(url);
    free(env);
    if (pid < 0) {
        pge_error("could not start the migrate command", PGE_STR("error", strerror(e)));
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
}
