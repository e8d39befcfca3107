/* Resolve HOST:PORT for TCP on a work-queue thread (getaddrinfo blocks); answer on the loop. */
#include "pgentry/net/resolve.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/errbuf.h"

/* The job owns copies of everything the thread reads: the caller may cancel and free its own
 * memory while getaddrinfo() still runs. */
struct pge_resolve {
    struct pge_workqueue_job job;
    pge_resolve_cb cb;
    void *arg;
    char *host;
    char *port;
    struct pge_resolve_addr addrs[PGE_RESOLVE_MAX_ADDRS];
    size_t n;
    int gai_error;
};

static int lookup(const char *host, const char *port, int flags, struct pge_resolve_addr *out,
                  size_t max, size_t *n)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rc;
    *n = 0;
    for (struct addrinfo *a = res; a && *n < max; a = a->ai_next) {
        if (a->ai_addrlen > sizeof out[*n].ss)
            continue;
        memcpy(&out[*n].ss, a->ai_addr, a->ai_addrlen);
        out[*n].len = a->ai_addrlen;
        (*n)++;
    }
    freeaddrinfo(res);
    return 0;
}

int pge_resolve_numeric(const char *host, const char *port, struct pge_resolve_addr *out,
                        size_t max)
{
    size_t n = 0;
    if (lookup(host, port, AI_NUMERICHOST, out, max, &n) != 0)
        return -1;
    return (int)n;
}

static void resolve_work(struct pge_workqueue_job *job)
{
    struct pge_resolve *r = (struct pge_resolve *)job;
    r->gai_error = lookup(r->host, r->port, AI_ADDRCONFIG, r->addrs, PGE_RESOLVE_MAX_ADDRS, &r->n);
    if (r->gai_error == 0 && r->n == 0)
        r->gai_error = EAI_NONAME;
}

static void resolve_done(struct pge_workqueue_job *job)
{
    struct pge_resolve *r = (struct pge_resolve *)job;
    char msg[512];
    if (r->gai_error == 0) {
        r->cb(r->arg, r->addrs, r->n, NULL);
        return;
    }
    pge_errbuf_set(msg, sizeof msg, "could not resolve host \"%s\": %s", r->host,
                   gai_strerror(r->gai_error));
    r->cb(r->arg, NULL, 0, msg);
}

static void resolve_release(struct pge_workqueue_job *job)
{
    struct pge_resolve *r = (struct pge_resolve *)job;
    free(r->host);
    free(r->port);
    free(r);
}

struct pge_resolve *pge_resolve_start(struct pge_workqueue *wq, const char *host, const char *port,
                                      pge_resolve_cb cb, void *arg, char *err, size_t errsize)
{
    struct pge_resolve *r = calloc(1, sizeof *r);
    if (!r || !(r->host = strdup(host)) || !(r->port = strdup(port))) {
        pge_errbuf_set(err, errsize, "out of memory");
        goto fail;
    }
    r->job.work = resolve_work;
    r->job.done = resolve_done;
    r->job.release = resolve_release;
    r->cb = cb;
    r->arg = arg;
    if (pge_workqueue_submit(wq, &r->job) < 0) {
        pge_errbuf_set(err, errsize, "could not start a resolver thread");
        goto fail;
    }
    return r;
fail:
    if (r)
        resolve_release(&r->job);
    return NULL;
}

void pge_resolve_cancel(struct pge_resolve *r)
{
    if (r)
        pge_workqueue_cancel(&r->job);
}
