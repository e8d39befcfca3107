/* Read the history table, plan the operation against it, and hand over to the next stage. */
#include "engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/common/log.h"
#include "pgentry/migrate/indexcheck.h"
#include "pgentry/migrate/report.h"

static void after_history(struct pge_migrate *m);
static void read_repeatables(struct pge_migrate *m);

static void publish(struct pge_migrate *m)
{
    struct pge_runstate *st = m->o.state;
    if (!st)
        return;
    st->mig.known = 1;
    snprintf(st->mig.current, sizeof st->mig.current, "%s", m->plan.head_text);
    st->mig.applied =
        (unsigned)(m->plan.states[PGE_MIGPLAN_IS_APPLIED] + m->plan.states[PGE_MIGPLAN_IS_DRIFT] +
                   m->plan.states[PGE_MIGPLAN_IS_MISSING]);
    st->mig.pending = (unsigned)(m->plan.states[PGE_MIGPLAN_IS_PENDING] +
                                 m->plan.states[PGE_MIGPLAN_IS_OUT_OF_ORDER]);
}

/* Whether a failed read says the table (or its schema) does not exist yet. */
static int no_table_yet(const PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return st && (strcmp(st, "42P01") == 0 || strcmp(st, "3F000") == 0);
}

static int by_version(const void *a, const void *b)
{
    const struct pge_migplan_row *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

static int load_rows(struct pge_migrate *m, PGresult *res)
{
    int n = PQntuples(res);
    free(m->rows);
    m->rows = calloc((size_t)n + 1, sizeof *m->rows);
    if (!m->rows)
        return -1;
    for (int i = 0; i < n; i++) {
        m->rows[i].version = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        m->rows[i].name = PQgetvalue(res, i, 1);
        m->rows[i].checksum = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        m->rows[i].applied_at = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
    }
    /* Sorted here, not by the server: in a fresh session an ORDER BY costs it catalog
     * lookups worth a millisecond. */
    qsort(m->rows, (size_t)n, sizeof *m->rows, by_version);
    m->nrows = (size_t)n;
    PQclear(m->hist);
    m->hist = res;
    return 0;
}

static void on_history(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_back(m, res, "reading the migration history"))
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* No table (or no schema) yet: nothing has been applied. */
        if (no_table_yet(res)) {
            PQclear(res);
            PQclear(m->hist);
            m->hist = NULL;
            m->nrows = 0;
            read_repeatables(m);
            return;
        }
        pge_migrate_query_failed(m, res, "reading the migration history");
        return;
    }
    if (load_rows(m, res) < 0) {
        PQclear(res);
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    read_repeatables(m);
}

