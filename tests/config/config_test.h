/* What every config test shares: one parse with its argv and envp kept alive, list checks. */
#ifndef PGT_CONFIG_TEST_H
#define PGT_CONFIG_TEST_H

#include <criterion/criterion.h>
#include <string.h>

#include "pgentry/config/config.h"

#define MAX_ARGS 80

/* One parse: the argv and envp arrays live here because cfg points into them. */
struct run {
    struct pge_config cfg;
    char *argv[MAX_ARGS + 2];
    char *envp[MAX_ARGS + 1];
    char err[512];
    enum pge_config_result r;
};

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE      ((const char *const[]){NULL})

/* Parse "pgentry args..." with env; the result is in r (release with pge_config_free). */
__attribute__((unused)) static void run(struct run *r, const char *const *args,
                                        const char *const *env)
{
    int argc = 0, envc = 0;
    r->argv[argc++] = "pgentry";
    for (; args[argc - 1]; argc++) {
        cr_assert_lt(argc, MAX_ARGS);
        r->argv[argc] = (char *)args[argc - 1];
    }
    r->argv[argc] = NULL;
    for (; env[envc]; envc++) {
        cr_assert_lt(envc, MAX_ARGS);
        r->envp[envc] = (char *)env[envc];
    }
    r->envp[envc] = NULL;
    memset(r->err, 'Z', sizeof r->err);
    r->r = pge_config_parse(&r->cfg, argc, r->argv, r->envp, r->err, sizeof r->err);
}

/* Parse and require success. */
__attribute__((unused)) static void run_ok(struct run *r, const char *const *args,
                                           const char *const *env)
{
    run(r, args, env);
    cr_assert_eq(r->r, PGE_CONFIG_OK, "%s: %s", args[0] ? args[0] : "(no args)", r->err);
    cr_assert_str_empty(r->err, "message on success: %s", r->err);
}

__attribute__((unused)) static void assert_list(char **list, size_t n, const char *const *want)
{
    size_t k = 0;
    for (; want[k]; k++) {
        cr_assert_lt(k, n, "list has %zu items, wanted more", n);
        cr_assert_str_eq(list[k], want[k], "item %zu", k);
    }
    cr_assert_eq(n, k, "list has %zu items, wanted %zu", n, k);
}

#endif
