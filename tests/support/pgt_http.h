/* Test helpers for HTTP: a health server in a child process, a real-socket client, checkers. */
#ifndef PGT_HTTP_H
#define PGT_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "pgentry/health/health.h"
#include "pgentry/common/runstate.h"

/* A health server running in a forked child on its own libev loop. The state lives in
 * shared memory: the test writes it, the server reads it on each request. */
struct pgt_server {
    pid_t pid;
    int port;
    struct pge_runstate *st;
};

/* Start a server on 127.0.0.1 (or host, e.g. "[::1]") and a free port; asserts on failure.
 * The child dies with the test process. opts may be NULL. */
void pgt_server_start(struct pgt_server *s, const char *host, const struct pge_health_opts *opts);

/* Like pgt_server_start(), but the child first lowers its descriptor limit to what it has open
 * plus `spare` (to provoke EMFILE). */
void pgt_server_start_fdlimit(struct pgt_server *s, const struct pge_health_opts *opts, int spare);

void pgt_server_stop(struct pgt_server *s);

/* VmRSS of a process in KiB, or -1. */
long pgt_rss_kb(pid_t pid);

/* User+system CPU time of a process in milliseconds, or -1. */
long pgt_cpu_ms(pid_t pid);

/* A blocking TCP connection to host:port with 5 s send/receive timeouts, or -1. */
int pgt_connect(const char *host, int port);

/* Write all of buf; returns 0 or -1. */
int pgt_send_all(int fd, const void *buf, size_t len);

#define PGT_HTTP_BODY_MAX (256 * 1024)

struct pgt_http_resp {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char *body;      /* NUL-terminated; owned by the reader, valid until its next read */
    size_t body_len;
};

/* Buffered reader of responses on one connection (pipelining-safe). */
struct pgt_http_reader {
    int fd;
    size_t len;
    char buf[PGT_HTTP_BODY_MAX + 16384];
    char body[PGT_HTTP_BODY_MAX + 1];
};

/* Read one complete response (framed by Content-Length; no body when head_only). Returns 0,
 * or -1 on EOF, timeout, or a malformed response. */
int pgt_http_read(struct pgt_http_reader *r, int head_only, struct pgt_http_resp *out);

/* Whether the peer closed: waits up to ms for EOF (or reset). 1 closed, 0 still open. */
int pgt_wait_closed(int fd, int ms);

/* One request on a fresh connection ("GET", "/livez"); the response's body is copied to a
 * static buffer. Returns the status, or -1. */
int pgt_http_get(const char *host, int port, const char *method, const char *path,
                 struct pgt_http_resp *out);

/* Value of a response header (case-insensitive name) into buf, or NULL. */
const char *pgt_http_header(const struct pgt_http_resp *r, const char *name, char *buf,
                            size_t size);

/* Strict RFC 8259 JSON validation (UTF-8, escapes, numbers, nothing trailing). 0 or -1 with a
 * message in err. */
int pgt_json_check(const char *text, size_t len, char *err, size_t errsize);

/* Strict Prometheus text format 0.0.4 check plus promtool's lint rules (HELP and TYPE for
 * every family, counters end in _total, families contiguous, no duplicate series). */
int pgt_prom_check(const char *text, char *err, size_t errsize);

/* Run cmd with text on its standard input; returns its exit status, or -1 when it cannot
 * run (127: not installed). Output goes to out (NUL-terminated, may be truncated). */
int pgt_pipe_cmd(const char *cmd, const char *text, char *out, size_t outsize);

#endif
