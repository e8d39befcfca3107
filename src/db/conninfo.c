/* The database connection settings: parsed once, hosts listed for our own async DNS. */
#include "pgentry/db/conninfo.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/config/config.h"
#include "pgentry/common/log.h"
#include "pgentry/common/redact.h"

static void add_secret(const char *password, void *arg)
{
    (void)arg;
    pge_log_add_secret(password);
}

static int push_kv(struct pge_conninfo *p, const char *k, const char *v)
{
    char **ks = realloc(p->keywords, (p->n + 2) * sizeof *ks);
    if (!ks)
        return -1;
    p->keywords = ks;
    char **vs = realloc(p->values, (p->n + 2) * sizeof *vs);
    if (!vs)
        return -1;
    p->values = vs;
    ks[p->n] = strdup(k);
    vs[p->n] = strdup(v);
    ks[p->n + 1] = NULL;
    vs[p->n + 1] = NULL;
    if (!ks[p->n] || !vs[p->n]) {
        free(ks[p->n]);
        free(vs[p->n]);
        ks[p->n] = vs[p->n] = NULL;
        return -1;
    }
    p->n++;
    return 0;
}

/* Noticing a dead peer: a silent network partition (no RST, no FIN) ends every connection
 * within 30 s in every phase. Idle (waiting for a long statement's answer): 10 s, then 3
 * probes 5 s apart; with data unacknowledged: tcp_user_timeout. Ignored on Unix sockets. */
static const char *const tcp_defaults[][2] = {
    {"keepalives", "1"},       {"keepalives_idle", "10"},     {"keepalives_interval", "5"},
    {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
};

static int has_keyword(const struct pge_conninfo *p, const char *k)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->keywords[i], k) == 0)
            return 1;
    return 0;
}

/* Each default the user did not set explicitly. */
static int add_tcp_defaults(struct pge_conninfo *p)
{
    for (size_t i = 0; i < sizeof tcp_defaults / sizeof tcp_defaults[0]; i++)
        if (!has_keyword(p, tcp_defaults[i][0]) &&
            push_kv(p, tcp_defaults[i][0], tcp_defaults[i][1]) < 0)
            return -1;
    return 0;
}

/* Split a comma-separated libpq list ("a,b") into at most max owned strings. */
static int split_list(const char *s, char **out, size_t max, size_t *n)
{
    *n = 0;
    if (!s)
        return 0;
    for (;;) {
        size_t len = strcspn(s, ",");
        if (*n == max)
            return -1;
        out[*n] = strndup(s, len);
        if (!out[*n])
            return -1;
        (*n)++;
        if (s[len] != ',')
            return 0;
        s += len + 1;
    }
}

/* Whether a postgres:// URL has more than one '@' before its path. libpq splits the
 * userinfo at the first '@', pge_redact() at the last: with an unencoded '@' in the password
 * the readings disagree, and the tail of the password ("ss@host" of "p@ss@host") would reach
 * libpq's messages as a host name. */
static int ambiguous_userinfo(const char *url)
{
    static const char *const schemes[] = {"postgresql://", "postgres://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t slen = strlen(schemes[i]);
        if (strncmp(url, schemes[i], slen) != 0)
            continue;
        const char *auth = url + slen;
        size_t alen = strcspn(auth, "/");
        const char *first = memchr(auth, '@', alen);
        return first && memchr(first + 1, '@', alen - (size_t)(first + 1 - auth)) != NULL;
    }
    return 0;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
}

