/* Regain a lost connection: let go of the dead session, have the caller wait for a new one, then
 * start again from the lock and the history. */
#include "engine_int.h"

#include <stdio.h>

#include "pgentry/common/log.h"

static void on_reconnect_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pge_migrate *m = w->data;
    (void)loop;
    (void)revents;
    /* Out of every query callback by now: the query runner can go with its connection. */
    pge_pgquery_free(m->q);
    m->q = NULL;
    m->conn = NULL;
    m->o.reconnect(m->arg);
}

void pge_migrate_reconnect_init(struct pge_migrate *m)
{
    ev_timer_init(&m->reconnect_timer, on_reconnect_due, 0.0, 0.0);
    m->reconnect_timer.data = m;
}

int pge_migrate_can_reconnect(const struct pge_migrate *m)
{
    if (!m->o.reconnect || m->finished || m->reconnecting || m->stop_signo || m->lease_lost)
        return 0;
    /* Already failing (a ROLLBACK after a failed statement, say): report that, not retry. */
    if (m->pending.kind != PGE_OUT_OK)
        return 0;
    /* An external command migrates on its own connection: whether it finished is unknown. */
    if (m->op == PGE_MIGRATE_COMMAND || m->cmd_pid > 0)
        return 0;
    /* What a no-transaction migration committed stays: that is exit 65, saying what. */
    return !(m->text && m->no_tx);
}

void pge_migrate_reconnect(struct pge_migrate *m, const char *what, const char *error)
{
    char msg[400];
    if (m->text && m->item < m->plan.count) {
        const struct pge_migplan_item *it = &m->plan.items[m->item];
        snprintf(msg, sizeof msg,
                 "connection lost during migration %s_%s: the server rolled it back; reconnecting",
                 it->version_text, it->name);
        pge_warn(msg, PGE_STR("error", error));
    } else {
        pge_warn("connection lost while no migration was running: reconnecting",
                 PGE_STR("during", what), PGE_STR("error", error));
    }
    m->reconnecting = 1;
    m->lost_ms = now_ms();
    /* The server ended the session: its transaction, lock and LISTEN went with it. */
    ev_timer_stop(m->loop, &m->timer);
    ev_io_stop(m->loop, &m->notify_io);
    pge_migrate_lease_stop(m);
    pge_migrate_drop_item(m);
    m->locked = 0;
    m->lock_chosen = 0; /* a failover may put a pooler in front, or take it away */
    m->listening = 0;
    if (m->o.state) {
        pge_runstate_lock_free(m->o.state);
        pge_runstate_not_running(m->o.state);
    }
    ev_timer_start(m->loop, &m->reconnect_timer);
}

void pge_migrate_resume(struct pge_migrate *m, PGconn *conn)
{
    m->q = pge_pgquery_new(m->loop, conn);
    if (!m->q) {
        pge_error("out of memory resuming migrations");
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    m->conn = conn;
    m->reconnecting = 0;
    pge_info(m->op == PGE_MIGRATE_WAIT
                 ? "reconnected; re-reading the history"
                 : "reconnected; taking the migration lock again and re-reading the history",
             PGE_MS("after", now_ms() - m->lost_ms), PGE_INT("applied_so_far", m->applied_now));
    ev_timer_start(m->loop, &m->kick);
}
