/* PQconnectStartParams() on a worker thread, for settings only libpq can resolve (a service). */
#include "pgentry/db/pgstart.h"

#include <stdlib.h>
#include <string.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/db/pgcheck.h"

struct pge_pgstart {
    struct pge_workqueue_job job;
    pge_pgstart_cb cb; /* NULL once abandoned */
    void *arg;
    const char **kw;
    const char **val;
    char *strings;  /* copies of the settings: the attempt and its params may go meanwhile */
    char *password; /* the job's own copy (wiped on release), or NULL */
    PGconn *conn;
};

static void start_work(struct pge_workqueue_job *job)
{
    struct pge_pgstart *j = (struct pge_pgstart *)job;
    j->conn = PQconnectStartParams(j->kw, j->val, 0);
}

static void start_release(struct pge_workqueue_job *job)
{
    struct pge_pgstart *j = (struct pge_pgstart *)job;
    if (j->conn)
        PQfinish(j->conn);
    free(j->kw);
    free(j->val);
    free(j->strings);
    if (j->password) {
        explicit_bzero(j->password, strlen(j->password));
        free(j->password);
    }
    free(j);
}

static void start_done(struct pge_workqueue_job *job)
{
    struct pge_pgstart *j = (struct pge_pgstart *)job;
    PGconn *conn = j->conn;
    if (!j->cb)
        return;
    j->conn = NULL;
    j->cb(j->arg, conn);
}

void pge_pgstart_cancel(struct pge_pgstart *s)
{
    if (!s)
        return;
    s->cb = NULL;
    pge_workqueue_cancel(&s->job);
}

struct pge_pgstart *pge_pgstart_submit(struct pge_workqueue *off, const struct pge_conninfo *p,
                                       const char *password, pge_pgstart_cb cb, void *arg,
                                       char *err, size_t errsize)
{
    struct pge_pgstart *j = calloc(1, sizeof *j);
    const char *why = "out of memory";
    if (!j)
        goto error;
    j->job.work = start_work;
    j->job.done = start_done;
    j->job.release = start_release;
    j->kw = calloc(p->n + 4, sizeof *j->kw);
    j->val = calloc(p->n + 4, sizeof *j->val);
    size_t total = 1;
    for (size_t i = 0; i < p->n; i++)
        total += strlen(p->keywords[i]) + strlen(p->values[i]) + 2;
    j->strings = malloc(total);
    if (!j->kw || !j->val || !j->strings)
        goto error;
    /* The thread reads its own copies: freeing the attempt (or params, at shutdown) while
     * PQconnectStartParams() runs must not pull them away. The same for the password. */
    char *pool = j->strings;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (password && strcmp(p->keywords[i], "password") == 0)
            continue;
        j->kw[k] = pool;
        pool = stpcpy(pool, p->keywords[i]) + 1;
        j->val[k++] = pool;
        pool = stpcpy(pool, p->values[i]) + 1;
    }
    if (password) {
        if (!(j->password = strdup(password)))
            goto error;
        j->kw[k] = "password";
        j->val[k++] = j->password;
    }
    j->kw[k] = "fallback_application_name";
    j->val[k++] = pge_pgcheck_application_name();
    /* pgentry judges the server itself: PGTARGETSESSIONATTRS must not judge it too. */
    j->kw[k] = "target_session_attrs";
    j->val[k] = "any";
    j->cb = cb;
    j->arg = arg;
    if (pge_workqueue_submit(off, &j->job) < 0) {
        why = "could not start a connection thread";
        goto error;
    }
    return j;
error:
    if (j)
        start_release(&j->job);
    pge_errbuf_set(err, errsize, "%s", why);
    return NULL;
}
