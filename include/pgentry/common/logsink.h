/* Where log lines go: stderr through a non-blocking descriptor and a bounded buffer. */
#ifndef PGENTRY_COMMON_LOGSINK_H
#define PGENTRY_COMMON_LOGSINK_H

#include <stddef.h>

struct ev_loop;

/* How long exit or --exec waits for a full stderr at most. */
#define PGE_LOGSINK_EXIT_FLUSH_MS 1000

/* Write to descriptor 2 without ever blocking: a pipe or terminal gets its own non-blocking
 * open file description (the one COMMAND shares keeps its flags), a socket is written with
 * MSG_DONTWAIT, a regular file as it is; a closed stderr discards. Call once at start-up,
 * before threads exist. Returns 0 (the fallbacks never fail). */
int pge_logsink_open_stderr(void);

/* Write to fd as it is (tests: a capture file). Not thread-safe against concurrent logging. */
void pge_logsink_use_fd(int fd);

/* Queue n bytes (whole lines, each ending in '\n') and write what the descriptor takes now.
 * When the buffer is full the line is dropped and counted. Thread-safe; never blocks. Once a
 * backlog has drained, says how many lines were dropped (a warn line). */
void pge_logsink_write(const char *line, size_t n);

/* Finish writing a backlog from the loop (an io watcher, woken from other threads by an async
 * watcher); neither keeps the loop alive. Call from the loop's thread; detach before the loop
 * goes. attach(NULL) or detach() when not attached do nothing. */
void pge_logsink_attach(struct ev_loop *loop);
void pge_logsink_detach(void);

/* Before exit or exec: write the backlog, waiting at most timeout_ms in all for the
 * descriptor (a pipe nobody reads cannot hold the exit longer). Returns 0 when everything
 * was written, -1 when lines were left. */
int pge_logsink_flush(int timeout_ms);

/* Lines dropped since start (stderr full, or its reader gone). Thread-safe. */
unsigned long long pge_logsink_dropped(void);

#endif