static void on_repeatables(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_back(m, res, "reading the repeatable migrations' records"))
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* No table yet: no repeatable migration has run. */
        if (no_table_yet(res)) {
            PQclear(res);
            m->nrrows = 0;
            after_history(m);
            return;
        }
        pge_migrate_query_failed(m, res, "reading the repeatable migrations' records");
        return;
    }
    int n = PQntuples(res);
    free(m->rrows);
    m->rrows = calloc((size_t)n + 1, sizeof *m->rrows);
    if (!m->rrows) {
        PQclear(res);
        pge_migrate_abort(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    for (int i = 0; i < n; i++) {
        m->rrows[i].version = -1;
        m->rrows[i].name = PQgetvalue(res, i, 0);
        m->rrows[i].checksum = PQgetvalue(res, i, 1);
        m->rrows[i].applied_at = PQgetvalue(res, i, 2);
    }
    m->nrrows = (size_t)n;
    PQclear(m->rhist);
    m->rhist = res;
    after_history(m);
}

/* The repeatable table is read only when there are repeatable files and the operation looks
 * at them (upgrade, --wait-migrations, history, status). */
static void read_repeatables(struct pge_migrate *m)
{
    char sql[512];
    int wanted = m->op == PGE_MIGRATE_UPGRADE || m->op == PGE_MIGRATE_WAIT ||
                 m->op == PGE_MIGRATE_HISTORY || m->op == PGE_MIGRATE_STATUS;
    m->nrrows = 0;
    if (!m->conn || !wanted || !m->o.files || m->o.files->nrepeatables == 0) {
        after_history(m);
        return;
    }
    /* Any order will do (pge_migplan_add_repeatables); applied_at comes as text anyway. */
    snprintf(sql, sizeof sql, "SELECT name, checksum, applied_at FROM %s", m->qrtable);
    pge_migrate_send(m, sql, 0, NULL, on_repeatables);
}

void pge_migrate_read_history(struct pge_migrate *m)
{
    char sql[512];
    if (!m->conn) {
        m->nrows = 0;
        read_repeatables(m);
        return;
    }
    /* The plainest query the server can plan: at head it is the only one after the
     * readiness check. Rows are sorted by load_rows(); applied_at comes as text anyway. */
    snprintf(sql, sizeof sql, "SELECT version, name, checksum, applied_at FROM %s", m->qtable);
    pge_migrate_send(m, sql, 0, NULL, on_history);
}

static void warn_ahead(const struct pge_migrate *m)
{
    for (size_t i = 0; i < m->plan.nahead; i++)
        pge_warn("database has a migration these files do not know (a newer release applied "
                 "it?): continuing",
                 PGE_STR("version", m->plan.ahead[i].version_text),
                 PGE_STR("name", m->plan.ahead[i].name));
}

/* Plan m->op against the rows read. Returns 0, or -1 after reporting and aborting. */
static int make_plan(struct pge_migrate *m)
{
    char err[1024];
    enum pge_migplan_result r;
    const struct pge_migset *f = m->o.files;

    pge_migplan_free(&m->plan);
    switch (m->op) {
    case PGE_MIGRATE_UPGRADE:
    case PGE_MIGRATE_WAIT:
        r = pge_migplan_upgrade_flags(
            &m->plan, f, m->rows, m->nrows, m->op == PGE_MIGRATE_WAIT ? NULL : m->target,
            m->o.allow_out_of_order ? PGE_MIGPLAN_ALLOW_OUT_OF_ORDER : 0, err, sizeof err);
        break;
    case PGE_MIGRATE_DOWNGRADE:
        r = pge_migplan_downgrade(&m->plan, f, m->rows, m->nrows, m->target, err, sizeof err);
        break;
    case PGE_MIGRATE_STAMP:
        r = pge_migplan_stamp(&m->plan, f, m->rows, m->nrows, m->target, err, sizeof err);
        break;
    case PGE_MIGRATE_VERIFY:
        r = pge_migplan_verify(&m->plan, f, m->rows, m->nrows, err, sizeof err);
        break;
    default:
        r = pge_migplan_history(&m->plan, f, m->rows, m->nrows, err, sizeof err);
        break;
    }
    /* Repeatables follow the versioned files to their head only: a view may need the
     * newest columns. */
    int head = !m->target || strcmp(m->target, "head") == 0;
    if (r == PGE_MIGPLAN_OK &&
        (m->op == PGE_MIGRATE_WAIT || (m->op == PGE_MIGRATE_UPGRADE && head)))
        r = pge_migplan_add_repeatables(&m->plan, f, m->rrows, m->nrrows, 1);
    else if (r == PGE_MIGPLAN_OK && (m->op == PGE_MIGRATE_HISTORY || m->op == PGE_MIGRATE_STATUS))
        r = pge_migplan_add_repeatables(&m->plan, f, m->rrows, m->nrrows, 0);
    if (r == PGE_MIGPLAN_NOMEM)
        snprintf(err, sizeof err, "out of memory while planning");
    if (r != PGE_MIGPLAN_OK) {
        pge_error(err);
        pge_migrate_abort(m, PGE_OUTCOME(pge_migplan_outcome(r), 0));
        return -1;
    }
    return 0;
}

/* Print the read-only report m->op asks for, with bad[nbad] (status), and finish. */
static void print_report(struct pge_migrate *m, const struct pge_report_index *bad, size_t nbad)
{
    struct pge_outcome out = PGE_OUTCOME(PGE_OUT_OK, 0);
    if (m->o.format_json && m->op != PGE_MIGRATE_VERIFY) {
        enum pge_report_kind k = m->op == PGE_MIGRATE_CURRENT   ? PGE_REPORT_CURRENT
                                 : m->op == PGE_MIGRATE_HISTORY ? PGE_REPORT_HISTORY
                                                                : PGE_REPORT_STATUS;
        if (pge_report_print_json(stdout, &m->plan, k, m->o.table, bad, nbad) < 0) {
            pge_error("could not write the JSON report to stdout");
            out = PGE_OUTCOME(PGE_OUT_INTERNAL, 0);
        }
    } else if (m->op == PGE_MIGRATE_CURRENT) {
        printf("%s\n", m->plan.head_text);
    } else if (m->op == PGE_MIGRATE_VERIFY) {
        printf("ok: every applied migration matches its file (%zu applied)\n",
               m->plan.states[PGE_MIGPLAN_IS_APPLIED]);
    } else {
        pge_report_print(stdout, &m->plan, m->op == PGE_MIGRATE_STATUS, m->o.table, bad, nbad);
    }
    if (out.kind == PGE_OUT_OK && m->op == PGE_MIGRATE_STATUS && m->o.exit_code)
        out = pge_report_exit_code(&m->plan, m->o.allow_out_of_order, nbad);
    fflush(stdout);
    pge_migrate_finish(m, out);
}

static void on_invalid_indexes(void *arg, PGresult *res)
{
    struct pge_migrate *m = arg;
    if (!pge_migrate_result_ok(m, res, PGRES_TUPLES_OK, "looking for INVALID indexes"))
        return;
    size_t n = (size_t)PQntuples(res);
    struct pge_report_index *bad = calloc(n + 1, sizeof *bad);
    if (!bad) {
        PQclear(res);
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_INTERNAL, 0));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bad[i].index = PQgetvalue(res, (int)i, 0);
        bad[i].table = PQgetvalue(res, (int)i, 1);
    }
    print_report(m, bad, n);
    free(bad);
    PQclear(res);
}

