/* The processes COMMAND leaves behind: whether any remain, and signalling them all. */
#ifndef PGENTRY_SUPERVISE_DESCENDANTS_H
#define PGENTRY_SUPERVISE_DESCENDANTS_H

/* Send sig to every remaining process. As PID 1 (pid1 true) kill(-1) reaches every process of
 * the namespace but us; as a subreaper only our descendants, found through /proc, are
 * signalled. sig must have a name (TERM, KILL). Failures are logged, never fatal. */
void pge_descendants_signal(int pid1, int sig);

/* Whether any child (zombie or alive) is left, without reaping it. Every orphaned descendant
 * is re-parented to us (PID 1 or subreaper), so no child means no descendant. */
int pge_descendants_remain(void);

#endif
