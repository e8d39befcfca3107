/* Shared test helpers: run the real binary, throwaway PostgreSQL, real listeners. */
#ifndef PGT_H
#define PGT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic milliseconds (tests measure elapsed time with it). */
int64_t pgt_now_ms(void);

/* A free TCP port on 127.0.0.1 (bound, read, released: good enough for tests). */
int pgt_free_port(void);

/* ---- Running processes (the real pgentry binary) ---------------------------------------- */

struct pgt_proc {
    pid_t pid;
    int64_t started_ms;
    char out_path[256]; /* stdout and stderr captured in files */
    char err_path[256];
    int status; /* raw wait status once reaped */
    int exited;
    int64_t elapsed_ms; /* start to exit */
    char *out;          /* contents after pgt_proc_wait(), owned */
    char *err;
};

/* Start argv with a clean environment: PATH, HOME, LANG=C plus env (NULL-terminated
 * "K=V" strings, may be NULL). argv[0] "pgentry" is replaced by the built binary. Aborts the
 * test on failure. */
void pgt_proc_spawn(struct pgt_proc *p, const char *const *argv, const char *const *env);

/* Wait up to timeout_ms (then SIGKILL and fail the test); read the outputs. Returns the exit
 * code (128+N for death by signal N). */
int pgt_proc_wait(struct pgt_proc *p, int timeout_ms);

/* Free the captured outputs and files. */
void pgt_proc_free(struct pgt_proc *p);

/* Run to completion: spawn + wait. */
int pgt_run(struct pgt_proc *p, const char *const *argv, const char *const *env, int timeout_ms);

/* Wait until the file at path contains needle (e.g. a log line), up to timeout_ms. 0 or -1. */
int pgt_wait_for_text(const char *path, const char *needle, int timeout_ms);

/* ---- A throwaway PostgreSQL server --------------------------------------------------------- */

#define PGT_PASSWORD "pgt-Secret-pw-42"

struct pgt_pg {
    char dir[256];    /* data directory, also the socket directory */
    char bindir[256]; /* initdb, pg_ctl */
    int port;
    int running;
};

/* initdb a new cluster in a temp dir (as the postgres user when root) with password auth on
 * TCP, trust on the socket, fsync off. Does not start it. */
void pgt_pg_init(struct pgt_pg *pg);

/* Run a server program (argv[0] a full path: initdb, pg_ctl, pg_basebackup) and abort the test
 * unless it exits 0. initdb and postgres refuse to run as root: as root, it runs as the
 * postgres user. quiet discards its stdout. */
void pgt_run_as_pg(const char *const *argv, int quiet);

/* The same, returning the raw wait status instead of failing the test. */
int pgt_try_as_pg(const char *const *argv, int quiet);

/* As root, give path to the postgres user (a data directory, a password file). */
void pgt_chown_to_pg(const char *path);

/* Start (pg_ctl -w) / stop (immediate) / remove the directory. */
void pgt_pg_start(struct pgt_pg *pg);
void pgt_pg_stop(struct pgt_pg *pg);
void pgt_pg_destroy(struct pgt_pg *pg);

/* postgres://postgres:PASSWORD@127.0.0.1:PORT/db into buf. */
const char *pgt_pg_url(const struct pgt_pg *pg, const char *db, char *buf, size_t size);

/* Run SQL over the socket as the superuser; returns the first column of the first row (owned,
 * "" when none), or aborts the test with the server's message. */
char *pgt_pg_query(const struct pgt_pg *pg, const char *db, const char *sql);

/* Like pgt_pg_query but returns NULL on error and puts the SQLSTATE in sqlstate[6]. */
char *pgt_pg_try(const struct pgt_pg *pg, const char *db, const char *sql, char sqlstate[6]);

/* A new empty database with a unique name (copied into name). */
void pgt_pg_createdb(const struct pgt_pg *pg, char *name, size_t size);

/* The suite's shared server: started once per test binary (lazily, under a lock file) and
 * stopped when the binary's runner exits. Tests create their own databases in it. */
struct pgt_pg *pgt_pg_shared(void);

/* ---- Listeners ------------------------------------------------------------------------------ */

/* A listening TCP socket on 127.0.0.1:port (port 0 = any; the port is returned). */
int pgt_tcp_listen(int *port);

/* A forked HTTP server on 127.0.0.1 answering every request with status. Returns its pid;
 * kill it with pgt_kill(). */
pid_t pgt_http_server(int port, int status);

void pgt_kill(pid_t pid);

/* Read a whole file (owned, NUL-terminated; "" when missing). */
char *pgt_read_file(const char *path);

/* Write a file, creating directories as needed. */
void pgt_write_file(const char *path, const char *content);

/* A new temp directory (path copied to buf). */
void pgt_tempdir(char *buf, size_t size);

#endif
