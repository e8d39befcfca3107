/* pgentry: parse the configuration, then run the chosen command. Wiring only. */
#include <stdio.h>
#include <string.h>

#include "pgentry/config.h"
#include "pgentry/log.h"

extern char **environ;

int main(int argc, char **argv)
{
    struct pge_config cfg;
    char err[512];
    enum pge_config_result r = pge_config_parse(&cfg, argc, argv, environ, err, sizeof err);
    int code = 0;

    if (r != PGE_CONFIG_OK) {
        fprintf(stderr, "pgentry: %s\n", err);
        code = r == PGE_CONFIG_USAGE ? 64 : 78;
        goto out;
    }
    if (cfg.cmd == PGE_CMD_HELP) {
        fputs(pge_config_help(), stdout);
        goto out;
    }
    if (cfg.cmd == PGE_CMD_VERSION) {
        printf("pgentry %s\n", PGENTRY_VERSION);
        goto out;
    }
    pge_log_setup(cfg.log_level, cfg.log_format);
    pge_error("not yet implemented", PGE_STR("command", pge_config_cmd_name(cfg.cmd)));
    code = 70;
out:
    pge_config_free(&cfg);
    return code;
}
