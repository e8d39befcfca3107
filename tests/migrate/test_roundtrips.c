/* The statements the server sees on the way to COMMAND, read from its own log (log_statement):
 * at head only the readiness check and one history read; with work pending, still the lock. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pgt.h"
#include "pgt_hooks.h"
#include "pgt_world.h"

PGT_SHARED_PG_HOOKS()

#define PREFIX "%m [%p] db=%d "

/* Log every statement of w's database, each line naming the database (the server is shared by
 * this file's tests). Returns the log's size now: what a run adds comes after it. */
static long log_statements(struct pgt_world *w)
{
    char sql[256], path[300];
    free(pgt_pg_query(w->pg, "postgres", "ALTER SYSTEM SET log_line_prefix = '" PREFIX "'"));
    free(pgt_pg_query(w->pg, "postgres", "SELECT pg_reload_conf()"));
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" SET log_statement = 'all'", w->db);
    free(pgt_pg_query(w->pg, "postgres", sql));
    /* A reload reaches new sessions once the postmaster has read it: poll for it. */
    int64_t until = pgt_now_ms() + 10000;
    for (;;) {
        char *v = pgt_pg_query(w->pg, "postgres", "SHOW log_line_prefix");
        int done = strcmp(v, PREFIX) == 0;
        free(v);
        if (done)
            break;
        cr_assert(pgt_now_ms() < until, "the server did not take the new log_line_prefix");
    }
    snprintf(path, sizeof path, "%s/server.log", w->pg->dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no server log at %s", path);
    return (long)st.st_size;
}

/* The statements of w's database logged after offset, one per line (text after "LOG:  "),
 * malloc'd; *count says how many. */
static char *statements_since(struct pgt_world *w, long offset, int *count)
{
    char path[300], tag[96];
    snprintf(path, sizeof path, "%s/server.log", w->pg->dir);
    snprintf(tag, sizeof tag, " db=%s LOG:  ", w->db);
    char *log = pgt_read_file(path);
    cr_assert_not_null(log);
    cr_assert((long)strlen(log) >= offset, "the server log shrank");
    size_t cap = strlen(log) + 1, len = 0;
    char *out = calloc(1, cap);
    cr_assert_not_null(out);
    *count = 0;
    for (char *line = log + offset; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char *at = strstr(line, tag);
        if (at && at < line + n) {
            const char *text = at + strlen(tag);
            if (strncmp(text, "statement: ", 11) == 0 || strncmp(text, "execute ", 8) == 0) {
                size_t k = n - (size_t)(text - line);
                memcpy(out + len, text, k);
                len += k;
                out[len++] = '\n';
                (*count)++;
            }
        }
        line += n + (end ? 1 : 0);
    }
    free(log);
    return out;
}

static int occurrences(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A world whose history holds 0001 (applied by a first upgrade). */
static void world_at_0001(struct pgt_world *w)
{
    struct pgt_proc p;
    pgt_world_init(w, NULL);
    pgt_world_file(w, "0001_a.up.sql", "CREATE TABLE a (id int);\n");
    int rc = pgt_world_run(w, &p, "upgrade", NULL);
    cr_assert_eq(rc, 0, "first upgrade: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
}

Test(roundtrips, at_head_the_server_sees_the_check_and_one_history_read, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_at_0001(&w);

    long off = log_statements(&w);
    int rc = pgt_world_run(&w, &p, "--", "true", NULL);
    cr_assert_eq(rc, 0, "run at head: %d\n%s", rc, p.err);
    cr_assert(strstr(p.err, "database is up to date"), "%s", p.err);
    pgt_proc_free(&p);
    int n = 0;
    char *seen = statements_since(&w, off, &n);
    /* The readiness check, then the history: no lock, no other question on the way. */
    cr_assert_eq(n, 2, "statements at head:\n%s", seen);
    cr_assert(strstr(seen, "statement: SELECT ") == seen, "the check comes first:\n%s", seen);
    cr_assert(strstr(seen, "FROM \"pgentry_migrations\""), "the history is read:\n%s", seen);
    cr_assert_null(strstr(seen, "advisory"), "no lock at head:\n%s", seen);
    free(seen);

    /* The read-only reports need no lock either. */
    off = log_statements(&w);
    rc = pgt_world_run(&w, &p, "current", NULL);
    cr_assert_eq(rc, 0, "current: %d\n%s", rc, p.err);
    cr_assert(strstr(p.out, "0001"), "%s", p.out);
    pgt_proc_free(&p);
    seen = statements_since(&w, off, &n);
    cr_assert_eq(n, 2, "statements of current:\n%s", seen);
    free(seen);
}

Test(roundtrips, with_work_pending_the_lock_is_taken_and_the_history_read_again, .timeout = 60)
{
    struct pgt_world w;
    struct pgt_proc p;
    world_at_0001(&w);
    pgt_world_file(&w, "0002_b.up.sql", "CREATE TABLE b (id int);\n");
    long off = log_statements(&w);
    int rc = pgt_world_run(&w, &p, "--", "true", NULL);
    cr_assert_eq(rc, 0, "run with one pending: %d\n%s", rc, p.err);
    pgt_proc_free(&p);
    int n = 0;
    char *seen = statements_since(&w, off, &n);
    /* The lock's key needs the database's name and the schema: asked once, with the lock. */
    cr_assert_eq(occurrences(seen, "current_database()"), 1, "%s", seen);
    cr_assert_eq(occurrences(seen, "pg_try_advisory_lock"), 1, "%s", seen);
    cr_assert_eq(occurrences(seen, "pg_advisory_unlock"), 1, "%s", seen);
    /* Once without the lock (pending), once under it (still pending?), then applied. */
    const char *lock = strstr(seen, "pg_try_advisory_lock");
    const char *first = strstr(seen, "FROM \"pgentry_migrations\"");
    cr_assert(first && first < lock, "the history is read before the lock:\n%s", seen);
    cr_assert(strstr(lock, "FROM \"pgentry_migrations\""), "and again under it:\n%s", seen);
    cr_assert(strstr(lock, "CREATE TABLE b"), "the migration runs under the lock:\n%s", seen);
    free(seen);
    pgt_world_assert_q(&w, "SELECT count(*) FROM pgentry_migrations", "2");
}
