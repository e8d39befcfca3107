/* Shared test helpers: run the real binary, throwaway PostgreSQL, fake clock, log capture. */
#ifndef PGT_H
#define PGT_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds (tests measure elapsed time with it). */
int64_t pgt_now_ms(void);

#endif
