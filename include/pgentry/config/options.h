/* The option table: one row per option of the contract (flag, variable, parser, field). */
#ifndef PGENTRY_CONFIG_OPTIONS_H
#define PGENTRY_CONFIG_OPTIONS_H

#include <stddef.h>

#include "pgentry/config/config.h"

#define PGE_OPTIONS_COUNT 30

/* Row flags. */
#define PGE_OPTIONS_NO_VALUE    0x01u /* a boolean: a flag takes no value */
#define PGE_OPTIONS_SECRET      0x02u /* may carry a password: hidden in argv */
#define PGE_OPTIONS_COPY        0x04u /* the flag's value is copied (argv may be rewritten) */
#define PGE_OPTIONS_HEALTHCHECK 0x08u /* the healthcheck reads it from the environment */
#define PGE_OPTIONS_DATABASE    0x10u /* setting it configures a database */

/* Where a value comes from, for its parser and its messages. */
struct pge_options_src {
    const char *name; /* "--flag" or "VARIABLE", for messages */
    int from_env;     /* a list is comma-separated, a bool is a word */
    int first;        /* the first value of this option (a list replaces the env's) */
    char *err;        /* optional message buffer */
    size_t errsize;
};

/* Store value into cfg at field (an address inside cfg). value is NULL for a boolean flag. */
typedef enum pge_config_result (*pge_options_parse_cb)(struct pge_config *cfg, void *field,
                                                       const char *value,
                                                       const struct pge_options_src *src);

struct pge_option {
    const char *flag; /* without the leading "--" */
    const char *env;
    pge_options_parse_cb parse;
    size_t offset;  /* of the field in struct pge_config */
    unsigned flags; /* PGE_OPTIONS_* */
};

/* Every option, in --help order. Static storage. */
extern const struct pge_option pge_options[PGE_OPTIONS_COUNT];

/* The row of flag name[0..len) (without "--"), or NULL. */
const struct pge_option *pge_options_find(const char *name, size_t len);

/* Apply one value of option o to cfg. from_env: the value came from the environment; first:
 * the first time a flag sets this option (a list then replaces the environment's). A value that
 * may carry a password is copied into cfg first. Returns PGE_CONFIG_OK or an error with err
 * filled. */
enum pge_config_result pge_options_apply(struct pge_config *cfg, const struct pge_option *o,
                                         const char *value, int from_env, int first, char *err,
                                         size_t errsize);

/* A copy of value owned by cfg (released by pge_config_free), or NULL when out of memory. */
const char *pge_options_keep(struct pge_config *cfg, const char *value);

#endif
