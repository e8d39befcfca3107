/* One migration test's world: its own database in the shared server, its own migrations
 * directory, and the environment that points the real binary at both. */
#ifndef PGT_WORLD_H
#define PGT_WORLD_H

#include "pgt.h"

#define PGT_WORLD_MAX_ENV 8

/* Plain data the test owns (on its stack); nothing to free. The database and the directory
 * are throwaway ones, removed with the shared server and $TMPDIR. */
struct pgt_world {
    struct pgt_pg *pg;
    char db[64];
    char url[256]; /* the database's URL, without the suffix */
    char dir[256]; /* the migrations directory */
    char env_url[400];
    char env_dir[300];
    char vars[PGT_WORLD_MAX_ENV][400];      /* "NAME=value" added with pgt_world_setenv() */
    const char *env[PGT_WORLD_MAX_ENV + 1]; /* NULL-terminated */
    size_t nenv;
};

/* A new database on pgt_pg_shared() and an empty migrations directory; the environment is
 * DATABASE_URL (url + url_suffix, e.g. "?options=..."; NULL for none), PGENTRY_MIGRATIONS and
 * PGENTRY_HEALTH_ADDR=off. Fails the test on error. */
void pgt_world_init(struct pgt_world *w, const char *url_suffix);

/* pgt_world_init() on a server of the test's own (one it may stop and start). */
void pgt_world_init_on(struct pgt_world *w, struct pgt_pg *pg, const char *url_suffix);

/* Point DATABASE_URL at url instead (e.g. a pooler in front of the world's database). */
void pgt_world_set_url(struct pgt_world *w, const char *url);

/* Add "NAME=value", formatted like printf, to the environment (copied into w). Fails the test
 * when PGT_WORLD_MAX_ENV are already set. */
void pgt_world_setenv(struct pgt_world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Write content to dir/name, creating or truncating it. */
void pgt_world_file(struct pgt_world *w, const char *name, const char *content);

/* Run pgentry to completion (60 s at most) with the world's environment: the arguments after
 * "pgentry", NULL-terminated (30 at most). Returns what pgt_run() does; free p afterwards. */
int pgt_world_run(struct pgt_world *w, struct pgt_proc *p, ...);

/* The first column of the first row of sql in the world's database (malloc'd). */
char *pgt_world_query(struct pgt_world *w, const char *sql);

/* Run sql in the world's database, ignoring its answer (fails the test on an error). */
void pgt_world_exec(struct pgt_world *w, const char *sql);

/* Poll (up to timeout_ms) until sql answers expected; fails the test on timeout. */
void pgt_world_await(struct pgt_world *w, const char *sql, const char *expected, int timeout_ms);

/* A libpq connection of the test's own to the world's database, over the socket; the caller
 * PQfinish()es it. */
struct pg_conn *pgt_world_connect(struct pgt_world *w);

/* Fails the test unless sql's answer is exactly expected. */
void pgt_world_assert_q(struct pgt_world *w, const char *sql, const char *expected);

#endif
