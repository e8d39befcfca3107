/* Shared test helpers: run the real binary, throwaway PostgreSQL, fake clock, log capture. */
#include "pgt.h"

#include <time.h>

int64_t pgt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
