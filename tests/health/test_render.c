/* What /status and /metrics render from the run state: the running migration's index build. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/health/httpreq.h"
#include "pgentry/health/render.h"
#include "pgt_http.h"

/* GET path rendered from st into body (NUL-terminated); the status code. */
static int render(const char *path, const struct pge_runstate *st, char *body, size_t size)
{
    char head[256];
    struct pge_httpreq req;
    struct pge_render_stats stats;
    struct pge_render_answer ans;
    memset(&stats, 0, sizeof stats);
    int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    cr_assert_gt(pge_httpreq_parse(head, (size_t)n, &req), 0, "request did not parse");
    struct pge_json_buf b = PGE_JSON_BUF(body, size - 1);
    pge_render_answer(&req, st, &stats, &b, &ans);
    cr_assert(!b.overflow, "%s overflowed", path);
    body[b.len] = '\0';
    return ans.code;
}

Test(render, index_build_only_while_one_runs, .timeout = 10)
{
    static char body[16384];
    char err[256];
    struct pge_runstate st;
    pge_runstate_init(&st);
    st.phase = PGE_PHASE_MIGRATING;
    pge_runstate_running(&st, "0042", "orders_by_customer", 3);

    cr_assert_eq(render("/status", &st, body, sizeof body), 200);
    cr_assert(strstr(body, "\"running\":{\"version\":\"0042\",\"name\":\"orders_by_customer\","
                           "\"line\":3}"),
              "%s", body);
    cr_assert_eq(render("/metrics", &st, body, sizeof body), 200);
    cr_assert_null(strstr(body, "pgentry_index_build"), "%s", body);

    struct pge_runstate_index_build *ib = &st.running.index_build;
    ib->active = 1;
    snprintf(ib->phase, sizeof ib->phase, "%s", "building index: \"scanning\" table");
    ib->blocks_total = 1310720;
    ib->blocks_done = 81920;
    ib->tuples_total = 9000000000LL;
    ib->tuples_done = 7;
    ib->lockers_total = 2;
    ib->lockers_done = 1;
    cr_assert_eq(render("/status", &st, body, sizeof body), 200);
    cr_assert_eq(pgt_json_check(body, strlen(body), err, sizeof err), 0, "%s: %s", err, body);
    cr_assert(strstr(body, "\"line\":3,\"index_build\":{\"phase\":\"building index: "
                           "\\\"scanning\\\" table\",\"blocks_done\":81920,\"blocks_total\":"
                           "1310720,\"tuples_done\":7,\"tuples_total\":9000000000,"
                           "\"lockers_done\":1,\"lockers_total\":2}}"),
              "%s", body);
    cr_assert_eq(render("/metrics", &st, body, sizeof body), 200);
    cr_assert_eq(pgt_prom_check(body, err, sizeof err), 0, "%s\n%s", err, body);
    cr_assert(strstr(body, "\npgentry_index_build_blocks_done 81920\n"), "%s", body);
    cr_assert(strstr(body, "\npgentry_index_build_blocks_planned 1310720\n"), "%s", body);
    cr_assert(strstr(body, "\npgentry_index_build_tuples_done 7\n"), "%s", body);
    cr_assert(strstr(body, "\npgentry_index_build_tuples_planned 9000000000\n"), "%s", body);

    /* The statement ended: all of it goes. */
    pge_runstate_not_running(&st);
    cr_assert_eq(render("/status", &st, body, sizeof body), 200);
    cr_assert(strstr(body, "\"running\":null") && !strstr(body, "index_build"), "%s", body);
    cr_assert_eq(render("/metrics", &st, body, sizeof body), 200);
    cr_assert_null(strstr(body, "pgentry_index_build"), "%s", body);
}
