/* Capture what the logger writes: lines go to a temp file the test reads back. */
#ifndef PGT_LOGCAP_H
#define PGT_LOGCAP_H

#include "pgentry/common/log.h"

/* Point the logger at a fresh temp file with this level and format. Aborts the test on
 * failure. One capture at a time per process. */
void pgt_logcap_start(enum pge_log_level level, enum pge_log_format format);

/* Everything written since start (or the last take), owned by the caller; the file is emptied
 * so the next take sees only newer lines. */
char *pgt_logcap_take(void);

/* Back to stderr; the temp file is closed. */
void pgt_logcap_stop(void);

#endif
