/* Close-on-exec for every descriptor: what a child of pgentry must not inherit. */
#ifndef PGENTRY_COMMON_CLOEXEC_H
#define PGENTRY_COMMON_CLOEXEC_H

/* Mark every open descriptor >= minfd close-on-exec (close_range(CLOSE_RANGE_CLOEXEC), else
 * each entry of /proc/self/fd, else every number up to the descriptor limit). Descriptors stay
 * open until an exec, so a CLOEXEC report pipe still works. No allocation and only
 * async-signal-safe calls: usable in a forked child just before exec, and in the parent after
 * a library made descriptors it does not mark itself. Returns 0, or -1 with errno when a
 * fallback could not be completed. */
int pge_cloexec_from(int minfd);

#endif
