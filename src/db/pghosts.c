/* Where one connection attempt connects: each host's name looked up off the loop, libpq's
 * host/hostaddr/port lists for the host tried now, or libpq itself for a service file. */
#include "pgentry/db/pgconn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pgentry/common/errbuf.h"
#include "pgentry/db/pgcheck.h"
#include "pgconn_int.h"

#define HOSTS_MAX 2048 /* the host and hostaddr lists */
#define PORTS_MAX 512

static int join(char *buf, size_t size, size_t *used, const char *item, int first)
{
    int n = snprintf(buf + *used, size - *used, "%s%s", first ? "" : ",", item);
    if (n < 0 || (size_t)n >= size - *used)
        return -1;
    *used += (size_t)n;
    return 0;
}

/* libpq's host, hostaddr and port lists for the host tried now: one item per address (libpq
 * tries them in order). A host that needed no lookup is its own address ("" for a socket
 * directory). Returns the number of addresses, or -1 when the lists do not fit. */
static int address_lists(const struct pge_pgconn *c, char *hosts, char *addrs, char *ports)
{
    const struct pge_conninfo *p = c->params;
    size_t uh = 0, ua = 0, up = 0;
    int n = 0;
    hosts[0] = addrs[0] = ports[0] = '\0';
    for (size_t i = c->host; i < p->nhosts && i == c->host; i++) {
        const struct pge_conninfo_host *h = &p->hosts[i];
        const struct lookup *l = &c->lookups[i];
        const char *own = h->hostaddr ? h->hostaddr : h->is_socket ? "" : h->host;
        for (size_t k = 0; k < (l->needed ? l->n : 1); k++, n++)
            if (join(hosts, HOSTS_MAX, &uh, h->host, n == 0) < 0 ||
                join(addrs, HOSTS_MAX, &ua, l->needed ? l->addr[k] : own, n == 0) < 0 ||
                join(ports, PORTS_MAX, &up, h->port, n == 0) < 0)
                return -1;
    }
    return n;
}

void pge_pgconn_begin_connect(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    const char *kw[64 + 9];
    const char *val[64 + 9];
    size_t k = 0;
    char hosts[HOSTS_MAX], addrs[HOSTS_MAX], ports[PORTS_MAX];

    for (size_t i = 0; i < p->n && k < 64; i++) {
        if (c->have_password && strcmp(p->keywords[i], "password") == 0)
            continue;
        kw[k] = p->keywords[i];
        val[k++] = p->values[i];
    }
    if (c->have_password) {
        kw[k] = "password";
        val[k++] = c->password;
    }
    if (c->host < p->nhosts && c->lookups[c->host].r) {
        c->step = S_RESOLVE; /* its name is still being looked up: on_resolved() comes back */
        return;
    }
    c->step = S_CONNECT;
    if (c->host < p->nhosts && c->lookups[c->host].needed && c->lookups[c->host].n == 0) {
        pge_pgconn_fail(c, PGE_ATTEMPT_DNS, c->lookups[c->host].error, NULL);
        return;
    }
    int n = address_lists(c, hosts, addrs, ports);
    if (n < 0) {
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, "too many database addresses", NULL);
        return;
    }
    if (n > 0) {
        kw[k] = "host";
        val[k++] = hosts;
        kw[k] = "hostaddr";
        val[k++] = addrs;
        kw[k] = "port";
        val[k++] = ports;
    }
    kw[k] = "fallback_application_name";
    val[k++] = pge_pgcheck_application_name();
    /* One host at a time, judged by pgentry: PGTARGETSESSIONATTRS must not judge it too. */
    kw[k] = "target_session_attrs";
    val[k++] = "any";
    kw[k] = NULL;
    val[k] = NULL;

    pge_pgconn_started(c, PQconnectStartParams(kw, val, 0));
}

static void on_resolved(void *arg, const struct pge_resolve_addr *addrs, size_t n,
                        const char *error)
{
    struct lookup *l = arg;
    struct pge_pgconn *c = l->c;
    l->r = NULL;
    c->resolving--;
    if (error)
        pge_errbuf_set(l->error, sizeof l->error, "%s", error);
    for (size_t k = 0; k < n && l->n < ADDRS_PER_HOST; k++)
        if (getnameinfo((const struct sockaddr *)&addrs[k].ss, addrs[k].len, l->addr[l->n],
                        sizeof l->addr[l->n], NULL, 0, NI_NUMERICHOST) == 0)
            l->n++;
    if (l->n == 0 && !l->error[0])
        pge_errbuf_set(l->error, sizeof l->error, "name did not resolve to an address");
    /* The host waited for: connect now, while later names may still be looked up. */
    if (c->step == S_RESOLVE && l == &c->lookups[c->host])
        pge_pgconn_begin_connect(c);
}

/* Numeric hosts and sockets need no thread; every name gets its own lookup, all at once, so a
 * later host's name is usually known by the time the earlier hosts have been tried. */
static void resolve_and_connect(struct pge_pgconn *c)
{
    const struct pge_conninfo *p = c->params;
    char err[128];

    for (size_t i = 0; i < p->nhosts; i++) {
        const struct pge_conninfo_host *h = &p->hosts[i];
        struct lookup *l = &c->lookups[i];
        l->c = c;
        if (h->hostaddr || h->is_socket || pge_resolve_numeric(h->host, h->port, NULL, 0) >= 0)
            continue;
        l->needed = 1;
        l->r = pge_resolve_start(c->off, h->host, h->port, on_resolved, l, err, sizeof err);
        if (!l->r) {
            c->nsteps = 0; /* no thread: the attempt fails, whatever the other hosts */
            pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, err, NULL);
            return;
        }
        c->resolving++;
    }
    pge_pgconn_begin_connect(c);
}

/* With a service file and no host of our own, only libpq knows the host: let it start the
 * connection (and resolve) on a worker thread; polling then continues on the loop. */
static void start_done(void *arg, PGconn *conn)
{
    struct pge_pgconn *c = arg;
    c->start = NULL;
    pge_pgconn_started(c, conn);
}

static void start_in_thread(struct pge_pgconn *c)
{
    char err[128];
    c->step = S_RESOLVE;
    c->start = pge_pgstart_submit(c->off, c->params, c->have_password ? c->password : NULL,
                                  start_done, c, err, sizeof err);
    if (!c->start)
        pge_pgconn_fail(c, PGE_ATTEMPT_OTHER, err, NULL);
}

void pge_pgconn_connect_now(struct pge_pgconn *c)
{
    c->step = S_RESOLVE;
    if (c->params->nhosts == 0 && c->params->uses_service)
        start_in_thread(c);
    else
        resolve_and_connect(c);
}
