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

void pge_runstate_init(struct pge_runstate *st)
{
    struct timespec ts;
    memset(st, 0, sizeof *st);
    st->phase = PGE_PHASE_WAITING;
    clock_gettime(CLOCK_REALTIME, &ts);
    st->start_unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
