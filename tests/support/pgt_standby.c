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
    const char *argv[] = {tool, "-D",   standby->dir, "-h", primary->dir, "-p",
                          port, "-U",   "postgres",   "-R", "-X",         "stream",
                          "-c", "fast", "--no-sync",  NULL};
    pgt_run_as_pg(argv, 1);

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
