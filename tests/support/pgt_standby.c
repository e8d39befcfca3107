/* A hot standby of a throwaway PostgreSQL server, for multi-host and failover tests. */
#include "pgt_standby.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void pgt_pg_standby(const struct pgt_pg *primary, struct pgt_pg *standby)
{
    char tool[300], port[16], conf[300];
    memset(standby, 0, sizeof *standby);
    snprintf(standby->bindir, sizeof standby->bindir, "%s", primary->bindir);
    pgt_tempdir(standby->dir, sizeof standby->dir);
    chmod(standby->dir, 0700);
    pgt_chown_to_pg(standby->dir);
    standby->port = pgt_free_port();

    /* initdb's pg_hba.conf trusts replication over the socket; -R writes primary_conninfo and
     * standby.signal, so the copy starts as a standby streaming from the primary. */
    snprintf(tool, sizeof tool, "%s/pg_basebackup", primary->bindir);
    snprintf(port, sizeof port, "%d", primary->port);
    /* -X fetch: the WAL comes at the end over the same connection, with no second streaming
     * process to lose on a loaded machine (the primary keeps its WAL: wal_keep_size); a failed
     * copy (it removes what it wrote) is tried again. */
    const char *argv[] = {tool, "-D",   standby->dir, "-h", primary->dir, "-p",
                          port, "-U",   "postgres",   "-R", "-X",         "fetch",
                          "-c", "fast", "--no-sync",  NULL};
    int st = -1;
    for (int i = 0; i < 3 && st != 0; i++)
        st = pgt_try_as_pg(argv, 1);
    cr_assert_eq(st, 0, "pg_basebackup failed 3 times (status %d)", st);

    /* The copied postgresql.conf names the primary's port and socket directory: later lines
     * win. */
    snprintf(conf, sizeof conf, "%s/postgresql.conf", standby->dir);
    FILE *f = fopen(conf, "a");
    cr_assert_not_null(f);
    fprintf(f, "port = %d\nunix_socket_directories = '%s'\nhot_standby = on\n", standby->port,
            standby->dir);
    fclose(f);
    pgt_pg_start(standby);
}

void pgt_pg_promote(struct pgt_pg *pg)
{
    char pgctl[300];
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", pg->bindir);
    const char *argv[] = {pgctl, "-D", pg->dir, "-w", "-t", "30", "promote", NULL};
    pgt_run_as_pg(argv, 1);
}
