/* One pgentry run on the event loop: wait → migrate → supervise, with signals throughout. */
#ifndef PGENTRY_RUN_RUN_H
#define PGENTRY_RUN_RUN_H

#include <signal.h>

#include "pgentry/config/config.h"
#include "pgentry/common/outcome.h"

/* Run cfg's command (every command that needs the loop: run, wait and the database
 * subcommands) to its end and return how it ended. orig_mask is the signal mask the process
 * started with (restored for children). envp is the process environment. */
struct pge_outcome pge_run(const struct pge_config *cfg, char **envp, const sigset_t *orig_mask);

#endif