/* The read-only reports: print and finish. Returns 0 when m->op is not one of them. status
 * first lists the INVALID indexes (an interrupted CREATE INDEX CONCURRENTLY): the history may
 * say applied while the schema is not what it says. */
static int report(struct pge_migrate *m)
{
    switch (m->op) {
    case PGE_MIGRATE_STATUS:
        if (m->conn) {
            pge_migrate_send(m, pge_indexcheck_sql(PGE_INDEXCHECK_ALL, PQserverVersion(m->conn)), 0,
                             NULL, on_invalid_indexes);
            return 1;
        }
        /* fall through */
    case PGE_MIGRATE_CURRENT:
    case PGE_MIGRATE_HISTORY:
    case PGE_MIGRATE_VERIFY:
        print_report(m, NULL, 0);
        return 1;
    default:
        return 0;
    }
}

/* A relative target (+N, -N) counts from the head: once a plan under the lock is made, name
 * its end, so a plan made again after a lost connection does not go N further. */
static void pin_target(struct pge_migrate *m)
{
    const char *t = m->target;
    if (!m->locked || !t || (t[0] != '+' && t[0] != '-') || m->plan.count == 0)
        return;
    int64_t last = m->plan.items[m->plan.count - 1].version, below = -1;
    if (m->op == PGE_MIGRATE_UPGRADE) {
        snprintf(m->pinned_target, sizeof m->pinned_target, "%" PRId64, last);
    } else if (m->op == PGE_MIGRATE_DOWNGRADE) {
        /* Down to the newest applied version older than the last one reverted: it stays. */
        for (size_t i = 0; i < m->nrows && m->rows[i].version < last; i++)
            below = m->rows[i].version;
        if (below < 0)
            snprintf(m->pinned_target, sizeof m->pinned_target, "base");
        else
            snprintf(m->pinned_target, sizeof m->pinned_target, "%" PRId64, below);
    } else {
        return;
    }
    m->target = m->pinned_target;
}

static void after_history(struct pge_migrate *m)
{
    if (make_plan(m) < 0)
        return;
    pin_target(m);
    if (!m->rereading)
        warn_ahead(m);
    publish(m);
    if (m->o.state && m->op == PGE_MIGRATE_UPGRADE)
        m->o.state->mig.pending = (unsigned)m->plan.count;
    if (report(m))
        return;
    if (m->op == PGE_MIGRATE_WAIT) {
        pge_migrate_wait_step(m);
        return;
    }

    /* upgrade, downgrade, stamp */
    if (m->o.sql_only) {
        if (m->op == PGE_MIGRATE_STAMP)
            pge_migrate_stamp(m, stdout);
        else
            pge_migrate_print_sql(m);
        return;
    }
    if (m->plan.count == 0) {
        /* The fast path: nothing to do, no lock taken (or, re-read under it, nothing left). */
        if (m->op == PGE_MIGRATE_UPGRADE)
            pge_info("database is up to date", PGE_STR("version", m->plan.head_text));
        else
            pge_info("nothing to do", PGE_STR("version", m->plan.head_text));
        pge_migrate_release(m, PGE_OUTCOME(PGE_OUT_OK, 0));
        return;
    }
    if (!m->locked) {
        pge_migrate_start_lock(m);
        return;
    }
    if (m->op == PGE_MIGRATE_STAMP)
        pge_migrate_stamp(m, NULL);
    else
        pge_migrate_apply_plan(m);
}
