/* Teardown that can run twice: release what a pointer owns, then forget the pointer. */
#ifndef PGENTRY_COMMON_CLEAR_H
#define PGENTRY_COMMON_CLEAR_H

#include <stddef.h>

/* free_fn(p), then p = NULL, so a later teardown of the same object is a no-op. free_fn must
 * accept NULL (every service's _free does). p is evaluated twice: pass a variable or a member,
 * not an expression with side effects. */
#define PGE_CLEAR(p, free_fn)                                                                      \
    do {                                                                                           \
        free_fn(p);                                                                                \
        (p) = NULL;                                                                                \
    } while (0)

#endif
