/* Unit tests for the option-value parsers: durations, signals, HOST:PORT, booleans. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "pgentry/common/parse.h"

Test(parse, durations_good, .timeout = 5)
{
    static const struct {
        const char *in;
        int64_t ms;
    } cases[] = {
        {"250ms", 250},         {"10s", 10000}, {"2m", 120000},
        {"1h", 3600000},        {"5", 5000},    {"0", 0},
        {"1.5s", 1500},         {"0.25", 250},  {"1m30s", 90000},
        {"1h2m3s4ms", 3723004}, {"0ms", 0},     {"1.0005s", 1001},
        {"90m", 5400000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -1;
        cr_assert_eq(pge_parse_duration(cases[i].in, &ms), 0, "%s", cases[i].in);
        cr_assert_eq(ms, cases[i].ms, "%s -> %lld", cases[i].in, (long long)ms);
    }
}

Test(parse, durations_bad, .timeout = 5)
{
    static const char *const bad[] = {"",     "s",      "ms", "-1s", "+1s", "1x",
                                      "10 s", "1.5.5s", "1d", "abc", "1s2", "99999999999h",
                                      ".",    "1e3",    " 5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        cr_assert_eq(pge_parse_duration(bad[i], &ms), -1, "\"%s\" accepted", bad[i]);
        cr_assert_eq(ms, 42, "output written on failure for \"%s\"", bad[i]);
    }
}

Test(parse, signals, .timeout = 5)
{
    int s = 0;
    cr_assert_eq(pge_parse_signal("TERM", 0, &s), 0);
    cr_assert_eq(s, SIGTERM);
    cr_assert_eq(pge_parse_signal("sigquit", 0, &s), 0);
    cr_assert_eq(s, SIGQUIT);
    cr_assert_eq(pge_parse_signal("usr1", 0, &s), 0);
    cr_assert_eq(s, SIGUSR1);
    cr_assert_eq(pge_parse_signal("9", 0, &s), 0);
    cr_assert_eq(s, 9);
    cr_assert_eq(pge_parse_signal("RTMIN+2", 0, &s), 0);
    cr_assert_eq(s, SIGRTMIN + 2);
    cr_assert_eq(pge_parse_signal("0", 1, &s), 0);
    cr_assert_eq(s, 0);
    cr_assert_eq(pge_parse_signal("0", 0, &s), -1);
    cr_assert_eq(pge_parse_signal("NOPE", 0, &s), -1);
    cr_assert_eq(pge_parse_signal("", 0, &s), -1);
    cr_assert_eq(pge_parse_signal("999", 0, &s), -1);
    cr_assert_eq(pge_parse_signal("RTMIN+99", 0, &s), -1);
    cr_assert_str_eq(pge_parse_signal_name(SIGTERM), "TERM");
    cr_assert_str_eq(pge_parse_signal_name(SIGWINCH), "WINCH");
    cr_assert_null(pge_parse_signal_name(0));
}

Test(parse, hostport, .timeout = 5)
{
    char host[64];
    int port = 0;
    cr_assert_eq(pge_parse_hostport("redis:6379", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "redis");
    cr_assert_eq(port, 6379);
    cr_assert_eq(pge_parse_hostport("[::1]:8081", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 8081);
    cr_assert_eq(pge_parse_hostport(":80", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "");
    static const char *const bad[] = {"redis",   "redis:",  "redis:0", "redis:65536",
                                      "::1:80",  "[::1]80", "[]:80",   "a b:1",
                                      "[::1:80", "h:-1",    "h:1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(pge_parse_hostport(bad[i], host, sizeof host, &port), -1, "%s", bad[i]);
    cr_assert_eq(pge_parse_hostport("averyveryverylonghostname:1", host, 8, &port), -1);
}

Test(parse, bools, .timeout = 5)
{
    int b = -1;
    cr_assert_eq(pge_parse_bool("1", &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(pge_parse_bool("TRUE", &b), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(pge_parse_bool("off", &b), 0);
    cr_assert_eq(b, 0);
    cr_assert_eq(pge_parse_bool("", &b), 0);
    cr_assert_eq(b, 0);
    cr_assert_eq(pge_parse_bool("maybe", &b), -1);
}

Test(parse, duration_every_prefix, .timeout = 5)
{
    /* Each prefix of a good duration is fed on its own: ms[k] is the result for the first
     * k + 1 bytes, -1 where the prefix must be refused (and *ms left alone). */
    static const struct {
        const char *in;
        int64_t ms[10];
    } cases[] = {
        {"1h2m3s4ms", {1000, 3600000, -1, 3720000, -1, 3723000, -1, 3963000, 3723004}},
        {"250ms", {2000, 25000, 250000, 15000000, 250}},
        {"1.5s", {1000, 1000, 1500, 1500}},
        {"0.25", {0, 0, 200, 250}},
        {"1m30s", {1000, 60000, -1, -1, 90000}},
        {"2400h", {2000, 24000, 240000, 2400000, 8640000000LL}},
        {"2401h", {2000, 24000, 240000, 2401000, -1}},
    };
    int64_t ms;
    cr_assert_eq(pge_parse_duration("", &ms), -1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        for (size_t k = 1; k <= len; k++) {
            char prefix[16];
            memcpy(prefix, cases[i].in, k);
            prefix[k] = '\0';
            ms = 42;
            int rc = pge_parse_duration(prefix, &ms);
            if (cases[i].ms[k - 1] < 0) {
                cr_assert_eq(rc, -1, "\"%s\" accepted as %lld", prefix, (long long)ms);
                cr_assert_eq(ms, 42, "output written on failure for \"%s\"", prefix);
            } else {
                cr_assert_eq(rc, 0, "\"%s\" refused", prefix);
                cr_assert_eq(ms, cases[i].ms[k - 1], "\"%s\" -> %lld", prefix, (long long)ms);
            }
        }
    }
}