int pge_conninfo_parse(struct pge_conninfo *out, const char *url, char **envp, char *err,
                       size_t errsize)
{
    PQconninfoOption *opts = NULL;
    char *perr = NULL;
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    char *hosts[PGE_CONNINFO_MAX_HOSTS], *addrs[PGE_CONNINFO_MAX_HOSTS],
        *ports[PGE_CONNINFO_MAX_HOSTS];
    size_t nh = 0, na = 0, np = 0;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!url)
        url = "";
    /* Secrets first: nothing below may print the URL before the scrubber knows them. */
    pge_redact_each_password(url, add_secret, NULL);
    const char *envpw = pge_config_getenv(envp, "PGPASSWORD");
    if (envpw)
        pge_log_add_secret(envpw);

    char display[1024];
    if (url[0])
        pge_redact(url, display, sizeof display);
    else
        snprintf(display, sizeof display, "PG* environment variables");
    out->display = strdup(display);
    if (!out->display)
        goto oom;

    if (ambiguous_userinfo(url)) {
        /* display masks up to the last '@': it shows no part of the password. */
        snprintf(err, errsize,
                 "malformed database URL %s: more than one '@' before the host: "
                 "percent-encode @ in the password as %%40",
                 display);
        goto done;
    }
    opts = PQconninfoParse(url, &perr);
    if (!opts) {
        char clean[512];
        /* libpq's message may quote part of the URL: scrub it like everything else. */
        pge_redact(perr ? perr : "out of memory", clean, sizeof clean);
        clean[strcspn(clean, "\n")] = '\0';
        snprintf(err, errsize,
                 "malformed database URL %s: %s; expected "
                 "postgres://user:password@host:5432/dbname or \"host=... dbname=...\"",
                 display, clean);
        goto done;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            pge_log_add_secret(o->val);
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (push_kv(out, o->keyword, o->val) < 0)
            goto oom;
        if (strcmp(o->keyword, "service") == 0 && o->val[0])
            out->uses_service = 1;
    }
    if (add_tcp_defaults(out) < 0)
        goto oom;
    if (!host || !host[0])
        host = pge_config_getenv(envp, "PGHOST");
    if (!hostaddr || !hostaddr[0])
        hostaddr = pge_config_getenv(envp, "PGHOSTADDR");
    if (!port || !port[0])
        port = pge_config_getenv(envp, "PGPORT");
    const char *svc = pge_config_getenv(envp, "PGSERVICE");
    if (svc && svc[0])
        out->uses_service = 1;

    if ((host && host[0] && split_list(host, hosts, PGE_CONNINFO_MAX_HOSTS, &nh) < 0) ||
        (hostaddr && hostaddr[0] && split_list(hostaddr, addrs, PGE_CONNINFO_MAX_HOSTS, &na) < 0) ||
        (port && port[0] && split_list(port, ports, PGE_CONNINFO_MAX_HOSTS, &np) < 0)) {
        snprintf(err, errsize, "database URL %s: more than %d hosts, or out of memory", display,
                 PGE_CONNINFO_MAX_HOSTS);
        goto done;
    }
    if (na > 0 && nh > 0 && na != nh) {
        snprintf(err, errsize, "database URL %s: %zu hosts but %zu hostaddr values", display, nh,
                 na);
        goto done;
    }
    if (np > 1 && np != (nh ? nh : na)) {
        snprintf(err, errsize, "database URL %s: %zu ports for %zu hosts", display, np,
                 nh ? nh : na);
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        char *end = NULL;
        long v = strtol(ports[i], &end, 10);
        if (ports[i][0] && (*end || v < 1 || v > 65535)) {
            snprintf(err, errsize,
                     "malformed database URL %s: port \"%s\" is not a number from 1 "
                     "to 65535",
                     display, ports[i]);
            goto done;
        }
    }
    size_t count = nh ? nh : na;
    for (size_t i = 0; i < count; i++) {
        struct pge_conninfo_host *h = &out->hosts[i];
        const char *hn = nh ? hosts[i] : "";
        const char *pn = np == 0 ? "5432" : np == 1 ? ports[0] : ports[i];
        h->host = strdup(hn);
        h->port = strdup(pn[0] ? pn : "5432");
        h->hostaddr = na && addrs[i][0] ? strdup(addrs[i]) : NULL;
        /* libpq reads an empty entry ("host=a,,b") as its default socket directory: there is
         * no name to resolve. With a hostaddr, the connection is TCP whatever host says. */
        h->is_socket = !h->hostaddr && (hn[0] == '\0' || hn[0] == '/' || hn[0] == '@');
        out->nhosts++;
        if (!h->host || !h->port || (na && addrs[i][0] && !h->hostaddr))
            goto oom;
    }
    if (count == 0 && np == 1) {
        /* Default host (the socket directory) with an explicit port: keep the port. */
        if (push_kv(out, "port", ports[0]) < 0)
            goto oom;
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, errsize, "out of memory");
done:
    free_strs(hosts, nh);
    free_strs(addrs, na);
    free_strs(ports, np);
    PQconninfoFree(opts);
    PQfreemem(perr);
    return rc;
}

void pge_conninfo_free(struct pge_conninfo *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->keywords[i]);
        free(p->values[i]);
    }
    free(p->keywords);
    free(p->values);
    for (size_t i = 0; i < p->nhosts; i++) {
        free(p->hosts[i].host);
        free(p->hosts[i].port);
        free(p->hosts[i].hostaddr);
    }
    free(p->display);
    memset(p, 0, sizeof *p);
}
