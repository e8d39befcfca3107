/* pgentry: parse the configuration, run the chosen command, map its outcome to an exit code. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgentry/config/config.h"
#include "pgentry/health/healthcheck.h"
#include "pgentry/common/log.h"
#include "pgentry/common/logsink.h"
#include "pgentry/migrate/migfile.h"
#include "pgentry/common/outcome.h"
#include "pgentry/run/run.h"

extern char **environ;

/* The one table from outcomes to the exit codes the README documents. */
static int exit_code(struct pge_outcome out)
{
    switch (out.kind) {
    case PGE_OUT_OK:
        return 0;
    case PGE_OUT_USAGE:
        return 64;
    case PGE_OUT_MIGRATION_FAILED:
        return 65;
    case PGE_OUT_NOT_READY:
        return 69;
    case PGE_OUT_INTERNAL:
        return 70;
    case PGE_OUT_LOCK_TIMEOUT:
        return 75;
    case PGE_OUT_REFUSED:
        return 77;
    case PGE_OUT_CONFIG:
        return 78;
    case PGE_OUT_CANNOT_EXEC:
        return 126;
    case PGE_OUT_NOT_FOUND:
        return 127;
    case PGE_OUT_CHILD_EXIT:
        return out.value & 0xff;
    case PGE_OUT_CHILD_SIGNAL:
    case PGE_OUT_STOPPED:
        return 128 + out.value;
    case PGE_OUT_UNHEALTHY:
    case PGE_OUT_PENDING:
        return 1;
    }
    return 70;
}

int main(int argc, char **argv)
{
    struct pge_config cfg;
    struct pge_outcome out = PGE_OUTCOME(PGE_OUT_OK, 0);
    sigset_t orig_mask;
    char err[1024];

    sigprocmask(SIG_SETMASK, NULL, &orig_mask);
    enum pge_config_result r = pge_config_parse(&cfg, argc, argv, environ, err, sizeof err);
    if (r != PGE_CONFIG_OK && cfg.cmd == PGE_CMD_HEALTHCHECK) {
        /* A HEALTHCHECK knows two answers (0 healthy, 1 not; Docker reserves 2): a probe that
         * cannot be made as configured is an unhealthy one, said in one line. */
        printf("unhealthy: %s\n", err);
        out = PGE_OUTCOME(PGE_OUT_UNHEALTHY, 0);
        goto done;
    }
    if (r != PGE_CONFIG_OK) {
        fprintf(stderr, "pgentry: %s\n", err);
        out = PGE_OUTCOME(r == PGE_CONFIG_USAGE ? PGE_OUT_USAGE : PGE_OUT_CONFIG, 0);
        goto done;
    }
    /* Before anything else runs: ps and /proc/PID/cmdline must never show a password. */
    pge_config_hide_secrets(&cfg, argv);
    pge_log_setup(cfg.log_level, cfg.log_format);
    pge_logsink_open_stderr();
    switch (cfg.cmd) {
    case PGE_CMD_HELP:
        fputs(pge_config_help(), stdout);
        break;
    case PGE_CMD_VERSION:
        printf("pgentry %s (%s)\n", PGENTRY_VERSION, PGENTRY_BUILD_INFO);
        break;
    case PGE_CMD_HEALTHCHECK: {
        char line[1024];
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            puts("unhealthy: could not initialise libcurl");
            out = PGE_OUTCOME(PGE_OUT_UNHEALTHY, 0);
            break;
        }
        int rc = pge_healthcheck_run(cfg.target, cfg.health_addr ? cfg.health_addr : "0.0.0.0:8081",
                                     line, sizeof line);
        puts(line);
        curl_global_cleanup();
        out = PGE_OUTCOME(rc == 0 ? PGE_OUT_OK : PGE_OUT_UNHEALTHY, 0);
        break;
    }
    case PGE_CMD_REVISION: {
        char *up = NULL, *down = NULL;
        enum pge_migfile_result st =
            pge_migfile_revision(cfg.migrations_dir, cfg.message, &up, &down, err, sizeof err);
        if (st != PGE_MIGFILE_OK) {
            pge_error(err);
            out = PGE_OUTCOME(pge_migfile_outcome(st), 0);
            break;
        }
        printf("%s\n%s\n", up, down);
        free(up);
        free(down);
        break;
    }
    default:
        out = pge_run(&cfg, environ, &orig_mask);
        break;
    }
done:
    /* What a full stderr still holds: bounded, so a pipe nobody reads cannot hold the exit. */
    pge_logsink_flush(PGE_LOGSINK_EXIT_FLUSH_MS);
    pge_config_free(&cfg);
    return exit_code(out);
}