Test(parse, duration_bounds_and_rounding, .timeout = 5)
{
    static const struct {
        const char *in;
        int64_t ms; /* -1: refused */
    } cases[] = {
        {"8640000000ms", 8640000000LL},
        {"8640000001ms", -1},
        {"144000m", 8640000000LL},
        {"2399h59m59.999s", 8639999999LL},
        {"2400h1ms", -1},
        {"99999999999999999999", -1},
        {"0.0005s", 1},
        {"0.0004s", 0},
        {"0.0015", 2},
        {"1.9999999999999s", 2000},
        {"0.5ms", 1},
        {"0.4ms", 0},
        {"1ms1", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = 42;
        int rc = pge_parse_duration(cases[i].in, &ms);
        if (cases[i].ms < 0) {
            cr_assert_eq(rc, -1, "\"%s\" accepted as %lld", cases[i].in, (long long)ms);
        } else {
            cr_assert_eq(rc, 0, "\"%s\" refused", cases[i].in);
            cr_assert_eq(ms, cases[i].ms, "\"%s\" -> %lld", cases[i].in, (long long)ms);
        }
    }
}

Test(parse, signal_names_round_trip, .timeout = 5)
{
    int named = 0;
    for (int n = 1; n <= SIGRTMAX; n++) {
        const char *name = pge_parse_signal_name(n);
        int s = 0;
        char prefixed[32];
        if (!name)
            continue;
        named++;
        cr_assert_eq(pge_parse_signal(name, 0, &s), 0, "%s", name);
        cr_assert_eq(s, n, "%s -> %d, not %d", name, s, n);
        snprintf(prefixed, sizeof prefixed, "SIG%s", name);
        cr_assert_eq(pge_parse_signal(prefixed, 0, &s), 0, "%s", prefixed);
        cr_assert_eq(s, n, "%s", prefixed);
    }
    cr_assert_str_eq(pge_parse_signal_name(SIGABRT), "ABRT");
    cr_assert_str_eq(pge_parse_signal_name(SIGIO), "IO");
    /* 1..31 standard ones, and every real-time signal. */
    cr_assert_geq(named, 31 + (SIGRTMAX - SIGRTMIN + 1) - 1, "only %d named", named);
    static const char *const bad[] = {"SIG", "RTMIN+", "RTMAX-99", "RTMIN-1", "RTMINX",
                                      "+5",  "TERM ",  "1x",       "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int s = 0;
        cr_assert_eq(pge_parse_signal(bad[i], 1, &s), -1, "\"%s\" accepted as %d", bad[i], s);
    }
}
