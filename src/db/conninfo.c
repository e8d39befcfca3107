/* The database connection settings: parsed once, hosts listed for our own async DNS. */
#include "pgentry/db/conninfo.h"

#include <ctype.h>
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

/* Scheme and user part of a URL, checked before libpq reads it. libpq takes postgres:// and
 * postgresql:// only; an application's SQLAlchemy URL (postgresql+asyncpg://) carries a
 * +DRIVER part that is dropped here. The user part is everything up to the last '@' for
 * pge_redact() but up to the first '@' before any '/' for libpq: when the two readings
 * disagree (an unencoded '@' or '/' in the password), libpq would take part of the password
 * for a host or a database name and print it in its messages, so such a URL is refused.
 * Returns 0 with *libpq_url (owned, NULL for a conninfo) or -1 with a message. */
static int check_url(const char *url, const char *display, char **libpq_url, char *err,
                     size_t errsize)
{
    /* A URL exactly when the redactor reads it as one. */
    size_t i = pge_redact_url_scheme(url), base;
    *libpq_url = NULL;
    if (i == 0)
        return 0;
    base = strcspn(url, "+");
    base = base < i ? base : i;
    int known = (base == 8 && strncmp(url, "postgres", 8) == 0) ||
                (base == 10 && strncmp(url, "postgresql", 10) == 0);
    for (size_t k = base + 1; known && k < i; k++)
        known = isalnum((unsigned char)url[k]) || url[k] == '_';
    if (!known || base + 1 == i) {
        snprintf(err, errsize,
                 "unsupported database URL scheme \"%.*s\" in %s: use "
                 "postgresql://user:password@host:5432/dbname (postgresql+DRIVER:// is accepted "
                 "too) or \"host=... dbname=...\"",
                 (int)(i > 40 ? 40 : i), url, display);
        return -1;
    }
    const char *auth = url + i + 3;
    size_t alen = strcspn(auth, "/");
    const char *first_at = memchr(auth, '@', alen);
    if (first_at && memchr(first_at + 1, '@', alen - (size_t)(first_at + 1 - auth))) {
        snprintf(err, errsize,
                 "malformed database URL %s: more than one '@' before the host: "
                 "percent-encode @ in the password as %%40",
                 display);
        return -1;
    }
    if (auth[alen] == '/' && memchr(auth + alen, '@', strcspn(auth + alen, "?"))) {
        snprintf(err, errsize,
                 "malformed database URL %s: an '@' after a '/': percent-encode / in the "
                 "password as %%2F (and @ as %%40)",
                 display);
        return -1;
    }
    *libpq_url = malloc(strlen(url) + 1);
    if (!*libpq_url) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    memcpy(*libpq_url, url, base);
    strcpy(*libpq_url + base, url + i);
    return 0;
}

static const char *const target_names[] = {
    [PGE_CONNINFO_READ_WRITE] = "read-write",
    [PGE_CONNINFO_PRIMARY] = "primary",
    [PGE_CONNINFO_ANY] = "any",
    [PGE_CONNINFO_READ_ONLY] = "read-only",
    [PGE_CONNINFO_STANDBY] = "standby",
    [PGE_CONNINFO_PREFER_STANDBY] = "prefer-standby",
};

const char *pge_conninfo_target_name(enum pge_conninfo_target t)
{
    return (size_t)t < sizeof target_names / sizeof target_names[0] ? target_names[t] : "?";
}

/* target_session_attrs stays out of the keywords: pgentry connects to one host at a time and
 * judges the server itself. Returns -1 for a value libpq would refuse too. */
static int parse_target(struct pge_conninfo *out, const char *value)
{
    for (size_t i = 0; i < sizeof target_names / sizeof target_names[0]; i++) {
        if (strcmp(value, target_names[i]) == 0) {
            out->target = (enum pge_conninfo_target)i;
            out->target_explicit = 1;
            return 0;
        }
    }
    return -1;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
}

/* Keep every explicitly set option but host/hostaddr/port (returned for split_hosts()). */
static int take_options(struct pge_conninfo *out, PQconninfoOption *opts, const char **host,
                        const char **hostaddr, const char **port, char *err, size_t errsize)
{
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            pge_log_add_secret(o->val);
        if (strcmp(o->keyword, "host") == 0)
            *host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            *hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            *port = o->val;
        else if (strcmp(o->keyword, "target_session_attrs") == 0) {
            if (parse_target(out, o->val) < 0) {
                snprintf(err, errsize,
                         "database URL %s: target_session_attrs \"%.40s\" is not one of "
                         "any, read-write, primary, read-only, standby, prefer-standby",
                         out->display, o->val);
                return -1;
            }
        } else if (push_kv(out, o->keyword, o->val) < 0) {
            snprintf(err, errsize, "out of memory");
            return -1;
        }
        if (strcmp(o->keyword, "service") == 0 && o->val[0])
            out->uses_service = 1;
    }
    return 0;
}

