/* The planning steps shared by migplan.c (status, verify) and migtarget.c (targets); private. */
#ifndef PGENTRY_MIGRATE_MIGPLAN_INT_H
#define PGENTRY_MIGRATE_MIGPLAN_INT_H

#include "pgentry/migrate/migplan.h"

/* Set the plan's error (count 0) and return it. */
enum pge_migplan_result pge_migplan_fail(struct pge_migplan *plan, enum pge_migplan_result r,
                                         int64_t version);

/* The shared first step: check the inputs, then one item per version known to the files or
 * the rows, ascending, with its state; head, states and ahead filled. */
enum pge_migplan_result pge_migplan_merge(struct pge_migplan *plan, const struct pge_migset *files,
                                          const struct pge_migplan_row *rows, size_t nrows,
                                          char *err, size_t errsize);

/* The first item in the given state (ascending), with how many others share it; NULL if none. */
const struct pge_migplan_item *pge_migplan_first_in(const struct pge_migplan *plan,
                                                    enum pge_migplan_state state, size_t *others);

/* DRIFT for it (others: how many more changed files to mention), with the fix in err. */
enum pge_migplan_result pge_migplan_drift_error(struct pge_migplan *plan,
                                                const struct pge_migplan_item *it, size_t others,
                                                char *err, size_t errsize);

/* The item of a version, or NULL. */
struct pge_migplan_item *pge_migplan_find(struct pge_migplan *plan, int64_t version);

#endif
