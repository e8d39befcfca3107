/* The database connection settings: parsed once, hosts listed for our own async DNS. */
#ifndef PGENTRY_DB_CONNINFO_H
#define PGENTRY_DB_CONNINFO_H

#include <stddef.h>

#define PGE_CONNINFO_MAX_HOSTS 8

struct pge_conninfo_host {
    char *host;     /* as given: a name, an IP literal, or a socket directory ("/run/...") */
    char *port;     /* "5432" when not given */
    char *hostaddr; /* given explicitly by the user, or NULL */
    int is_socket;  /* a Unix-domain socket directory: nothing to resolve */
};

/* Which server a connection must reach: libpq's target_session_attrs, judged by pgentry itself
 * (it tries the hosts one by one). READ_WRITE, the default, is what migrations need. */
enum pge_conninfo_target {
    PGE_CONNINFO_READ_WRITE = 0, /* not in recovery, transactions not read-only */
    PGE_CONNINFO_PRIMARY,        /* not in recovery */
    PGE_CONNINFO_ANY,            /* any server that accepts the connection */
    PGE_CONNINFO_READ_ONLY,      /* in recovery, or default_transaction_read_only on */
    PGE_CONNINFO_STANDBY,        /* in recovery */
    PGE_CONNINFO_PREFER_STANDBY, /* a standby if one answers, else any server */
};

/* Plain data owned by the caller; release with pge_conninfo_free(). */
struct pge_conninfo {
    char **keywords; /* every explicitly set option except host/hostaddr/port: n of them, */
    char **values;   /* NULL-terminated when n > 0, NULL when n == 0 */
    size_t n;
    struct pge_conninfo_host hosts[PGE_CONNINFO_MAX_HOSTS];
    size_t nhosts;
    int uses_service; /* a service file may say where the server is: resolved by libpq */
    enum pge_conninfo_target target; /* target_session_attrs (not among keywords); callers may
                                        raise it to READ_WRITE when they will write */
    int target_explicit;             /* the settings named target_session_attrs */
    char *display;                   /* redacted, for logs: "postgres://app:***@db:5432/app" */
    char *password_file;             /* --password-file: read before every attempt, or NULL */
    char *password_command;          /* --password-command: run before every attempt, or NULL */
};

/* Parse url (a postgres:// or postgresql:// URI, also in SQLAlchemy's postgresql+DRIVER://
 * form whose +DRIVER part is dropped, or a key=value conninfo; NULL or "" means "libpq's PG*
 * variables only") together with envp's PGHOST/PGPORT/PGHOSTADDR/PGSERVICE. Registers any
 * password with the logger's secret scrubber before anything can print it. A named service
 * (service= or PGSERVICE) must be defined in the service files libpq reads: they are read
 * here, synchronously, so call this before the event loop runs. Returns 0, or -1 with a
 * one-line message in err that shows no password (malformed URL, unknown scheme, unknown
 * service: the caller exits 78). Always free out.
 * TCP keepalives (keepalives=1, keepalives_idle=10, keepalives_interval=5,
 * keepalives_count=3) and tcp_user_timeout=30000 are added to the options, each unless url
 * sets it: a silent partition is noticed within 30 s. */
int pge_conninfo_parse(struct pge_conninfo *out, const char *url, char **envp, char *err,
                       size_t errsize);

/* libpq's name of t ("read-write", ...). Static string. */
const char *pge_conninfo_target_name(enum pge_conninfo_target t);

/* Where every attempt takes the password from, instead of any password in the URL: file or
 * command (at most one, the other NULL) is copied. Returns 0, or -1 when out of memory. */
int pge_conninfo_set_password_source(struct pge_conninfo *p, const char *file, const char *command);

/* Free everything p owns and zero it. NULL-safe; safe after a failed parse. */
void pge_conninfo_free(struct pge_conninfo *p);

#endif
