/* Unit tests for the run state: phase and outcome names, and the initial values. */
#include <criterion/criterion.h>
#include <string.h>

#include "pgentry/common/runstate.h"

Test(runstate, phase_names_match_the_contract, .timeout = 10)
{
    static const char *const want[PGE_PHASE_COUNT_] = {"waiting", "migrating", "starting",
                                                       "running", "stopping",  "failed"};
    for (int p = 0; p < PGE_PHASE_COUNT_; p++)
        cr_assert_str_eq(pge_runstate_phase_name((enum pge_phase)p), want[p], "phase %d", p);
    cr_assert_str_eq(pge_runstate_phase_name(PGE_PHASE_COUNT_), "unknown");
    cr_assert_str_eq(pge_runstate_phase_name((enum pge_phase) - 1), "unknown");
}

Test(runstate, outcome_names_are_metric_labels, .timeout = 10)
{
    static const char *const want[PGE_ATTEMPT_COUNT_] = {
        "ok",       "refused", "dns",   "timeout",     "starting",
        "too_many", "standby", "fatal", "http_status", "other"};
    for (int o = 0; o < PGE_ATTEMPT_COUNT_; o++) {
        const char *n = pge_runstate_outcome_name((enum pge_attempt_outcome)o);
        cr_assert_str_eq(n, want[o], "outcome %d", o);
        /* Prometheus label values: lower case and '_' only, so no escaping is ever needed. */
        cr_assert_eq(strspn(n, "abcdefghijklmnopqrstuvwxyz_"), strlen(n), "%s", n);
    }
    cr_assert_str_eq(pge_runstate_outcome_name(PGE_ATTEMPT_COUNT_), "other");
}

Test(runstate, init_defaults, .timeout = 10)
{
    struct pge_runstate st;
    memset(&st, 0x5a, sizeof st);
    int64_t before = pge_runstate_mono_ms();
    pge_runstate_init(&st);
    int64_t after = pge_runstate_mono_ms();
    cr_assert_eq(st.phase, PGE_PHASE_WAITING);
    cr_assert_eq(st.stopping, 0);
    cr_assert(st.start_mono_ms >= before && st.start_mono_ms <= after);
    cr_assert_gt(st.start_unix_ms, 1600000000000LL, "wall clock not in ms since 1970");
    cr_assert_eq(st.db.ready, 0);
    cr_assert_eq(st.db.attempts, 0);
    cr_assert_str_empty(st.db.last_error);
    cr_assert_eq(st.db.ready_after_ms, -1);
    for (int o = 0; o < PGE_ATTEMPT_COUNT_; o++)
        cr_assert_eq(st.db.attempts_by_outcome[o], 0);
    cr_assert_str_eq(st.mig.current, "none");
    cr_assert_eq(st.mig.known, 0);
    cr_assert_eq(st.app.pid, 0);
    cr_assert_eq(st.app.running, 0);
    cr_assert_eq(st.app.healthy, 1);
    cr_assert_eq(st.app.exit_code, -1);
}