/* The host, hostaddr and port lists (URL first, then PG* variables) into out->hosts. */
static int split_hosts(struct pge_conninfo *out, const char *host, const char *hostaddr,
                       const char *port, int port_in_url, char *err, size_t errsize)
{
    char *hosts[PGE_CONNINFO_MAX_HOSTS], *addrs[PGE_CONNINFO_MAX_HOSTS],
        *ports[PGE_CONNINFO_MAX_HOSTS];
    size_t nh = 0, na = 0, np = 0;
    int rc = -1;

    if ((host && host[0] && split_list(host, hosts, PGE_CONNINFO_MAX_HOSTS, &nh) < 0) ||
        (hostaddr && hostaddr[0] && split_list(hostaddr, addrs, PGE_CONNINFO_MAX_HOSTS, &na) < 0) ||
        (port && port[0] && split_list(port, ports, PGE_CONNINFO_MAX_HOSTS, &np) < 0)) {
        snprintf(err, errsize, "database URL %s: more than %d hosts, or out of memory",
                 out->display, PGE_CONNINFO_MAX_HOSTS);
        goto done;
    }
    if (na > 0 && nh > 0 && na != nh) {
        snprintf(err, errsize, "database URL %s: %zu hosts but %zu hostaddr values", out->display,
                 nh, na);
        goto done;
    }
    if (np > 1 && np != (nh ? nh : na)) {
        snprintf(err, errsize, "database URL %s: %zu ports for %zu hosts", out->display, np,
                 nh ? nh : na);
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        char *end = NULL;
        long v = strtol(ports[i], &end, 10);
        if (ports[i][0] && (*end || v < 1 || v > 65535)) {
            /* From the URL, quoted only when the redacted URL shows it: a password with an
             * unencoded '/' may have lent it its first characters. */
            int shown = !port_in_url || strstr(out->display, ports[i]) != NULL;
            snprintf(err, errsize,
                     "malformed database URL %s: port %s%s%sis not a number from 1 "
                     "to 65535",
                     out->display, shown ? "\"" : "", shown ? ports[i] : "", shown ? "\" " : "");
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
    /* Default host (the socket directory) with an explicit port: keep the port. */
    if (count == 0 && np == 1 && push_kv(out, "port", ports[0]) < 0)
        goto oom;
    rc = 0;
    goto done;
oom:
    snprintf(err, errsize, "out of memory");
done:
    free_strs(hosts, nh);
    free_strs(addrs, na);
    free_strs(ports, np);
    return rc;
}

/* A value libpq refuses after it has read the service files and before it opens a socket
 * (connectOptions2): the probe below never reaches the network. */
#define SERVICE_PROBE_SSLMODE "pgentry-service-probe"

/* A named service must exist now, not after a minute of retries. libpq reads the service
 * files itself (PGSERVICEFILE or ~/.pg_service.conf, then its sysconfdir or PGSYSCONFDIR), so
 * it is asked: a connection started with an sslmode it refuses stops right after the service
 * lookup. Reads files synchronously: call before the event loop runs. */
static int check_service(const struct pge_conninfo *out, char **envp, char *err, size_t errsize)
{
    const char *kw[72], *val[72];
    const char *name = NULL, *from = "the database URL";
    size_t k = 0;
    int rc = 0;

    for (size_t i = 0; i < out->n && k < 64; i++) {
        if (strcmp(out->keywords[i], "sslmode") == 0)
            continue;
        if (strcmp(out->keywords[i], "service") == 0)
            name = out->values[i];
        kw[k] = out->keywords[i];
        val[k++] = out->values[i];
    }
    if (!name || !name[0]) {
        name = pge_config_getenv(envp, "PGSERVICE");
        from = "PGSERVICE";
        kw[k] = "service";
        val[k++] = name;
    }
    kw[k] = "sslmode";
    val[k++] = SERVICE_PROBE_SSLMODE;
    kw[k] = NULL;
    val[k] = NULL;
    PGconn *c = PQconnectStartParams(kw, val, 0);
    const char *msg = c ? PQerrorMessage(c) : "out of memory";
    if (!c || (PQstatus(c) == CONNECTION_BAD && !strstr(msg, SERVICE_PROBE_SSLMODE) &&
               strstr(msg, "service"))) {
        const char *file = pge_config_getenv(envp, "PGSERVICEFILE");
        const char *sys = pge_config_getenv(envp, "PGSYSCONFDIR");
        rc = -1;
        if (c && strstr(msg, "definition of service"))
            snprintf(err, errsize,
                     "database service \"%s\" (from %s) is not defined: no [%s] section in "
                     "%s%s or %s%s; add one, or set PGSERVICEFILE to the file that has it",
                     name, from, name, file ? file : "~/.pg_service.conf",
                     file ? " (PGSERVICEFILE)" : "", sys ? sys : "the system-wide pg_service.conf",
                     sys ? "/pg_service.conf (PGSYSCONFDIR)"
                         : " (in libpq's sysconfdir, or set "
                           "PGSYSCONFDIR)");
        else
            snprintf(err, errsize, "database service \"%s\" (from %s): %.*s", name, from,
                     (int)strcspn(msg, "\n"), msg);
    } else if (c) {
        /* The service file may hold a password: it is a secret like any other. */
        PQconninfoOption *opts = PQconninfo(c);
        for (PQconninfoOption *o = opts; o && o->keyword; o++)
            if (strcmp(o->keyword, "password") == 0 && o->val)
                pge_log_add_secret(o->val);
        PQconninfoFree(opts);
    }
    PQfinish(c);
    return rc;
}

int pge_conninfo_parse(struct pge_conninfo *out, const char *url, char **envp, char *err,
                       size_t errsize)
{
    PQconninfoOption *opts = NULL;
    char *perr = NULL, *libpq_url = NULL;
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
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

    if (check_url(url, display, &libpq_url, err, errsize) < 0)
        goto done;
    opts = PQconninfoParse(libpq_url ? libpq_url : url, &perr);
    if (!opts) {
        char clean[512];
        /* libpq's message may quote the URL, whole or in pieces. */
        pge_redact_message(perr ? perr : "out of memory", libpq_url ? libpq_url : url, clean,
                           sizeof clean);
        clean[strcspn(clean, "\n")] = '\0';
        snprintf(err, errsize,
                 "malformed database URL %s: %s; expected "
                 "postgres://user:password@host:5432/dbname or \"host=... dbname=...\"",
                 display, clean);
        goto done;
    }
    if (take_options(out, opts, &host, &hostaddr, &port, err, errsize) < 0)
        goto done;
    if (add_tcp_defaults(out) < 0)
        goto oom;
    if (!host || !host[0])
        host = pge_config_getenv(envp, "PGHOST");
    if (!hostaddr || !hostaddr[0])
        hostaddr = pge_config_getenv(envp, "PGHOSTADDR");
    int port_in_url = port && port[0];
    if (!port_in_url)
        port = pge_config_getenv(envp, "PGPORT");
    const char *tsa = pge_config_getenv(envp, "PGTARGETSESSIONATTRS");
    if (!out->target_explicit && tsa && tsa[0] && parse_target(out, tsa) < 0) {
        snprintf(err, errsize,
                 "PGTARGETSESSIONATTRS \"%.40s\" is not one of any, read-write, primary, "
                 "read-only, standby, prefer-standby",
                 tsa);
        goto done;
    }
    const char *svc = pge_config_getenv(envp, "PGSERVICE");
    if (svc && svc[0])
        out->uses_service = 1;
    if (split_hosts(out, host, hostaddr, port, port_in_url, err, errsize) < 0)
        goto done;
    if (out->uses_service && check_service(out, envp, err, errsize) < 0)
        goto done;
    rc = 0;
    goto done;
oom:
    snprintf(err, errsize, "out of memory");
done:
    free(libpq_url);
    PQconninfoFree(opts);
    PQfreemem(perr);
    return rc;
}

int pge_conninfo_set_password_source(struct pge_conninfo *p, const char *file, const char *command)
{
    if (file && !(p->password_file = strdup(file)))
        return -1;
    if (command && !(p->password_command = strdup(command)))
        return -1;
    return 0;
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
    free(p->password_file);
    free(p->password_command);
    memset(p, 0, sizeof *p);
}
