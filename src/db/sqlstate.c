/* Classify PostgreSQL connection failures: retry, refused for good, or misconfigured. Pure. */
#include "pgentry/db/sqlstate.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int is_sqlstate_char(int c)
{
    return isdigit(c) || isupper(c);
}

int pge_sqlstate_sqlstate(const char *message, char out[6])
{
    /* The server's line is "<SEVERITY>:  <SQLSTATE>: <text>"; severity is localized, the two
     * spaces and the code are not. */
    if (!message)
        return -1;
    for (const char *p = strstr(message, ":  "); p; p = strstr(p + 1, ":  ")) {
        const char *c = p + 3;
        int ok = 1;
        for (int i = 0; i < 5; i++)
            ok = ok && is_sqlstate_char((unsigned char)c[i]);
        if (ok && c[5] == ':' && c[6] == ' ') {
            memcpy(out, c, 5);
            out[5] = '\0';
            return 0;
        }
    }
    return -1;
}

static int has(const char *message, const char *needle)
{
    return message && strstr(message, needle) != NULL;
}

enum pge_outcome_kind pge_sqlstate_classify(const char *sqlstate, const char *message,
                                            int needs_password, enum pge_attempt_outcome *outcome)
{
    enum pge_attempt_outcome o = PGE_ATTEMPT_OTHER;
    enum pge_outcome_kind c = PGE_OUT_NOT_READY;

    if (needs_password) {
        o = PGE_ATTEMPT_FATAL;
        c = PGE_OUT_REFUSED;
    } else if (sqlstate && sqlstate[0]) {
        if (strcmp(sqlstate, "28P01") == 0 || strcmp(sqlstate, "28000") == 0 ||
            strcmp(sqlstate, "3D000") == 0 || strcmp(sqlstate, "42501") == 0) {
            /* Bad password, no pg_hba entry / no such role, no database, no CONNECT right:
             * waiting will not change any of them. */
            o = PGE_ATTEMPT_FATAL;
            c = PGE_OUT_REFUSED;
        } else if (strcmp(sqlstate, "57P03") == 0 || strcmp(sqlstate, "57P01") == 0 ||
                   strcmp(sqlstate, "57P02") == 0) {
            o = PGE_ATTEMPT_STARTING;
        } else if (strcmp(sqlstate, "53300") == 0 || strcmp(sqlstate, "53000") == 0 ||
                   strcmp(sqlstate, "53200") == 0) {
            o = PGE_ATTEMPT_TOO_MANY;
        } else if (strcmp(sqlstate, "25006") == 0) {
            o = PGE_ATTEMPT_STANDBY;
        }
    } else if (has(message, "could not translate host name") ||
               has(message, "Name or service not known") ||
               has(message, "Temporary failure in name resolution")) {
        o = PGE_ATTEMPT_DNS;
    } else if (has(message, "timeout expired") || has(message, "timed out")) {
        o = PGE_ATTEMPT_TIMEOUT;
    } else if ((has(message, "invalid ") && has(message, " value")) ||
               has(message, "invalid connection option") ||
               has(message, "server does not support SSL, but SSL was required") ||
               has(message, "invalid sslmode") || has(message, "certificate")) {
        /* TLS set-up that cannot succeed by waiting. */
        o = PGE_ATTEMPT_FATAL;
        c = PGE_OUT_CONFIG;
    } else if (has(message, "Connection refused") || has(message, "No such file or directory") ||
               has(message, "Network is unreachable") || has(message, "No route to host") ||
               has(message, "Connection reset") || has(message, "server closed the connection") ||
               has(message, "Host is unreachable") || has(message, "could not connect")) {
        o = PGE_ATTEMPT_REFUSED;
    }
    if (outcome)
        *outcome = o;
    return c;
}

const char *pge_sqlstate_explain(const char *sqlstate, int needs_password)
{
    if (needs_password)
        return "put the password in DATABASE_URL (postgres://user:PASSWORD@host/db), PGPASSWORD "
               "or a .pgpass file";
    if (!sqlstate)
        return "PostgreSQL refused the connection: see the server's log for why";
    if (strcmp(sqlstate, "28P01") == 0)
        return "check the user and password in DATABASE_URL";
    if (strcmp(sqlstate, "28000") == 0)
        return "add a pg_hba.conf entry for this user and host, or fix the user name (the role "
               "may not exist)";
    if (strcmp(sqlstate, "3D000") == 0)
        return "create the database (createdb) or fix its name in DATABASE_URL";
    if (strcmp(sqlstate, "42501") == 0)
        return "GRANT CONNECT on the database to this user, or use another user";
    return "PostgreSQL refused the connection: see the server's log for why";
}

const char *pge_sqlstate_short(const char *message, char *buf, size_t size)
{
    const char *m = message ? message : "";
    const char *p;
    size_t n;

    if (size == 0)
        return buf;
    /* "connection to server at "h" (1.2.3.4), port 5432 failed: X" → X */
    p = strstr(m, " failed: ");
    if (p)
        m = p + 9;
    /* Keep the first line that says something. */
    while (*m == '\n' || *m == ' ')
        m++;
    n = strcspn(m, "\n");
    /* Drop "FATAL:  28P01: " — the SQLSTATE travels in its own field. */
    p = strstr(m, ":  ");
    if (p && (size_t)(p - m) < n && p - m < 16) {
        const char *c = p + 3;
        size_t skip = (size_t)(c - m);
        char st[6];
        if (pge_sqlstate_sqlstate(m, st) == 0 && strncmp(c, st, 5) == 0)
            skip += 7;
        if (skip <= n) {
            m += skip;
            n -= skip;
        }
    }
    while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\r'))
        n--;
    if (n >= size)
        n = size - 1;
    memcpy(buf, m, n);
    buf[n] = '\0';
    return buf;
}
