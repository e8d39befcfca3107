/* --sql: print the SQL an upgrade or downgrade would run, with its history rows; run nothing. */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "pgentry/common/log.h"
#include "pgentry/migrate/histsql.h"

void pge_migrate_print_sql(struct pge_migrate *m)
{
    struct pge_histsql_buf b = {0};
    char err[1024];
    if (pge_migrate_check_placeholders(m) < 0) {
        pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_MIGRATION_FAILED, 0));
        return;
    }
    pge_histsql_create_table(&b, m->qtable);
    printf("-- pgentry %s: %s %s; nothing was run\n%s;\n", PGENTRY_VERSION,
           m->op == PGE_MIGRATE_UPGRADE ? "upgrade" : "downgrade", m->target ? m->target : "head",
           b.s ? b.s : "");
    pge_histsql_buf_free(&b);
    for (size_t i = 0; i < m->plan.count; i++) {
        const struct pge_migplan_item *it = &m->plan.items[i];
        int down = it->action == PGE_MIGPLAN_DO_REVERT;
        const char *path = down ? it->file->down_path : it->file->up_path;
        char *text = NULL;
        size_t len = 0;
        char sum[PGE_MIGFILE_CHECKSUM_LEN + 1];
        enum pge_migfile_result r = pge_migfile_read(path, &text, &len, sum, err, sizeof err);
        if (r != PGE_MIGFILE_OK) {
            pge_error(err);
            pge_migrate_finish(m, PGE_OUTCOME(pge_migfile_outcome(r), 0));
            return;
        }
        int no_tx = pge_migfile_no_transaction(text, len);
        printf("\n-- %s %s%s%s (%s)%s\n", down ? "revert" : "apply", it->version_text,
               it->file->repeatable ? "__" : "_", it->name, path,
               it->state == PGE_MIGPLAN_IS_OUT_OF_ORDER ? " out of order" : "");
        if (down ? it->file->down_envsubst : it->file->envsubst)
            printf("-- envsubst: pgentry replaces each ${NAME} below with the environment's "
                   "value when it applies the file; values are not printed\n");
        if (!no_tx)
            printf("BEGIN;\n");
        b = (struct pge_histsql_buf){0};
        pge_histsql_timeouts(&b, m->o.statement_timeout_ms, m->o.lock_timeout_ms, !no_tx);
        if (it->file->repeatable) {
            pge_histsql_appendf(&b, ";\n");
            pge_histsql_create_repeatable_table(&b, m->qrtable);
        }
        printf("%s;\n", b.s ? b.s : "");
        pge_histsql_buf_free(&b);
        fwrite(text, 1, len, stdout);
        if (len && text[len - 1] != '\n')
            putchar('\n');
        /* A last statement without ';' must not swallow the history row. */
        struct pge_sqlsplit sp;
        struct pge_sqlsplit_stmt st, last = {0, 0, 0};
        pge_sqlsplit_init(&sp, text, len);
        while (pge_sqlsplit_next(&sp, &st) == PGE_SQLSPLIT_STMT)
            last = st;
        if (last.length && text[last.offset + last.length - 1] != ';')
            printf(";\n");
        free(text);
        b = (struct pge_histsql_buf){0};
        if (it->file->repeatable)
            pge_histsql_upsert_repeatable(&b, m->qrtable, it->name, sum, -1, m->applied_by);
        else if (down)
            pge_histsql_delete(&b, m->qtable, it->version);
        else
            pge_histsql_insert(&b, m->qtable, it->version, it->name, sum, no_tx ? 0 : -1,
                               m->applied_by);
        printf("%s;\n", b.s ? b.s : "");
        pge_histsql_buf_free(&b);
        if (no_tx) {
            b = (struct pge_histsql_buf){0};
            pge_histsql_reset_timeouts(&b, m->o.lock_timeout_ms);
            printf("%s;\n", b.s ? b.s : "");
            pge_histsql_buf_free(&b);
        }
        if (!no_tx)
            printf("COMMIT;\n");
    }
    fflush(stdout);
    pge_migrate_finish(m, PGE_OUTCOME(PGE_OUT_OK, 0));
}
