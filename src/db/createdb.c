/* --create-database: CREATE DATABASE through a maintenance database, on the loop. */
#include "pgentry/db/createdb.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/db/pgconn.h"
#include "pgentry/db/pgquery.h"

struct pge_createdb {
    struct ev_loop *loop;
    struct pge_workqueue *off;
    int64_t timeout_ms;
    pge_createdb_cb cb;
    void *arg;
    const char *name;
    const char *maint;          /* "postgres", then "template1" */
    struct pge_conninfo params; /* the caller's, with dbname = maint (arrays owned) */
    struct pge_pgconn *attempt;
    PGconn *conn;
    struct pge_pgquery *q;
};

const char *pge_createdb_name(const struct pge_conninfo *params)
{
    const char *user = NULL;
    for (size_t i = 0; i < params->n; i++) {
        if (strcmp(params->keywords[i], "dbname") == 0 && params->values[i][0])
            return params->values[i];
        if (strcmp(params->keywords[i], "user") == 0 && params->values[i][0])
            user = params->values[i];
    }
    /* libpq's own defaults, read from the same environment libpq reads. */
    const char *env = getenv("PGDATABASE");
    if (env && env[0])
        return env;
    if (user)
        return user;
    env = getenv("PGUSER");
    return env && env[0] ? env : NULL;
}

static void report(struct pge_createdb *c, enum pge_createdb_result r, const char *sqlstate,
                   const char *message)
{
    c->cb(c->arg, r, sqlstate ? sqlstate : "", message);
}

static void on_created(void *arg, PGresult *res)
{
    struct pge_createdb *c = arg;
    char msg[512];
    if (!res) {
        snprintf(msg, sizeof msg, "connection to %s lost during CREATE DATABASE", c->maint);
        report(c, PGE_CREATEDB_RETRY, NULL, msg);
        return;
    }
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    enum pge_createdb_result r = PGE_CREATEDB_REFUSED;
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        r = PGE_CREATEDB_CREATED;
    else if (st && (strcmp(st, "42P04") == 0 || strcmp(st, "23505") == 0))
        /* 42P04, or, when two CREATE DATABASE run at the same moment, the loser's unique
         * violation on pg_database's name index: either way another replica created it. */
        r = PGE_CREATEDB_EXISTS;
    else if (st && (strcmp(st, "55006") == 0 || st[0] == '0' || strncmp(st, "57", 2) == 0 ||
                    strncmp(st, "53", 2) == 0 || strncmp(st, "40", 2) == 0))
        /* Another session on the template (racing creators through template1), a server
         * shutting down or short of resources: worth another try. */
        r = PGE_CREATEDB_RETRY;
    snprintf(msg, sizeof msg, "%s", r <= PGE_CREATEDB_EXISTS ? "" : primary ? primary : "");
    char state[6] = "";
    if (st)
        snprintf(state, sizeof state, "%s", st);
    PQclear(res);
    report(c, r, state, msg);
}

static int try_maint(struct pge_createdb *c);

static void on_maint(void *arg, PGconn *conn, const struct pge_pgconn_error *err)
{
    struct pge_createdb *c = arg;
    pge_pgconn_free(c->attempt);
    c->attempt = NULL;
    if (!conn) {
        if (strcmp(err->sqlstate, "3D000") == 0 && strcmp(c->maint, "postgres") == 0) {
            c->maint = "template1";
            if (try_maint(c) < 0)
                report(c, PGE_CREATEDB_RETRY, NULL, "out of memory");
            return;
        }
        char msg[700];
        snprintf(msg, sizeof msg, "connecting to the maintenance database %s: %s", c->maint,
                 err->message);
        report(c, err->verdict == PGE_OUT_NOT_READY ? PGE_CREATEDB_RETRY : PGE_CREATEDB_REFUSED,
               err->sqlstate, msg);
        return;
    }
    c->conn = conn;
    char *ident = PQescapeIdentifier(conn, c->name, strlen(c->name));
    char *sql = ident ? malloc(strlen(ident) + 32) : NULL;
    if (sql)
        sprintf(sql, "CREATE DATABASE %s", ident);
    c->q = pge_pgquery_new(c->loop, conn);
    int rc = sql && c->q ? pge_pgquery_send(c->q, sql, -1, NULL, on_created, c) : -1;
    PQfreemem(ident);
    free(sql);
    if (rc < 0)
        report(c, PGE_CREATEDB_RETRY, NULL, "could not send CREATE DATABASE");
}

static int try_maint(struct pge_createdb *c)
{
    for (size_t i = 0; i < c->params.n; i++)
        if (strcmp(c->params.keywords[i], "dbname") == 0)
            c->params.values[i] = (char *)c->maint;
    c->attempt = pge_pgconn_start(c->loop, c->off, &c->params, c->timeout_ms, on_maint, c);
    return c->attempt ? 0 : -1;
}

struct pge_createdb *pge_createdb_start(struct ev_loop *loop, struct pge_workqueue *off,
                                        const struct pge_conninfo *params, int64_t timeout_ms,
                                        pge_createdb_cb cb, void *arg)
{
    const char *name = pge_createdb_name(params);
    if (!name)
        return NULL;
    struct pge_createdb *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = (struct pge_createdb){.loop = loop,
                               .off = off,
                               .timeout_ms = timeout_ms,
                               .cb = cb,
                               .arg = arg,
                               .name = name,
                               .maint = "postgres",
                               .params = *params};
    /* The same settings with one more or one changed keyword: dbname. */
    size_t n = params->n;
    c->params.keywords = calloc(n + 2, sizeof *c->params.keywords);
    c->params.values = calloc(n + 2, sizeof *c->params.values);
    if (!c->params.keywords || !c->params.values) {
        pge_createdb_free(c);
        return NULL;
    }
    int has_dbname = 0;
    for (size_t i = 0; i < n; i++) {
        c->params.keywords[i] = params->keywords[i];
        c->params.values[i] = params->values[i];
        has_dbname |= strcmp(params->keywords[i], "dbname") == 0;
    }
    if (!has_dbname) {
        c->params.keywords[n] = (char *)"dbname";
        c->params.values[n] = (char *)"postgres";
        c->params.n = n + 1;
    }
    if (try_maint(c) < 0) {
        pge_createdb_free(c);
        return NULL;
    }
    return c;
}

void pge_createdb_free(struct pge_createdb *c)
{
    if (!c)
        return;
    pge_pgconn_free(c->attempt);
    pge_pgquery_free(c->q);
    if (c->conn)
        PQfinish(c->conn);
    free(c->params.keywords);
    free(c->params.values);
    free(c);
}
