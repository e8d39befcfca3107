/* What pgentry is doing now: plain data written by the phases, read by the health endpoint. */
#include "pgentry/common/runstate.h"

#include <string.h>
#include <time.h>

int64_t pge_runstate_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pge_runstate_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void pge_runstate_lock_waiting(struct pge_runstate *st, const char *holder, int64_t now_mono_ms)
{
    if (st->lock.state != PGE_LOCK_WAITING)
        st->lock.wait_started_mono_ms = now_mono_ms;
    st->lock.state = PGE_LOCK_WAITING;
    st->lock.since_unix_ms = 0;
    copy(st->lock.holder, sizeof st->lock.holder, holder);
}

void pge_runstate_lock_held(struct pge_runstate *st, const char *holder, int64_t now_unix_ms)
{
    st->lock.state = PGE_LOCK_HELD;
    st->lock.since_unix_ms = now_unix_ms;
    copy(st->lock.holder, sizeof st->lock.holder, holder);
}

void pge_runstate_lock_free(struct pge_runstate *st)
{
    memset(&st->lock, 0, sizeof st->lock);
    pge_runstate_not_running(st);
}

const char *pge_runstate_lock_name(enum pge_lock_state state)
{
    static const char *const names[] = {"free", "waiting", "held"};
    return (unsigned)state < sizeof names / sizeof names[0] ? names[state] : "free";
}

void pge_runstate_running(struct pge_runstate *st, const char *version, const char *name,
                          unsigned line)
{
    st->running.active = 1;
    copy(st->running.version, sizeof st->running.version, version);
    copy(st->running.name, sizeof st->running.name, name);
    st->running.line = line;
}

void pge_runstate_not_running(struct pge_runstate *st)
{
    memset(&st->running, 0, sizeof st->running);
}

void pge_runstate_init(struct pge_runstate *st)
{
    memset(st, 0, sizeof *st);
    st->phase = PGE_PHASE_WAITING;
    st->start_unix_ms = pge_runstate_unix_ms();
    st->start_mono_ms = pge_runstate_mono_ms();
    st->db.ready_after_ms = -1;
    strcpy(st->mig.current, "none");
    st->app.healthy = 1;
    st->app.exit_code = -1;
}

const char *pge_runstate_phase_name(enum pge_phase phase)
{
    static const char *const names[] = {"waiting", "migrating", "starting",
                                        "running", "stopping",  "failed"};
    if ((unsigned)phase < sizeof names / sizeof names[0])
        return names[phase];
    return "unknown";
}

const char *pge_runstate_outcome_name(enum pge_attempt_outcome outcome)
{
    static const char *const names[] = {"ok",       "refused", "dns",   "timeout",     "starting",
                                        "too_many", "standby", "fatal", "http_status", "other"};
    if ((unsigned)outcome < sizeof names / sizeof names[0])
        return names[outcome];
    return "other";
}
