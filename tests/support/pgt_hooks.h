/* A Criterion hook that gives one test binary its own throwaway PostgreSQL server. */
#ifndef PGT_HOOKS_H
#define PGT_HOOKS_H

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include "pgt.h"

/* Start the binary's server in the runner, before any test (its tests find it with
 * pgt_pg_shared()); it is stopped when the runner exits. */
void pgt_shared_pg_setup(void);

/* Put once in a test file whose tests call pgt_pg_shared(). */
#define PGT_SHARED_PG_HOOKS()                                                                      \
    ReportHook(PRE_ALL)(struct criterion_test_set * set)                                           \
    {                                                                                              \
        (void)set;                                                                                 \
        pgt_shared_pg_setup();                                                                     \
    }

#endif
